"""IEMOCAP from ``IEMOCAP_full_release/``: labels, transcripts and sentence WAVs per session.

Labels come from the summary line of each turn in
``SessionN/dialog/EmoEvaluation/<dialog>.txt``::

    [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[2.5000, 2.5000, 2.5000]

All other lines there (the header, per-evaluator ``C-E1:`` / ``A-E1:`` lines)
are ignored; a line that starts like a summary line but does not parse is an
error naming file and line. The speaker of a turn is the session plus the
gender letter of its last id part (``Ses01F_impro01_M013`` -> ``Ses01M``),
not the dialog prefix: in ``Ses01F_*`` dialogs the male actor speaks too. The summary line's
``[V, A, D]`` become ``valence``, ``arousal`` and ``dominance`` on the declared 1-5 scale
(``corpus.json`` ``dimensions``), the targets of ``task=dimensional``.
A turn's audio is ``sentences/wav/<dialog>/<utterance>.wav`` or a converted copy
under the same name (``<utterance>.flac``, ...). Its video is the dialogue's recording
``dialog/avi/DivX/<dialog>.avi`` (both actors; the largest face is used) between the
summary line's times (``video_start``/``video_end``), when the file is present.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mmemo.data.corpora.base import Adapter
from mmemo.data.corpora.files import AudioIndex, measure, read_text
from mmemo.data.corpora.fold_rule import FoldPlan, group_plan, plan_folds
from mmemo.data.corpora.options import Option
from mmemo.data.corpora.records import Collected, Failure, line_issue
from mmemo.data.manifest import Issue, Source, Utterance, raise_if_issues

SESSIONS = tuple(f"Session{i}" for i in range(1, 6))
#: Every label IEMOCAP's evaluation summaries use.
LABELS = ("neu", "fru", "ang", "sad", "hap", "exc", "sur", "fea", "dis", "oth", "xxx")
FOUR_CLASS = {"ang": "ang", "hap": "hap", "exc": "hap", "neu": "neu", "sad": "sad"}
_SUMMARY = re.compile(
    r"^\[\s*(?P<start>\d+(?:\.\d+)?)\s*-\s*(?P<end>\d+(?:\.\d+)?)\s*\]\s+(?P<utt>\S+)\s+(?P<emo>\S+)"
    r"\s+\[(?P<vad>[^\]]*)\]\s*$")
_TRANSCRIPT = re.compile(r"^(?P<utt>Ses\S+)\s+\[[^\]]*\]:\s?(?P<text>.*)$")
_UTTERANCE_TAIL = re.compile(r"^[FM]\d+$")
#: The scale of the [V, A, D] ratings (annotators' 1-5 self-assessment manikins, averaged).
DIMENSION_SCALE = (1.0, 5.0)


class IemocapAdapter(Adapter):
    name = "iemocap"
    title = "IEMOCAP"
    obtain = ("https://sail.usc.edu/iemocap/ (fill in the release form; you receive a link to "
              "IEMOCAP_full_release.tar.gz)")
    licence = "USC SAIL release agreement (research use; no redistribution)."
    layout = """IEMOCAP_full_release/
  Session1/ ... Session5/
    dialog/EmoEvaluation/<dialog>.txt        e.g. Ses01F_impro01.txt (labels)
    dialog/transcriptions/<dialog>.txt       transcripts
    sentences/wav/<dialog>/<utterance>.wav   e.g. Ses01F_impro01/Ses01F_impro01_F000.wav"""
    options = (
        Option("subset", "four_class", ("four_class", "full"),
               "four_class: ang, hap+exc, neu, sad (the standard 5,531 utterances); full: every label"),
        Option("improvised_only", False, (True, False),
               "keep only improvised dialogs (scripted ones repeat sentences across labels)", kind=bool),
        Option("folds", "session", ("session", "speaker"),
               "session: 5 leave-one-session-out folds; speaker: 10 leave-one-speaker-out folds"),
    )

    def locate(self, root: Path) -> Path:
        if not (root / "Session1").is_dir() and (root / "IEMOCAP_full_release" / "Session1").is_dir():
            root = root / "IEMOCAP_full_release"
        missing = []
        for session in SESSIONS:
            for part in ("dialog/EmoEvaluation", "dialog/transcriptions", "sentences/wav"):
                if not (root / session / part).is_dir():
                    missing.append(f"{root / session / part}/")
        if missing:
            raise self.layout_error(root, missing, "--root must be the IEMOCAP_full_release folder "
                                                   "(the one holding Session1 ... Session5).")
        return root

    def collect(self, root: Path, out: Path, options: dict[str, Any]) -> Collected:
        labelled, issues = self._read_labels(root)
        raise_if_issues(issues, hint="IEMOCAP summary lines look like "
                                     "'[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5, 2.5, 2.5]'.")
        if options["subset"] == "four_class":
            label_map = dict(FOUR_CLASS)
            labelled = [u for u in labelled if u.emo in label_map]
        else:
            label_map = {label: label for label in sorted({u.emo for u in labelled})}
        if options["improvised_only"]:
            labelled = [u for u in labelled if u.extra["improvised"]]
        texts = self._read_transcripts(root, {u.extra["dialog"] for u in labelled}, {u.session for u in labelled})
        without_text = 0
        for u in labelled:
            u.text = texts.get(u.key)
            without_text += u.text is None
        index = AudioIndex()
        for u in labelled:   # the WAV the label names, or a converted copy under the same name
            u.wav = str(index.find(u.wav) or u.wav)
        failures: list[Failure] = []
        utterances = measure(labelled, failures, desc="IEMOCAP wav headers")
        if options["folds"] == "session":
            sessions = sorted({u.session for u in utterances if u.session})
            groups = [sorted({u.speaker for u in utterances if u.session == s and u.speaker}) for s in sessions]
            plan: FoldPlan = group_plan(
                utterances, groups, "session",
                f"leave-one-session-out: {len(groups)} folds, fold k tests on Session k's two speakers")
        else:
            plan = plan_folds(utterances, "loso", lambda u: label_map[u.emo])
            plan.scheme = "speaker"
        notes = []
        if without_text:
            notes.append(f"{without_text} utterance(s) have no transcript line")
        if options["subset"] == "four_class":
            notes.append("four_class merges excited into happy (exc -> hap in label_map.json); "
                         "the standard subset has 5,531 utterances (1085, 1023, 1151, 1031, 1241 per session)")
        if not options["improvised_only"]:
            notes.append("scripted dialogs repeat the same sentences with different labels, which leaks "
                         "labels into text models; report improvised_only=true as well")
        off_scale = sum(len(u.extra["vad"]) != sum(d in u.extra for d in ("valence", "arousal", "dominance"))
                        for u in utterances)
        notes.append("valence/arousal/dominance are the summary line's [V, A, D] on the 1-5 scale "
                     "(task=dimensional)" + (f"; {off_scale} utterance(s) have a value outside it, left out of "
                                             "that dimension" if off_scale else ""))
        notes += filter(None, [index.note()])
        return Collected(utterances, label_map, plan,
                         audio="absolute paths to the sentence audio files under the root",
                         failures=failures, notes=notes,
                         extra={"dimensions": {d: list(DIMENSION_SCALE) for d in ("valence", "arousal", "dominance")}})

    def _read_labels(self, root: Path) -> tuple[list[Utterance], list[Issue]]:
        utterances: list[Utterance] = []
        issues: list[Issue] = []
        seen: dict[str, Source] = {}
        for session in SESSIONS:
            folder = root / session / "dialog" / "EmoEvaluation"
            for path in sorted(folder.glob("*.txt")):
                if path.name.startswith(".") or not path.is_file():
                    continue  # macOS "._" resource forks ship in the release
                dialog = path.stem
                text, _ = read_text(path)
                for number, raw in enumerate(text.splitlines(), start=1):
                    line = raw.strip()
                    if not line.startswith("["):
                        continue
                    source = Source(str(path), number)
                    match = _SUMMARY.match(line)
                    if not match:
                        issues.append(line_issue(path, number, f"malformed evaluation line {line[:80]!r}"))
                        continue
                    utt, emo = match["utt"], match["emo"]
                    head, _, tail = utt.rpartition("_")
                    if head != dialog or not _UTTERANCE_TAIL.match(tail):
                        issues.append(line_issue(path, number,
                                                 f"utterance id {utt!r} does not belong to dialog {dialog!r}"))
                        continue
                    if emo not in LABELS:
                        issues.append(line_issue(path, number, f"unknown label {emo!r} (known: "
                                                               f"{', '.join(LABELS)})"))
                        continue
                    try:
                        vad = [float(v) for v in match["vad"].split(",")]
                        if len(vad) != 3:
                            raise ValueError
                    except ValueError:
                        issues.append(line_issue(path, number, f"expected [V, A, D], got [{match['vad']}]"))
                        continue
                    if utt in seen:
                        issues.append(line_issue(path, number, f"utterance {utt!r} already labelled at "
                                                               f"{seen[utt]}"))
                        continue
                    seen[utt] = source
                    wav = root / session / "sentences" / "wav" / dialog / f"{utt}.wav"
                    avi = root / session / "dialog" / "avi" / "DivX" / f"{dialog}.avi"
                    video = {"video": str(avi), "video_start": float(match["start"]),
                             "video_end": float(match["end"])} \
                        if avi.is_file() and float(match["end"]) > float(match["start"]) else {}
                    utterances.append(Utterance(
                        key=utt, wav=str(wav), emo=emo, dataset=self.name, speaker=utt[:5] + tail[0],
                        lang="en", session=session, gender=tail[0], **video,
                        extra={"dialog": dialog, "improvised": "_impro" in dialog, "vad": vad,
                               **{name: value for name, value in zip(("valence", "arousal", "dominance"), vad)
                                  if DIMENSION_SCALE[0] <= value <= DIMENSION_SCALE[1]}},
                        source=source,
                    ))
        return utterances, issues

    @staticmethod
    def _read_transcripts(root: Path, dialogs: set[str], sessions: set[str | None]) -> dict[str, str]:
        """``utt -> text`` from the transcription files; lines that are not utterances are skipped."""
        texts: dict[str, str] = {}
        for session in sorted(s for s in sessions if s):
            folder = root / session / "dialog" / "transcriptions"
            for path in sorted(folder.glob("*.txt")):
                if path.name.startswith(".") or path.stem not in dialogs:
                    continue
                content, _ = read_text(path)
                for raw in content.splitlines():
                    match = _TRANSCRIPT.match(raw.strip())
                    if match:
                        texts.setdefault(match["utt"], match["text"].strip())
        return texts


ADAPTER = IemocapAdapter()

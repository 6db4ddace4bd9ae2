"""ESD (Emotional Speech Dataset) from ``0001/`` ... ``0020/`` speaker folders.

Speakers 0001-0010 speak Mandarin, 0011-0020 English. Each speaker folder has
``Angry/ Happy/ Neutral/ Sad/ Surprise/`` with WAVs (``0011_000001.wav``),
either directly or in ``train/ evaluation/ test/`` subfolders (both layouts
exist in circulation), and a transcript ``<spk>/<spk>.txt`` with lines
``0011_000001<TAB>text<TAB>Emotion``. The Mandarin transcripts name the emotion
in Chinese and are not always UTF-8 (GB18030/GBK is detected). The folder a
WAV is in is its label. Converted copies under the same names
(``0011_000351.flac``, ...) are read too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mmemo.data.corpora.base import Adapter
from mmemo.data.corpora.files import AudioIndex, audio_stem, measure, read_text
from mmemo.data.corpora.fold_rule import RULE_SCHEMES, FoldPlan, plan_folds
from mmemo.data.corpora.options import Option
from mmemo.data.corpora.records import Collected, Failure, file_issue, line_issue
from mmemo.data.manifest import Issue, Source, Utterance, raise_if_issues
from mmemo.errors import InvalidInput

EMOTIONS = ("Angry", "Happy", "Neutral", "Sad", "Surprise")
CHINESE_EMOTIONS = {"中立": "Neutral", "快乐": "Happy", "伤心": "Sad", "生气": "Angry", "惊喜": "Surprise"}
OFFICIAL_SPLITS = {"train": "train", "evaluation": "valid", "test": "test"}
_SPEAKER_DIR = re.compile(r"^\d{4}$")
_ID = re.compile(r"^(\d{4})_(\d{6})$")


def language_of(speaker: str) -> str:
    return "zh" if int(speaker) <= 10 else "en"


class EsdAdapter(Adapter):
    name = "esd"
    title = "ESD (Emotional Speech Dataset)"
    obtain = ("https://hltsingapore.github.io/ESD/ (request access with the licence form; Google Drive link)")
    licence = "ESD licence agreement (non-commercial research use)."
    layout = """ROOT/                                ("Emotional Speech Dataset (ESD)")
  0001/ ... 0020/                    0001-0010 Mandarin, 0011-0020 English
    0011.txt                         0011_000001<TAB>text<TAB>Emotion
    Angry/ Happy/ Neutral/ Sad/ Surprise/
      0011_000351.wav                (or train/ evaluation/ test/ subfolders holding the WAVs)"""
    options = (
        Option("language", "all", ("all", "en", "zh"), "speakers to keep: all, English (0011-0020) or "
                                                       "Mandarin (0001-0010)"),
        Option("folds", "emobox", (*RULE_SCHEMES, "official"),
               "emobox: the EmoBox rule (20 balanced speakers -> 5 folds of 4); speakers; loso; official: the "
               "train/evaluation/test subfolders as one fold (speaker-dependent)"),
    )

    def locate(self, root: Path) -> Path:
        speakers = self._speaker_dirs(root)
        if not speakers:
            inner = [p for p in root.iterdir() if p.is_dir() and self._speaker_dirs(p)]
            if len(inner) == 1:
                return inner[0]
            raise self.layout_error(root, [f"{root}/0001/ ... 0020/ (speaker folders with Angry/ Happy/ "
                                           "Neutral/ Sad/ Surprise/ and <spk>.txt)"])
        return root

    @staticmethod
    def _speaker_dirs(root: Path) -> list[Path]:
        return sorted(p for p in root.iterdir() if p.is_dir() and _SPEAKER_DIR.match(p.name)
                      and any((p / e).is_dir() for e in EMOTIONS))

    def collect(self, root: Path, out: Path, options: dict[str, Any]) -> Collected:
        speakers = [p for p in self._speaker_dirs(root)
                    if options["language"] == "all" or language_of(p.name) == options["language"]]
        if not speakers:
            raise self.layout_error(root, [f"speaker folders for language={options['language']}"])
        missing = [str(p / f"{p.name}.txt") for p in speakers if not (p / f"{p.name}.txt").is_file()]
        if missing:
            raise self.layout_error(root, missing, "Every ESD speaker folder has a <spk>.txt transcript.")
        found: list[Utterance] = []
        issues: list[Issue] = []
        mismatches: list[str] = []
        without_text = 0
        index = AudioIndex()
        for folder in speakers:
            speaker = folder.name
            transcript, transcript_issues = self._read_transcript(folder / f"{speaker}.txt", speaker)
            issues += transcript_issues
            seen: dict[str, Path] = {}
            for emotion in EMOTIONS:
                for path, split in self._wavs(index, folder / emotion):
                    stem = audio_stem(path.name)
                    match = _ID.match(stem)
                    if not match or match.group(1) != speaker:
                        issues.append(file_issue(path, f"not an ESD name for speaker {speaker} "
                                                       f"({speaker}_000001.wav)"))
                        continue
                    if stem in seen:
                        issues.append(file_issue(path, f"{stem} also at {seen[stem]}"))
                        continue
                    seen[stem] = path
                    text, said, source = transcript.get(stem, (None, None, None))
                    without_text += text is None
                    if said is not None and said != emotion:
                        mismatches.append(f"{source}: transcript says {said}, file is in {emotion}/")
                    extra = {"split": split} if split else {}
                    found.append(Utterance(
                        key=stem, wav=str(path), emo=emotion, dataset=self.name, speaker=speaker,
                        lang=language_of(speaker), text=text, extra=extra, source=source,
                    ))
        raise_if_issues(issues, hint="ESD transcript lines are '<id><TAB>text<TAB>Emotion'.")
        failures: list[Failure] = []
        utterances = measure(found, failures, desc="ESD wav headers")
        label_map: dict[str, str | None] = {e: e for e in EMOTIONS}
        if options["folds"] == "official":
            plan = self._official_plan(root, utterances)
        else:
            strata = {u.speaker: u.lang for u in utterances if u.speaker and u.lang}
            plan = plan_folds(utterances, options["folds"], lambda u: label_map[u.emo], strata, "language")
        notes = []
        if mismatches:
            notes.append(f"{len(mismatches)} transcript emotion(s) disagree with the folder (the folder is used), "
                         f"e.g. {mismatches[0]}")
        if without_text:
            notes.append(f"{without_text} utterance(s) have no transcript line")
        notes += filter(None, [index.note()])
        return Collected(utterances, label_map, plan, audio="absolute paths to the audio files under the root",
                         failures=failures, notes=notes, extra={"mismatched_transcript_emotions": mismatches[:50]})

    @staticmethod
    def _wavs(index: AudioIndex, folder: Path) -> list[tuple[Path, str | None]]:
        """The audio files of one emotion folder (any audio suffix) and of its split subfolders."""
        if not folder.is_dir():
            return []
        found: list[tuple[Path, str | None]] = [(p, None) for p in index.files(folder)]
        for sub in OFFICIAL_SPLITS:
            found += [(p, sub) for p in index.files(folder / sub)]
        return found

    @staticmethod
    def _read_transcript(path: Path, speaker: str) -> tuple[dict[str, tuple[str, str | None, Source]],
                                                             list[Issue]]:
        """``id -> (text, emotion named in the transcript, source)``; the encoding is detected."""
        try:
            text, _ = read_text(path, fallbacks=("gb18030",))
        except ValueError as error:
            return {}, [file_issue(path, str(error).split(": ", 1)[-1])]
        entries: dict[str, tuple[str, str | None, Source]] = {}
        issues: list[Issue] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            parts = [p.strip() for p in raw.split("\t")]
            while parts and not parts[-1]:
                parts.pop()
            if len(parts) < 2 or not _ID.match(parts[0]):
                issues.append(line_issue(path, number, f"malformed transcript line {raw.strip()[:60]!r}"))
                continue
            if parts[0][:4] != speaker:
                issues.append(line_issue(path, number, f"id {parts[0]} is not speaker {speaker}'s"))
                continue
            said = None
            if len(parts) >= 3:
                said = CHINESE_EMOTIONS.get(parts[-1], parts[-1])
                said = said.capitalize() if said.capitalize() in EMOTIONS else said
                body = " ".join(parts[1:-1])
            else:
                body = parts[1]
            entries.setdefault(parts[0], (body, said, Source(str(path), number)))
        return entries, issues

    @staticmethod
    def _official_plan(root: Path, utterances: list[Utterance]) -> FoldPlan:
        unsplit = [u for u in utterances if "split" not in u.extra]
        if unsplit:
            raise InvalidInput(f"folds=official needs the train/ evaluation/ test/ subfolders in every emotion "
                             f"folder; {len(unsplit)} WAV(s) are outside them (e.g. {unsplit[0].wav}) under {root}")
        fold = {target: [u for u in utterances if u.extra["split"] == sub]
                for sub, target in OFFICIAL_SPLITS.items()}
        return FoldPlan([fold], "official",
                        "ESD's official split: one fold from the train/ evaluation/ test/ subfolders "
                        "(evaluation = valid); the same speakers are in every split", False,
                        "ESD's official split divides each speaker's sentences, not its speakers")


ADAPTER = EsdAdapter()

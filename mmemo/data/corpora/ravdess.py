"""RAVDESS speech files from ``Actor_01/`` ... ``Actor_24/``, labelled by their file names.

A name such as ``03-01-05-01-02-01-18.wav`` codes modality (03 audio-only),
vocal channel (01 speech, 02 song), emotion, intensity, statement, repetition
and actor. Only audio-only speech files are used (1,440 files); converted copies
under the same names (``.flac``, ...) are read too. Odd actors are male, even
actors female. The text is one of two fixed statements, so it
carries no emotion signal.

Video: the full-AV speech recordings (``01-01-EE-II-SS-RR-AA.mp4``, from the
``Video_Speech_Actor_XX.zip`` archives) become each utterance's ``video`` when
they are found, in the same ``Actor_XX/`` folders or under ``--video-root``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mmemo.data.corpora.base import Adapter
from mmemo.data.corpora.files import AudioIndex, audio_stem, measure
from mmemo.data.corpora.fold_rule import RULE_SCHEMES, plan_folds
from mmemo.data.corpora.options import Option
from mmemo.data.corpora.records import Collected, Failure, file_issue
from mmemo.data.manifest import Issue, Utterance, raise_if_issues

EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
            "07": "disgust", "08": "surprised"}
INTENSITY = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")   # the stem; any audio suffix
_ACTOR_DIR = re.compile(r"^Actor_(\d\d)$")


def transcript_of(name: str) -> str | None:
    """The statement a RAVDESS file (``03-01-EE-II-SS-RR-AA`` with any suffix) speaks, or None.

    EmoBox's RAVDESS fold files carry no text; ``mmemo data prepare emobox`` adds it from the
    names, so a text branch (a control: the two statements carry no emotion) can run on them.
    """
    parts = Path(name).name.split(".")[0].split("-")
    return STATEMENTS.get(parts[4]) if len(parts) == 7 and all(p.isdigit() for p in parts) else None


def full_av_videos(root: Path) -> dict[tuple[str, ...], str]:
    """(channel, emotion, intensity, statement, repetition, actor) -> full-AV ``01-...mp4`` path under root."""
    found = {}
    if not root.is_dir():
        return found
    for actor_dir in sorted(p for p in root.iterdir() if p.is_dir() and _ACTOR_DIR.match(p.name)):
        for path in sorted(actor_dir.glob("01-01-*.mp4")):
            match = _NAME.match(path.stem)
            if match:
                found[match.groups()[1:]] = str(path)
    return found


class RavdessAdapter(Adapter):
    name = "ravdess"
    title = "RAVDESS"
    obtain = ("https://zenodo.org/records/1188976 (Audio_Speech_Actors_01-24.zip; free download)")
    licence = "CC BY-NC-SA 4.0."
    layout = """ROOT/                               (the extracted Audio_Speech_Actors_01-24.zip)
  Actor_01/03-01-01-01-01-01-01.wav   modality-channel-emotion-intensity-statement-repetition-actor
  ...
  Actor_24/"""
    options = (
        Option("merge_calm", False, (True, False), "map calm to neutral (7 classes)", kind=bool),
        Option("folds", "emobox", RULE_SCHEMES,
               "emobox: the EmoBox rule (24 balanced actors -> 6 folds of 4); speakers: the same without "
               "the balance test; loso: 24 leave-one-actor-out folds"),
        Option("video_root", None, (), "folder holding the full-AV Actor_XX/01-01-*.mp4 files (default: the "
               "audio root; they become each utterance's video)"),
    )

    def locate(self, root: Path) -> Path:
        candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for candidate in candidates:
            if any(_ACTOR_DIR.match(p.name) and p.is_dir() for p in candidate.iterdir()):
                return candidate
        raise self.layout_error(root, [f"{root}/Actor_01/ ... Actor_24/ (folders of "
                                       "03-01-EE-II-SS-RR-AA.wav files)"])

    def collect(self, root: Path, out: Path, options: dict[str, Any]) -> Collected:
        found: list[Utterance] = []
        issues: list[Issue] = []
        index = AudioIndex()
        videos = full_av_videos(Path(options["video_root"]) if options.get("video_root") else root)
        for actor_dir in sorted(p for p in root.iterdir() if p.is_dir() and _ACTOR_DIR.match(p.name)):
            folder_actor = _ACTOR_DIR.match(actor_dir.name).group(1)
            for path in index.files(actor_dir):
                match = _NAME.match(audio_stem(path.name))
                if not match:
                    issues.append(file_issue(path, "not a RAVDESS name (03-01-EE-II-SS-RR-AA.wav)"))
                    continue
                modality, channel, emotion, intensity, statement, repetition, actor = match.groups()
                if modality != "03" or channel != "01":
                    continue  # video files or song: not the speech corpus
                problems = []
                if emotion not in EMOTIONS:
                    problems.append(f"emotion code {emotion} is not 01-08")
                if intensity not in INTENSITY:
                    problems.append(f"intensity code {intensity} is not 01 or 02")
                if statement not in STATEMENTS:
                    problems.append(f"statement code {statement} is not 01 or 02")
                if actor != folder_actor:
                    problems.append(f"actor {actor} in the name but the file is in {actor_dir.name}")
                if problems:
                    issues.extend(file_issue(path, p) for p in problems)
                    continue
                found.append(Utterance(
                    key=path.stem, wav=str(path), emo=EMOTIONS[emotion], dataset=self.name, speaker=actor,
                    lang="en", text=STATEMENTS[statement], gender="M" if int(actor) % 2 else "F",
                    video=videos.get(match.groups()[1:]),
                    extra={"intensity": INTENSITY[intensity], "statement": statement,
                           "repetition": int(repetition)},
                ))
        raise_if_issues(issues)
        if not found:
            raise self.layout_error(root, [f"{root}/Actor_*/03-01-*.wav (audio-only speech files, or .flac ...)"],
                                    "Only the speech archive (vocal channel 01) is used, not the song one.")
        failures: list[Failure] = []
        utterances = measure(found, failures, desc="RAVDESS wav headers")
        label_map: dict[str, str | None] = {name: name for name in EMOTIONS.values()}
        if options["merge_calm"]:
            label_map["calm"] = "neutral"
        strata = {u.speaker: u.gender for u in utterances if u.speaker and u.gender}
        plan = plan_folds(utterances, options["folds"], lambda u: label_map[u.emo], strata)
        notes = ["the text is one of two fixed statements ('Kids are talking by the door', 'Dogs are sitting "
                 "by the door'), so it carries no emotion signal; text-only models can only be at chance"]
        notes += filter(None, [index.note()])
        with_video = sum(1 for u in utterances if u.video)
        notes.append(f"{with_video} of {len(utterances)} utterances have their full-AV video (01-01-*.mp4)"
                     if with_video else "no full-AV videos (01-01-*.mp4) found: audio only")
        return Collected(utterances, label_map, plan, audio="absolute paths to the audio files under the root",
                         failures=failures, notes=notes)


ADAPTER = RavdessAdapter()

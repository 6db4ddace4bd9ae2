"""CREMA-D from ``AudioWAV/``, labelled by file names ``<actor>_<sentence>_<emotion>_<level>.wav``.

91 actors read 12 fixed sentences in 6 emotions. EmoBox prepared CREMA-D as
**one speaker-dependent fold** (its rule: the actors' per-emotion counts are
not all equal, because some recordings are missing), with ``floor(25%)`` of
each class as test: 1,856 test / 5,586 train of 7,442. That is the default
here too (``folds=emobox``); ``folds=speakers`` gives 22 speaker-disjoint folds
(91 // 4) and ``folds=loso`` 91. Converted copies under the same names
(``AudioWAV/1001_DFA_ANG_XX.flac``, ...) are read too. The face videos of the
repository's ``VideoFlash/<name>.flv`` become each utterance's ``video`` when present.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from mmemo.data.corpora.base import Adapter
from mmemo.data.corpora.files import AudioIndex, audio_stem, measure, read_text
from mmemo.data.corpora.fold_rule import RULE_SCHEMES, plan_folds
from mmemo.data.corpora.options import Option
from mmemo.data.corpora.records import Collected, Failure, file_issue
from mmemo.data.manifest import Issue, Utterance, raise_if_issues

EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")   # the stem; any audio suffix
DEMOGRAPHICS = "VideoDemographics.csv"


class CremadAdapter(Adapter):
    name = "cremad"
    title = "CREMA-D"
    obtain = ("https://github.com/CheyneyComputerScience/CREMA-D (clone with git-lfs so AudioWAV/ holds "
              "audio, not LFS pointers)")
    licence = "Open Database License (ODbL) v1.0."
    layout = """ROOT/                          (the CREMA-D repository)
  AudioWAV/1001_DFA_ANG_XX.wav  actor_sentence_emotion_level
  VideoFlash/1001_DFA_ANG_XX.flv (optional: the face videos)
  VideoDemographics.csv         (optional: actor gender)"""
    options = (
        Option("folds", "emobox", RULE_SCHEMES,
               "emobox: as EmoBox, one stratified fold (25% test, speaker-dependent); speakers: 22 "
               "speaker-disjoint folds; loso: 91 folds"),
    )

    def locate(self, root: Path) -> Path:
        if not (root / "AudioWAV").is_dir() and (root / "CREMA-D" / "AudioWAV").is_dir():
            root = root / "CREMA-D"
        if not (root / "AudioWAV").is_dir():
            raise self.layout_error(root, [f"{root / 'AudioWAV'}/ (1001_DFA_ANG_XX.wav ...)"])
        return root

    def collect(self, root: Path, out: Path, options: dict[str, Any]) -> Collected:
        genders = self._genders(root)
        found: list[Utterance] = []
        issues: list[Issue] = []
        index = AudioIndex()
        for path in index.files(root / "AudioWAV"):
            match = _NAME.match(audio_stem(path.name))
            if not match:
                issues.append(file_issue(path, "not a CREMA-D name (AAAA_SSS_EEE_LL.wav)"))
                continue
            actor, sentence, emotion, level = match.groups()
            problems = []
            if sentence not in SENTENCES:
                problems.append(f"unknown sentence code {sentence} (known: {', '.join(SENTENCES)})")
            if emotion not in EMOTIONS:
                problems.append(f"unknown emotion code {emotion} (known: {', '.join(EMOTIONS)})")
            if level not in LEVELS:
                problems.append(f"unknown level {level} (known: {', '.join(LEVELS)})")
            if problems:
                issues.extend(file_issue(path, p) for p in problems)
                continue
            flash = root / "VideoFlash" / f"{audio_stem(path.name)}.flv"
            found.append(Utterance(
                key=path.stem, wav=str(path), emo=emotion, dataset=self.name, speaker=actor, lang="en",
                text=SENTENCES[sentence], gender=genders.get(actor), video=str(flash) if flash.is_file() else None,
                extra={"sentence": sentence, "level": LEVELS[level]},
            ))
        raise_if_issues(issues)
        if not found:
            raise self.layout_error(root, [f"{root / 'AudioWAV'}/*.wav"])
        failures: list[Failure] = []
        utterances = measure(found, failures, desc="CREMA-D wav headers")
        label_map: dict[str, str | None] = {e: e for e in EMOTIONS}
        strata = {u.speaker: u.gender for u in utterances if u.speaker and u.gender}
        plan = plan_folds(utterances, options["folds"], lambda u: label_map[u.emo], strata)
        notes = ["the 12 sentences are read in every emotion, so the text carries little emotion signal"]
        if options["folds"] == "emobox":
            notes.append("folds=emobox reproduces EmoBox's CREMA-D protocol (one speaker-dependent fold); "
                         "folds=speakers gives speaker-independent folds")
        if not genders:
            notes.append(f"no {DEMOGRAPHICS}: gender unknown, speaker folds are dealt by actor id")
        notes += filter(None, [index.note()])
        with_video = sum(1 for u in utterances if u.video)
        if with_video:
            notes.append(f"{with_video} of {len(utterances)} utterances have their VideoFlash/*.flv face video")
        return Collected(utterances, label_map, plan, audio="absolute paths to the audio files under the root",
                         failures=failures, notes=notes)

    @staticmethod
    def _genders(root: Path) -> dict[str, str]:
        path = root / DEMOGRAPHICS
        if not path.is_file():
            return {}
        text, _ = read_text(path)
        genders = {}
        for row in csv.DictReader(io.StringIO(text, newline="")):
            actor, sex = (row.get("ActorID") or "").strip(), (row.get("Sex") or "").strip().lower()
            if actor and sex in ("male", "female"):
                genders[actor] = "M" if sex == "male" else "F"
        return genders


ADAPTER = CremadAdapter()

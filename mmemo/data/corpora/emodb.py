"""EmoDB (Berlin Database of Emotional Speech) from ``wav/``, labelled by file names.

``03a01Fa.wav``: speaker ``03``, text ``a01``, emotion letter ``F``
(happiness), version ``a``. Ten actors (five female) read ten German sentences
(codes a01 a02 a04 a05 a07 b01 b02 b03 b09 b10). 535 utterances.

Folds: the EmoBox rule finds the actors' per-emotion counts unequal and so
makes **one stratified, speaker-dependent fold** (25% test). (EmoBox's
published EmoDB folders instead use 5 speaker-dependent folds from a list that
is not part of the official download.) ``folds=loso`` gives the 10
leave-one-speaker-out folds common in the literature, ``folds=speakers`` 2
speaker-disjoint folds of five actors. Converted copies under the same names
(``wav/03a01Fa.flac``, ...) are read too.
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

EMOTIONS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness",
            "N": "neutral"}
SENTENCES = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
#: speaker -> (gender, age), from the EmoDB documentation.
SPEAKERS = {"03": ("M", 31), "08": ("F", 34), "09": ("F", 21), "10": ("M", 32), "11": ("M", 26),
            "12": ("M", 30), "13": ("F", 32), "14": ("F", 35), "15": ("M", 25), "16": ("F", 31)}
_NAME = re.compile(r"^(\d\d)([ab]\d\d)([A-Z])([a-z])$")   # the stem; any audio suffix


class EmodbAdapter(Adapter):
    name = "emodb"
    title = "EmoDB (Berlin Database of Emotional Speech)"
    obtain = "http://emodb.bilderbar.info/ (download.zip; free for research)"
    licence = "free for research use (see the EmoDB site); cite Burkhardt et al., Interspeech 2005."
    layout = """ROOT/                 (the extracted download.zip)
  wav/03a01Fa.wav      speaker(2) text(3) emotion(1) version(1)
  lab/ silb/ ...       (not used)"""
    options = (
        Option("folds", "emobox", RULE_SCHEMES,
               "emobox: the EmoBox rule (unbalanced -> one stratified speaker-dependent fold); speakers: "
               "2 speaker-disjoint folds; loso: 10 leave-one-speaker-out folds"),
    )

    def locate(self, root: Path) -> Path:
        if not (root / "wav").is_dir():
            raise self.layout_error(root, [f"{root / 'wav'}/ (03a01Fa.wav ...)"])
        return root

    def collect(self, root: Path, out: Path, options: dict[str, Any]) -> Collected:
        found: list[Utterance] = []
        issues: list[Issue] = []
        index = AudioIndex()
        for path in index.files(root / "wav"):
            match = _NAME.match(audio_stem(path.name))
            if not match:
                issues.append(file_issue(path, "not an EmoDB name (e.g. 03a01Fa.wav)"))
                continue
            speaker, sentence, letter, version = match.groups()
            problems = []
            if speaker not in SPEAKERS:
                problems.append(f"unknown speaker {speaker} (EmoDB has {', '.join(SPEAKERS)})")
            if sentence not in SENTENCES:
                problems.append(f"unknown text code {sentence} (known: {', '.join(SENTENCES)})")
            if letter not in EMOTIONS:
                problems.append(f"unknown emotion letter {letter} (known: {', '.join(EMOTIONS)})")
            if problems:
                issues.extend(file_issue(path, p) for p in problems)
                continue
            found.append(Utterance(
                key=path.stem, wav=str(path), emo=EMOTIONS[letter], dataset=self.name, speaker=speaker,
                lang="de", text=SENTENCES[sentence], gender=SPEAKERS[speaker][0],
                extra={"sentence": sentence, "version": version, "age": SPEAKERS[speaker][1]},
            ))
        raise_if_issues(issues)
        if not found:
            raise self.layout_error(root, [f"{root / 'wav'}/*.wav"])
        failures: list[Failure] = []
        utterances = measure(found, failures, desc="EmoDB wav headers")
        label_map: dict[str, str | None] = {name: name for name in EMOTIONS.values()}
        strata = {s: g for s, (g, _) in SPEAKERS.items()}
        plan = plan_folds(utterances, options["folds"], lambda u: label_map[u.emo], strata)
        notes = ["each of the 10 sentences is read in every emotion, so the text carries little emotion signal"]
        if options["folds"] == "emobox":
            notes.append("folds=emobox is speaker-dependent for EmoDB; use folds=loso (10 folds) to compare "
                         "with most EmoDB papers")
        notes += filter(None, [index.note()])
        return Collected(utterances, label_map, plan, audio="absolute paths to the audio files under the root",
                         failures=failures, notes=notes)


ADAPTER = EmodbAdapter()

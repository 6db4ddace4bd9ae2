"""MSP-Podcast from its release folder: consensus labels, annotators' votes, official splits and test sets.

``Labels/labels_consensus.csv`` gives one row per segment::

    FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
    MSP-PODCAST_0001_0008.wav,N,4.2,4.8,4.0,127,Female,Train

``EmoClass`` is the consensus category (A angry, S sad, H happy, U surprise, F fear, D disgust,
C contempt, N neutral, O other, X no agreement); ``EmoAct``/``EmoVal``/``EmoDom`` are the mean
arousal, valence and dominance ratings on the corpus's 1-7 scale, written as ``arousal``,
``valence`` and ``dominance`` with the scale declared in ``corpus.json`` (``task=dimensional``);
``SpkrID`` is ``Unknown`` for many segments (those have no speaker, and no speaker check can
see them). ``Labels/labels_detailed.csv`` (optional) has one row per annotator (``FileName``,
``Worker``, ``EmoClass`` as a word or a code, ``Other-<word>`` for other); its votes for the
subset's classes become each segment's ``emo_dist`` (``task=soft``). Audio is
``Audios/<FileName>`` or a converted copy under the same name; ``Transcripts/<stem>.txt`` are the
transcripts when present.

Folds keep the official protocol: every fold trains on ``Train`` and validates on
``Development``; fold k tests on the k-th test set present (``Test1``, ``Test2``, ``Test3`` where
labelled). The splits are speaker-independent by design, and a speaker found both in
Train/Development and in a test set is refused, naming both rows.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from pathlib import Path
from typing import Any

from mmemo.data.corpora.base import Adapter
from mmemo.data.corpora.files import AudioIndex, measure, read_text
from mmemo.data.corpora.fold_rule import FoldPlan
from mmemo.data.corpora.options import Option
from mmemo.data.corpora.records import Collected, Failure, line_issue
from mmemo.data.manifest import Issue, Source, Utterance, raise_if_issues

CODES = {"A": "angry", "S": "sad", "H": "happy", "U": "surprise", "F": "fear", "D": "disgust", "C": "contempt",
         "N": "neutral", "O": "other", "X": "no_agreement"}
#: ``subset`` -> the classes kept; the Odyssey 2024 SER challenge scores the eight categories.
SUBSETS = {"eight_class": ("angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"),
           "four_class": ("angry", "happy", "neutral", "sad"),
           "all": ("angry", "contempt", "disgust", "fear", "happy", "neutral", "other", "sad", "surprise")}
SPLITS = ("Train", "Development", "Test1", "Test2", "Test3")
TEST_SETS = ("Test1", "Test2", "Test3")
COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Split_Set")
#: The rating columns and the dimension each becomes; the scale every release uses.
DIMENSIONS = {"EmoAct": "arousal", "EmoVal": "valence", "EmoDom": "dominance"}
SCALE = (1.0, 7.0)
UNKNOWN = {"", "unknown", "none", "nan"}


class MspPodcastAdapter(Adapter):
    name = "msppodcast"
    title = "MSP-Podcast"
    obtain = ("https://ecs.utdallas.edu/research/researchgroups/msp-lab/MSP-Podcast.html (academic licence "
              "from UT Dallas; the release unpacks to Audios/, Labels/ and Transcripts/)")
    licence = "UT Dallas academic licence (research use; no redistribution)."
    layout = """ROOT/
  Labels/labels_consensus.csv    FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
  Labels/labels_detailed.csv     (optional) one row per annotator: FileName,Worker,EmoClass,...
  Audios/MSP-PODCAST_0001_0008.wav
  Transcripts/MSP-PODCAST_0001_0008.txt   (optional)"""
    options = (
        Option("subset", "eight_class", tuple(SUBSETS),
               "eight_class: the Odyssey 2024 challenge's 8 categories; four_class: angry, happy, neutral, sad; "
               "all: the 9 with other. Segments of other classes stay in the manifest for dimensional runs"),
    )

    def locate(self, root: Path) -> Path:
        for candidate in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
            if (candidate / "Labels" / "labels_consensus.csv").is_file() and (candidate / "Audios").is_dir():
                return candidate
        raise self.layout_error(root, [f"{root / 'Labels' / 'labels_consensus.csv'}", f"{root / 'Audios'}/"],
                                "--root must be the release folder that holds Labels/ and Audios/.")

    def collect(self, root: Path, out: Path, options: dict[str, Any]) -> Collected:
        consensus = root / "Labels" / "labels_consensus.csv"
        rows, issues = _read_consensus(consensus)
        issues += _shared_speakers(rows, consensus)
        raise_if_issues(issues, hint="labels_consensus.csv columns: " + ",".join(COLUMNS))
        classes = SUBSETS[options["subset"]]
        detailed = root / "Labels" / "labels_detailed.csv"
        votes, vote_issues = _read_votes(detailed, classes) if detailed.is_file() else ({}, [])
        raise_if_issues(vote_issues, hint="labels_detailed.csv needs FileName and EmoClass columns")
        index = AudioIndex()
        found, failures = [], []
        for row in rows:
            named = root / "Audios" / row["FileName"]
            audio = index.find(named)
            stem = Path(row["FileName"]).stem
            if audio is None:
                failures.append(Failure(stem, str(named), "audio not found", str(row["source"]), row["Split_Set"]))
                continue
            transcript = root / "Transcripts" / f"{stem}.txt"
            text = read_text(transcript)[0].strip() if transcript.is_file() else None
            extra: dict[str, Any] = {"split": row["Split_Set"], **row["dimensions"]}
            if stem in votes:
                extra["emo_dist"] = votes[stem]
            found.append(Utterance(
                key=stem, wav=str(audio), emo=CODES[row["EmoClass"]], dataset=self.name, speaker=row["speaker"],
                gender=row["gender"], lang="en", text=text or None, source=row["source"], extra=extra))
        utterances = measure(found, failures, desc="MSP-Podcast audio headers")
        by_split = {split: [u for u in utterances if u.extra["split"] == split] for split in SPLITS}
        tests = [name for name in TEST_SETS if by_split[name]]
        if not by_split["Train"] or not tests:
            raise self.layout_error(root, ["Train rows" if not by_split["Train"] else "a Test1/Test2/Test3 row"],
                                    f"{consensus} must have Split_Set Train and at least one test set")
        folds = [{"train": by_split["Train"], "valid": by_split["Development"], "test": by_split[name]}
                 if by_split["Development"] else {"train": by_split["Train"], "test": by_split[name]}
                 for name in tests]
        plan = FoldPlan(folds, "official", "MSP-Podcast's official partitions: train on Train, validate on "
                        "Development; fold k tests on " + ", ".join(f"{k} = {n}" for k, n in enumerate(tests, 1)),
                        True, "the official partitions put each known speaker in one partition "
                              "(segments with SpkrID Unknown cannot be checked)")
        label_map: dict[str, str | None] = {name: (name if name in classes else None) for name in CODES.values()}
        unknown = sum(u.speaker is None for u in utterances)
        notes = [f"test sets: {', '.join(f'{n} ({len(by_split[n])})' for n in tests)}",
                 f"{unknown} segment(s) have SpkrID Unknown (no speaker id; leakage checks cannot see them)",
                 "arousal/valence/dominance are the consensus ratings on the 1-7 scale (task=dimensional)",
                 f"{len(votes)} segment(s) have annotators' votes (emo_dist) over the subset's classes"
                 if votes else "no labels_detailed.csv: no emo_dist (task=soft needs it)"]
        notes += filter(None, [index.note()])
        return Collected(utterances, label_map, plan, audio="absolute paths to the release's audio files",
                         failures=failures, notes=notes,
                         extra={"dimensions": {name: list(SCALE) for name in DIMENSIONS.values()},
                                "test_sets": tests, "split_sizes": {s: len(v) for s, v in by_split.items() if v}})


def _csv_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    text, _ = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lstrip("\ufeff") for h in next(reader, [])]
    rows, start = [], reader.line_num + 1
    for record in reader:
        line, start = start, reader.line_num + 1
        if any(cell.strip() for cell in record):
            rows.append((line, dict(zip(header, (cell.strip() for cell in record))) | {"_width": len(record)}))
    return header, rows


def _read_consensus(path: Path) -> tuple[list[dict], list[Issue]]:
    header, records = _csv_rows(path)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        return [], [line_issue(path, 1, f"missing column(s) {missing}; header is {header}")]
    rows, issues, seen = [], [], {}
    for line, fields in records:
        problems = []
        if fields["_width"] != len(header):
            problems.append(f"expected {len(header)} fields, found {fields['_width']}")
        elif fields["EmoClass"] not in CODES:
            problems.append(f"unknown EmoClass {fields['EmoClass']!r} (known: {', '.join(CODES)})")
        elif fields["Split_Set"] not in SPLITS:
            problems.append(f"unknown Split_Set {fields['Split_Set']!r} (known: {', '.join(SPLITS)})")
        elif fields["FileName"] in seen:
            problems.append(f"{fields['FileName']} already at line {seen[fields['FileName']]}")
        dimensions = {}
        for column, name in DIMENSIONS.items():
            if problems:
                break
            try:
                value = float(fields[column])
            except ValueError:
                value = math.nan
            if not (math.isfinite(value) and SCALE[0] <= value <= SCALE[1]):
                problems.append(f"{column} must be a number in [{SCALE[0]:g}, {SCALE[1]:g}], got {fields[column]!r}")
            dimensions[name] = value
        if problems:
            issues.extend(line_issue(path, line, p) for p in problems)
            continue
        seen[fields["FileName"]] = line
        speaker = fields["SpkrID"]
        gender = fields.get("Gender", "")
        rows.append(fields | {"source": Source(str(path), line), "dimensions": dimensions,
                              "speaker": None if speaker.lower() in UNKNOWN else f"spk{speaker}",
                              "gender": None if gender.lower() in UNKNOWN else gender[:1].upper()})
    return rows, issues


def _shared_speakers(rows: list[dict], path: Path) -> list[Issue]:
    """A known speaker in Train/Development and in a test set: the official split would not be speaker-independent."""
    first: dict[str, dict] = {}
    for row in rows:
        if row["speaker"] and row["Split_Set"] in ("Train", "Development"):
            first.setdefault(row["speaker"], row)
    issues, reported = [], set()
    for row in rows:
        seen = first.get(row["speaker"]) if row["Split_Set"] in TEST_SETS else None
        if seen is not None and row["speaker"] not in reported:
            reported.add(row["speaker"])
            issues.append(line_issue(path, row["source"].line,
                                     f"speaker {row['SpkrID']} is in {row['Split_Set']} and in {seen['Split_Set']} "
                                     f"(line {seen['source'].line}): the test set would not be speaker-independent"))
    return issues


def _vote_class(text: str) -> str | None:
    """``Angry`` / ``A`` / ``Other-Concerned`` -> the class name (None if not a category)."""
    word = text.strip()
    if word.upper() in CODES:
        return CODES[word.upper()]
    word = word.split("-", 1)[0].split(";", 1)[0].strip().lower()
    names = {name: name for name in CODES.values()} | {"anger": "angry", "happiness": "happy", "sadness": "sad"}
    return names.get(word)


def _read_votes(path: Path, classes: tuple[str, ...]) -> tuple[dict[str, dict[str, int]], list[Issue]]:
    header, records = _csv_rows(path)
    if "FileName" not in header or "EmoClass" not in header:
        return {}, [line_issue(path, 1, f"needs FileName and EmoClass columns; header is {header}")]
    votes: dict[str, Counter] = {}
    issues = []
    for line, fields in records:
        name = _vote_class(fields.get("EmoClass", ""))
        if name is None:
            issues.append(line_issue(path, line, f"unknown EmoClass {fields.get('EmoClass')!r}"))
            continue
        stem = Path(fields["FileName"]).stem
        counts = votes.setdefault(stem, Counter())
        if name in classes:
            counts[name] += 1
    return {stem: dict(sorted(c.items())) for stem, c in votes.items() if c}, issues


ADAPTER = MspPodcastAdapter()

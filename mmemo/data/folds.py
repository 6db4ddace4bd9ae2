"""Folds as files (EmoBox layout), speaker-independent validation, and fold making.

Layout read and written here::

    <root>/fold_<k>/<name>_{train,valid,test}_fold_<k>.jsonl
    <root>/label_map.json          (optional)
    <root>/data.seg.wrd.stm        (optional; EmoBox keeps speakers here)

Validation never comes from the test split. When a fold has no ``valid`` file,
whole *training speakers* are held out for it, so model selection is as
speaker-independent as the test.
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmemo.data.leakage import check_splits
from mmemo.data.manifest import (
    Issue,
    IssueCollector,
    Source,
    Utterance,
    read_manifest,
    write_manifest,
)
from mmemo.errors import InvalidInput, MissingInput
from mmemo.textfiles import TextFileError, iter_lines, load_json

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
_STM_SPEAKER = re.compile(r"spk=([^,>]+)")


@dataclass
class Splits:
    """The three splits of one fold, and how validation was obtained."""

    train: list[Utterance]
    valid: list[Utterance]
    test: list[Utterance]
    files: dict[str, Path] = field(default_factory=dict)
    valid_origin: str = "file"
    warnings: list[str] = field(default_factory=list)

    def items(self):
        return (("train", self.train), ("valid", self.valid), ("test", self.test))


def fold_files(root: str | Path, fold: int) -> dict[str, Path]:
    """Find ``fold_<k>/*_{split}_fold_<k>.jsonl``; train and test are required."""
    root = Path(root)
    folder = root / f"fold_{fold}"
    if not folder.is_dir():
        available = sorted(p.name for p in root.glob("fold_*") if p.is_dir())
        raise MissingInput(
            f"no folder fold_{fold} under {root}. "
            + (f"Available: {', '.join(available)}." if available else
               "This directory has no fold_<k> folders; write them with `mmemo data folds`.")
        )
    files: dict[str, Path] = {}
    for split in SPLITS:
        matches = sorted(folder.glob(f"*_{split}_fold_{fold}.jsonl"))
        if len(matches) > 1:
            raise InvalidInput(f"several {split} files in {folder}: {[m.name for m in matches]}")
        if matches:
            files[split] = matches[0]
    for split in ("train", "test"):
        if split not in files:
            raise MissingInput(f"no *_{split}_fold_{fold}.jsonl in {folder}")
    return files


def read_stm_speakers(path: str | Path) -> dict[str, str]:
    """Speakers from an EmoBox ``data.seg.wrd.stm`` (``<id=...,spk=Ses01F,...>`` tags)."""
    speakers: dict[str, str] = {}
    for number, line, problem in iter_lines(path):
        if problem is not None:
            raise TextFileError(path, problem, number)
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        match = _STM_SPEAKER.search(line)
        if match:
            speakers[parts[0]] = match.group(1)
    return speakers


def read_fold(
    root: str | Path,
    fold: int,
    *,
    valid_fraction: float = 0.2,
    valid_from: str = "speakers",
    seed: int = 0,
    speaker_overlap: str | None = None,
    collect: IssueCollector | None = None,
) -> Splits:
    """Read one fold, fill speakers from the stm file if needed, and ensure a validation split.

    ``speaker_overlap`` (``error``/``warn``) defaults to the corpus's declared
    protocol: ``warn`` when its ``corpus.json`` says ``speaker_independent: false``
    (an official speaker-dependent split such as MELD's), else ``error``. With ``collect``,
    malformed lines of every split file are added there (and left out) instead of raised.
    """
    root = Path(root)
    files = fold_files(root, fold)
    own = collect if collect is not None else IssueCollector()
    parts = {split: read_manifest(path, own) for split, path in files.items()}
    if collect is None:
        own.raise_if_any()
    stm = root / "data.seg.wrd.stm"
    if stm.is_file() and any(u.speaker is None for us in parts.values() for u in us):
        speakers = read_stm_speakers(stm)
        for utterances in parts.values():
            for utterance in utterances:
                if utterance.speaker is None:
                    utterance.speaker = speaker_from_key(utterance.key) or speakers.get(utterance.key)
    splits = Splits(parts["train"], parts.get("valid", []), parts["test"], files=files)
    try:
        if "valid" not in parts:
            splits.train, splits.valid, splits.valid_origin = carve_validation(
                splits.train, fraction=valid_fraction, by=valid_from, seed=seed
            )
        report = check_splits(dict(splits.items()),
                              speaker_overlap=speaker_overlap or declared_overlap_policy(root))
        report.raise_errors()
    except ValueError as error:
        if not own:  # nothing else is wrong: this is the problem
            raise
        # the fold is incomplete because of bad lines; report this with them, not instead of them
        own.add(getattr(error, "issues", None) or [Issue(Source(str(files["train"]), 0), str(error))])
        return splits
    report.log_warnings()
    splits.warnings = report.warnings
    return splits


_IEMOCAP_UTTERANCE = re.compile(r"(?:iemocap-)?Ses(\d\d)[FM]_\w+?_([FM])\d+$")


def speaker_from_key(key: str) -> str | None:
    """The speaker encoded in a known corpus's utterance id, when the id says it.

    EmoBox's IEMOCAP ``data.seg.wrd.stm`` tags every utterance with its *dialog's*
    prefix (``spk=Ses01F`` also for ``Ses01F_impro04_M000``, spoken by the male
    actor), which would put one actor in two "speakers". The utterance id's last
    part names the actual speaker's gender: ``Ses01F_impro04_M000`` -> ``Ses01M``.
    """
    match = _IEMOCAP_UTTERANCE.match(key)
    return f"Ses{match.group(1)}{match.group(2)}" if match else None


def corpus_info(root: str | Path) -> dict:
    """The corpus's ``corpus.json`` (written by ``mmemo data prepare``), or {} when it has none."""
    info = Path(root) / "corpus.json"
    if not info.is_file():
        return {}
    data = load_json(info)
    if not isinstance(data, dict):
        raise TextFileError(info, "must be a JSON object")
    return data


def declared_overlap_policy(root: Path) -> str:
    """``warn`` for corpora whose corpus.json declares an official speaker-dependent protocol."""
    return "warn" if corpus_info(root).get("speaker_independent") is False else "error"


_FOLD_FOLDER = re.compile(r"fold_\d+$")


def corpus_root_of(manifest: str | Path) -> Path:
    """The corpus a manifest belongs to: ``<root>`` for a fold file ``<root>/fold_<k>/*.jsonl``,
    else the manifest's own folder (``<root>/manifest.jsonl``)."""
    folder = Path(manifest).resolve().parent
    return folder.parent if _FOLD_FOLDER.match(folder.name) else folder


def audio_root_of(corpus_root: str | Path, audio_root: str | Path | None = None) -> Path:
    """Where a corpus's relative ``wav`` paths point, the same for training, checks and prediction.

    An explicit ``audio_root`` wins; else the one ``corpus.json`` recorded (``mmemo data prepare
    emobox --audio-root``; relative to the corpus); else the corpus root itself.
    """
    if audio_root:
        return Path(audio_root)
    recorded = corpus_info(corpus_root).get("audio_root")
    if recorded:
        return Path(corpus_root) / recorded if not Path(recorded).is_absolute() else Path(recorded)
    return Path(corpus_root)


def carve_validation(
    train: list[Utterance], *, fraction: float, by: str = "speakers", seed: int = 0
) -> tuple[list[Utterance], list[Utterance], str]:
    """Hold out a validation set from the training split only.

    ``by="speakers"`` (the default) holds out whole speakers, about ``fraction``
    of them. ``by="utterances"`` makes a speaker-dependent split and is only
    for corpora that carry no speaker ids; it logs a warning.
    """
    if not 0 < fraction < 1:
        raise InvalidInput(f"data.valid_fraction must be in (0, 1), got {fraction}")
    rng = random.Random(seed)
    if by == "speakers":
        missing = [u for u in train if not u.speaker]
        if missing:
            raise InvalidInput(
                f"{len(missing)} training utterances have no speaker (first: {missing[0].where()}), "
                "so validation cannot be carved from training speakers. Add a 'speaker' field, "
                "provide a *_valid_fold_<k>.jsonl file, or set data.valid_from=utterances "
                "to accept a speaker-dependent validation split."
            )
        speakers = sorted({u.speaker for u in train})
        if len(speakers) < 2:
            raise InvalidInput(
                f"the training split has only {len(speakers)} speaker(s), too few to hold one "
                "out for validation; provide a valid file or set data.valid_from=utterances"
            )
        rng.shuffle(speakers)
        n_valid = min(len(speakers) - 1, max(1, round(fraction * len(speakers))))
        held = set(speakers[:n_valid])
        valid = [u for u in train if u.speaker in held]
        rest = [u for u in train if u.speaker not in held]
        return rest, valid, f"training speakers {sorted(held)}"
    if by == "utterances":
        log.warning("validation is carved from training utterances, not speakers: "
                    "model selection is speaker-dependent")
        by_label: dict[str, list[Utterance]] = defaultdict(list)
        for utterance in train:
            by_label[utterance.emo].append(utterance)
        valid_keys: set[str] = set()
        for label in sorted(by_label):
            group = sorted(by_label[label], key=lambda u: u.key)
            rng.shuffle(group)
            valid_keys.update(u.key for u in group[: max(1, round(fraction * len(group)))])
        valid = [u for u in train if u.key in valid_keys]
        rest = [u for u in train if u.key not in valid_keys]
        return rest, valid, f"{fraction:.0%} of training utterances (speaker-dependent)"
    raise InvalidInput(f"data.valid_from must be 'speakers' or 'utterances', got {by!r}")


def make_speaker_folds(
    utterances: Sequence[Utterance], groups: Sequence[Sequence[str]]
) -> list[tuple[list[Utterance], list[Utterance]]]:
    """Leave-one-group-out folds: fold k tests on the speakers of ``groups[k]``."""
    all_speakers = {u.speaker for u in utterances}
    listed = [s for group in groups for s in group]
    if len(listed) != len(set(listed)):
        raise InvalidInput("a speaker appears in more than one fold group")
    unknown = set(listed) - all_speakers
    if unknown:
        raise InvalidInput(f"fold groups name speakers not in the data: {sorted(unknown)}")
    folds = []
    for group in groups:
        held = set(group)
        test = [u for u in utterances if u.speaker in held]
        train = [u for u in utterances if u.speaker not in held]
        folds.append((train, test))
    return folds


def write_folds(
    folds: Sequence[tuple[list[Utterance], list[Utterance]]], root: str | Path, name: str
) -> list[Path]:
    """Write folds as ``<root>/fold_<k>/<name>_{train,test}_fold_<k>.jsonl`` (k from 1)."""
    root = Path(root)
    written = []
    for k, (train, test) in enumerate(folds, start=1):
        folder = root / f"fold_{k}"
        written.append(write_manifest(train, folder / f"{name}_train_fold_{k}.jsonl"))
        written.append(write_manifest(test, folder / f"{name}_test_fold_{k}.jsonl"))
    return written


def available_folds(root: str | Path) -> list[int]:
    """Fold numbers present under ``root`` (``fold_<k>`` folders), sorted."""
    numbers = []
    for path in Path(root).glob("fold_*"):
        suffix = path.name.removeprefix("fold_")
        if path.is_dir() and suffix.isdigit():
            numbers.append(int(suffix))
    return sorted(numbers)

"""Leakage guards: what must never cross from test into training, checked before every run.

* the same utterance key in two splits — an error;
* a test speaker in train or valid — an error, unless the corpus's official
  protocol is speaker-dependent (MELD, corpus.json ``speaker_independent: false``)
  or ``data.allow_speaker_overlap=true``, then a warning;
* identical audio (content hash) in two splits — an error (the same recording
  filed under two keys);
* identical transcripts in train and test — a warning with counts: in IEMOCAP's
  scripted sessions the same sentences recur with their labels, so the text
  branch can memorise them (report improvised-only results as well);
* choosing checkpoints on the test split — an error (see :func:`check_monitor`);
* evaluating emotion2vec+ on corpora it was fine-tuned on — a warning (see
  :func:`check_pretraining_overlap`).

All checks return a :class:`LeakageReport`, so ``mmemo data check`` can show
every finding while training stops on errors.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from mmemo.data.manifest import Issue, ManifestError, Source, Utterance
from mmemo.errors import InvalidInput

log = logging.getLogger(__name__)

SPEAKER_OVERLAP_POLICIES = ("error", "warn")
#: Corpora emotion2vec+ was fine-tuned on (its paper: pseudo-labelled data drawn from these, incl. EmoBox
#: training splits); evaluating it there overstates what it does on unseen data.
EMOTION2VEC_PLUS_TRAINING = ("iemocap", "meld", "ravdess", "cremad", "crema-d", "esd", "emodb", "msp-podcast",
                             "tess", "savee", "casia", "m3ed")


@dataclass
class LeakageReport:
    errors: list[Issue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def raise_errors(self) -> None:
        if self.errors:
            raise ManifestError(self.errors, hint="A fold's splits must not share utterances, recordings or "
                                                  "(for speaker-independent protocols) speakers. If the corpus's "
                                                  "official protocol shares speakers, set "
                                                  "data.allow_speaker_overlap=true.")

    def log_warnings(self) -> None:
        for warning in self.warnings:
            log.warning("%s", warning)


def _where(utterance: Utterance) -> Source:
    return utterance.source or Source("<memory>", 0)


def check_splits(splits: dict[str, list[Utterance]], *, speaker_overlap: str = "error",
                 report: LeakageReport | None = None) -> LeakageReport:
    """Keys, speakers and transcripts across the splits of one fold."""
    if speaker_overlap not in SPEAKER_OVERLAP_POLICIES:
        raise InvalidInput(f"speaker overlap policy must be one of {SPEAKER_OVERLAP_POLICIES}, got {speaker_overlap!r}")
    report = report or LeakageReport()
    seen: dict[str, str] = {}
    for split, utterances in splits.items():
        for utterance in utterances:
            other = seen.get(utterance.key)
            if other is not None and other != split:
                report.errors.append(Issue(_where(utterance), f"key {utterance.key!r} is in both {other} and {split}"))
            seen[utterance.key] = split
    test = splits.get("test", [])
    test_speakers = {u.speaker for u in test if u.speaker}
    shared: dict[tuple[str, str], list[Utterance]] = defaultdict(list)
    for split in ("train", "valid"):
        for utterance in splits.get(split, []):
            if utterance.speaker and utterance.speaker in test_speakers:
                shared[(utterance.speaker, split)].append(utterance)
    if shared and speaker_overlap == "error":
        for (speaker, split), utterances in sorted(shared.items()):
            report.errors.append(Issue(_where(utterances[0]), f"speaker {speaker!r} is in both {split} and test "
                                                              f"({len(utterances)} {split} utterances)"))
    elif shared:
        speakers = {speaker for speaker, _ in shared}
        count = sum(len(us) for us in shared.values())
        report.warnings.append(f"{len(speakers)} test speaker(s) also appear in train/valid ({count} utterances); "
                               "this corpus's protocol is speaker-dependent, so results are not speaker-independent")
    _check_transcripts(splits, report)
    return report


def _normalise(text: str) -> str:
    return " ".join("".join(c.lower() if c.isalnum() else " " for c in text).split())


def _check_transcripts(splits: dict[str, list[Utterance]], report: LeakageReport) -> None:
    train_texts = Counter(_normalise(u.text) for u in splits.get("train", []) if u.text and _normalise(u.text))
    test = [u for u in splits.get("test", []) if u.text and _normalise(u.text)]
    repeated = [u for u in test if _normalise(u.text) in train_texts]
    if repeated:
        sentences = Counter(_normalise(u.text) for u in repeated)
        example = sentences.most_common(1)[0][0]
        report.warnings.append(
            f"{len(repeated)} of {len(test)} test utterances ({100 * len(repeated) / len(test):.0f}%) have a "
            f"transcript that also occurs in training ({len(sentences)} distinct sentences, e.g. {example!r}); "
            "a text model can memorise them (IEMOCAP's scripted sessions do this — report improvised-only too)")


_DIGESTS: dict[tuple, str] = {}


def audio_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-1 of a file's bytes; remembered per (path, size, mtime) so a sweep hashes each file once."""
    stat = os.stat(path)
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha1()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(chunk), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def check_duplicate_audio(splits: dict[str, list[Utterance]], report: LeakageReport | None = None) -> LeakageReport:
    """Identical recordings (same file content, or same file and segment) in two splits are an error."""
    report = report or LeakageReport()
    digests: dict[str, str] = {}
    owners: dict[tuple, list[tuple[str, Utterance]]] = defaultdict(list)
    for split, utterances in splits.items():
        for utterance in utterances:
            if utterance.audio_path is None:
                continue
            path = str(utterance.audio_path)
            if path not in digests:
                digests[path] = audio_digest(path)
            owners[(digests[path], utterance.start, utterance.end)].append((split, utterance))
    for items in owners.values():
        split_names = {split for split, _ in items}
        if len(split_names) > 1:
            first_split, first = items[0]
            for split, utterance in items[1:]:
                if split != first_split:
                    report.errors.append(Issue(_where(utterance),
                                               f"audio of {utterance.key!r} ({split}) is identical to {first.key!r} "
                                               f"({first_split}, {first.where()})"))
    return report


def check_monitor(monitor: str | None) -> None:
    """Refuse model selection on the test split (it inflates results; e.g. IEMOCAP WA by ~3 points)."""
    if monitor and monitor.split("/")[0].lower() == "test":
        raise InvalidInput(f"checkpoints are selected on {monitor!r}, a test-split metric; select on validation "
                         "(val/UA) — choosing checkpoints on the test fold leaks it into the result")


def check_pretraining_overlap(encoder_path: str | None, dataset: str) -> str | None:
    """A warning when an emotion2vec+ model is evaluated on a corpus it was fine-tuned on."""
    if not encoder_path or "emotion2vec_plus" not in str(encoder_path).replace("-", "_").lower():
        return None
    if dataset.lower() in EMOTION2VEC_PLUS_TRAINING:
        return (f"{encoder_path} was fine-tuned on data that includes {dataset} (emotion2vec+ used pseudo-labelled "
                "data built from public emotion corpora); its results there are not held-out results")
    return None

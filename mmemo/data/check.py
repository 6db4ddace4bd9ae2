"""``mmemo data check`` and ``mmemo data folds``: inspect a corpus, and make folds for one.

``check`` runs exactly the validation a training run does (same data module),
fold by fold, and prints what it found, so a corpus can be fixed before any
training is started.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mmemo.data.datamodule import EmotionDataModule
from mmemo.data.folds import available_folds, corpus_info, make_speaker_folds, write_folds
from mmemo.data.manifest import read_manifest
from mmemo.errors import InvalidInput, MissingInput

log = logging.getLogger(__name__)


@dataclass
class FoldReport:
    fold: int
    sizes: dict[str, int] = field(default_factory=dict)
    speakers: dict[str, list[str]] = field(default_factory=dict)
    classes: dict[str, dict[str, int]] = field(default_factory=dict)
    with_text: int = 0
    with_video: int = 0
    valid_origin: str = ""
    #: Lines per split rated on every declared dimension (what task=dimensional trains and tests on).
    rated: dict[str, int] = field(default_factory=dict)
    dimensions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[tuple] = field(default_factory=list)
    error: str | None = None


@dataclass
class CheckReport:
    root: Path
    folds: list[FoldReport]

    @property
    def ok(self) -> bool:
        return all(f.error is None and not f.skipped for f in self.folds)

    def render(self) -> str:
        lines = [f"corpus {self.root}"]
        for report in self.folds:
            if report.error:
                lines.append(f"fold {report.fold}: ERROR\n{report.error}")
                continue
            lines.append(f"fold {report.fold}: " + ", ".join(f"{s} {n}" for s, n in report.sizes.items())
                         + f"; validation: {report.valid_origin}")
            for split, counts in report.classes.items():
                speakers = report.speakers[split]
                shown = ", ".join(speakers[:8]) + (" ..." if len(speakers) > 8 else "")
                lines.append(f"  {split:5s} {dict(sorted(counts.items()))}  speakers ({len(speakers)}): {shown}")
            total = sum(report.sizes.values())
            lines.append(f"  transcripts: {report.with_text}/{total}")
            if report.dimensions:
                lines.append(f"  rated on {', '.join(report.dimensions)} (task=dimensional, lines without a class "
                             "included): " + ", ".join(f"{s} {n}" for s, n in report.rated.items()))
            if report.with_video:
                lines.append(f"  videos: {report.with_video}/{total}")
            lines += [f"  warning: {warning}" for warning in report.warnings]
            for split, key, path, reason in report.skipped:
                lines.append(f"  bad audio [{split}] {key} ({path}): {reason}")
        lines.append("OK" if self.ok else "PROBLEMS FOUND")
        return "\n".join(lines)


def check_corpus(root: str | Path, *, folds: list[int] | None = None, audio: bool = True,
                 audio_root: str | None = None, allow_speaker_overlap: bool | None = None) -> CheckReport:
    """Validate every fold (or the given ones) as a training run would, collecting findings."""
    root = Path(root)
    numbers = folds or available_folds(root)
    if not numbers:
        raise MissingInput(f"no fold_<k> folders under {root}")
    reports = []
    with tempfile.TemporaryDirectory() as scratch:
        for number in numbers:
            report = FoldReport(number)
            module = EmotionDataModule(str(root), number, audio_root=audio_root, use_audio=audio, use_text=False,
                                       on_bad_audio="skip", audio_memory_gb=0, output_dir=scratch,
                                       allow_speaker_overlap=allow_speaker_overlap, use_video=True,
                                       decode_video=False)  # video paths are checked, not decoded
            try:
                module.setup()
            except (ValueError, FileNotFoundError) as error:
                report.error = str(error)
                reports.append(report)
                continue
            for split, dataset in module.datasets.items():
                utterances = [e.utterance for e in dataset.examples]
                report.sizes[split] = len(utterances)
                report.speakers[split] = sorted({u.speaker or "?" for u in utterances})
                report.classes[split] = Counter(module.classes[e.label] for e in dataset.examples)
                report.with_text += sum(bool((u.text or "").strip()) for u in utterances)
                report.with_video += sum(u.video_path is not None for u in utterances)
            report.valid_origin = module.splits.valid_origin
            report.dimensions = list(corpus_info(root).get("dimensions") or {})
            if report.dimensions:
                report.rated = {split: sum(all(isinstance(u.extra.get(d), (int, float)) for d in report.dimensions)
                                           for u in utterances) for split, utterances in module.splits.items()}
            report.warnings = list(module.splits.warnings)
            report.skipped = list(module.skipped)
            reports.append(report)
    return CheckReport(root, reports)


def write_group_folds(manifest: str | Path, out: str | Path, *, group_by: str = "speaker",
                      n_folds: int | None = None, name: str | None = None) -> list[Path]:
    """Write leave-one-group-out folds (or ``n_folds`` folds of whole groups) for a manifest.

    Groups are speakers or sessions; a speaker never spans two folds' test sets.
    Relative ``wav`` paths stay relative when the folds are written next to the
    manifest, and become absolute otherwise (so they never climb out of the root).
    """
    manifest, out = Path(manifest), Path(out)
    utterances = read_manifest(manifest)
    missing = [u for u in utterances if not getattr(u, group_by)]
    if missing:
        raise InvalidInput(f"{missing[0].where()}: no {group_by!r} field; folds need one on every line")
    speakers_of: dict[str, set[str]] = {}
    for u in utterances:
        speakers_of.setdefault(getattr(u, group_by), set()).add(u.speaker or getattr(u, group_by))
    owners = Counter(s for speakers in speakers_of.values() for s in speakers)
    shared = sorted(s for s, n in owners.items() if n > 1)
    if shared:
        raise InvalidInput(f"speakers {shared[:5]} appear in several {group_by}s; folds by {group_by} "
                         "would not be speaker-independent")
    groups = sorted(speakers_of)
    count = n_folds or len(groups)
    if not 2 <= count <= len(groups):
        raise InvalidInput(f"need between 2 and {len(groups)} folds for {len(groups)} {group_by}s, got {count}")
    buckets: list[list[str]] = [[] for _ in range(count)]
    for index, group in enumerate(groups):
        buckets[index % count].extend(sorted(speakers_of[group]))
    if out.resolve() != manifest.parent.resolve():
        for u in utterances:
            if not Path(u.wav).is_absolute():
                u.wav = os.path.abspath(manifest.parent / u.wav)
    for u in utterances:
        if not u.speaker:
            u.speaker = getattr(u, group_by)
    prefix = name or utterances[0].dataset or manifest.parent.name
    return write_folds(make_speaker_folds(utterances, buckets), out, prefix)

"""The records every ``mmemo data prepare`` adapter returns and reports, the file names a
prepared corpus has, and the errors adapters raise.

Shared by the adapters (:mod:`mmemo.data.corpora.base`) and the writer
(:mod:`mmemo.data.corpora.writing`), which therefore do not import each other both ways.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmemo.data.corpora.fold_rule import FoldPlan
from mmemo.data.manifest import Issue, Source, Utterance
from mmemo.errors import UserError

CORPUS_FILE = "corpus.json"
MANIFEST_FILE = "manifest.jsonl"
LABEL_MAP_FILE = "label_map.json"
README_FILE = "README.md"
FAILURES_FILE = "prepare_failures.tsv"
SPLIT_ORDER = ("train", "valid", "test")


# --------------------------------------------------------------------------- errors


class CorpusLayoutError(UserError, FileNotFoundError):
    """The root does not look like the corpus: says what is missing and where to obtain it."""

    def __init__(self, title: str, root: Path, missing: Sequence[str], obtain: str, hint: str = ""):
        self.missing = list(missing)
        shown = "\n".join(f"  - {item}" for item in self.missing[:10])
        more = f"\n  ... and {len(self.missing) - 10} more" if len(self.missing) > 10 else ""
        message = (f"{root} does not look like {title}; not found:\n{shown}{more}\n"
                   f"{title} is obtained from {obtain}.")
        if hint:
            message += f"\n{hint}"
        super().__init__(message)


@dataclass(frozen=True)
class FileIssue(Issue):
    """An :class:`Issue` about a whole file (e.g. a badly coded file name), shown without a line."""

    def __str__(self) -> str:
        return f"{self.source.path}: {self.problem}"


def file_issue(path: str | os.PathLike, problem: str) -> FileIssue:
    return FileIssue(Source(str(path), 0), problem)


def line_issue(path: str | os.PathLike, line: int, problem: str) -> Issue:
    return Issue(Source(str(path), line), problem)


# --------------------------------------------------------------------------- records


@dataclass
class Failure:
    """A clip that was left out (missing, unreadable, not convertible), with where it was referenced."""

    key: str
    file: str
    reason: str
    source: str = ""
    split: str = ""


@dataclass
class Collected:
    """What an adapter read from the raw corpus; :func:`write_outputs` turns it into files."""

    utterances: list[Utterance]
    label_map: dict[str, str | None]
    plan: FoldPlan
    audio: str
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreparedCorpus:
    """Summary of a prepared corpus: what was written and how many of what."""

    name: str
    root: Path
    out: Path
    options: dict[str, Any]
    classes: list[str]
    total: int
    class_counts: dict[str, int]
    raw_counts: dict[str, int]
    fold_counts: list[dict[str, dict[str, int]]]
    speakers: list[str]
    speaker_independent: bool
    protocol: str
    files: dict[str, Any]
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n_folds(self) -> int:
        return len(self.fold_counts)

    def render(self) -> str:
        lines = [f"{self.name}: {self.total} utterances, {len(self.speakers)} speakers, "
                 f"{len(self.classes)} classes -> {self.out}",
                 "  classes: " + ", ".join(f"{c} {self.class_counts.get(c, 0)}" for c in self.classes),
                 f"  protocol: {self.protocol}"]
        for k, splits in enumerate(self.fold_counts, start=1):
            sizes = ", ".join(f"{s} {sum(c.values())}" for s, c in splits.items())
            lines.append(f"  fold {k}: {sizes}")
        if not self.speaker_independent:
            lines.append("  note: the folds are NOT speaker-independent (see corpus.json)")
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.failures:
            lines.append(f"  {len(self.failures)} clip(s) left out, listed in {self.files.get('failures')}")
        return "\n".join(lines)

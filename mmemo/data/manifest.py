"""The `Utterance` record and the jsonl manifests that carry it.

A manifest line is a superset of EmoBox's jsonl, so EmoBox fold files are read
as they are. Every problem found while reading is reported as
``file:line: problem`` and all of a file's problems are reported together, so a
user fixes a broken manifest in one pass instead of one error per run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmemo.errors import MissingInput, UserError
from mmemo.textfiles import is_finite_number, iter_lines, loads_json

#: Fields every line must carry. EmoBox files lack speaker/text/lang, so those are optional.
REQUIRED_FIELDS = ("key", "wav", "emo")
_KNOWN_FIELDS = (
    "key", "dataset", "wav", "length", "emo", "speaker", "lang", "text", "channel",
    "start", "end", "session", "gender", "video", "video_start", "video_end",
)
_MAX_ISSUES_SHOWN = 20


@dataclass(frozen=True)
class Source:
    """Where a record came from, so later stages can still name file and line."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class Utterance:
    """One labelled utterance (EmoBox-compatible fields plus optional extras).

    ``wav`` is kept as written in the manifest; ``audio_path`` is the resolved
    absolute path once :func:`resolve_audio_paths` has run. ``emo`` is the raw
    label; the class index is assigned by a :class:`~mmemo.data.labels.LabelMap`.
    """

    key: str
    wav: str
    emo: str
    dataset: str = ""
    length: float | None = None
    speaker: str | None = None
    lang: str | None = None
    text: str | None = None
    channel: int = 1
    start: float | None = None
    end: float | None = None
    session: str | None = None
    gender: str | None = None
    video: str | None = None  # a video file (may be the same file as wav); start/end apply to it too
    video_start: float | None = None  # the video's own window when it differs (IEMOCAP: sentence wav,
    video_end: float | None = None  # dialogue video): seconds in the video file; default start/end
    extra: dict[str, Any] = field(default_factory=dict)
    source: Source | None = field(default=None, compare=False, repr=False)
    audio_path: Path | None = field(default=None, compare=False, repr=False)
    video_path: Path | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The manifest line for this record (extras kept, bookkeeping dropped)."""
        line: dict[str, Any] = {}
        for name in _KNOWN_FIELDS:
            value = getattr(self, name)
            if value is not None or name in REQUIRED_FIELDS:
                line[name] = value
        line.update(self.extra)
        return line

    @property
    def video_window(self) -> tuple[float | None, float | None]:
        """(start, end) seconds of this utterance in its video file."""
        if self.video_start is not None or self.video_end is not None:
            return self.video_start, self.video_end
        return self.start, self.end

    def where(self) -> str:
        """``file:line`` (or the key) for error messages."""
        return str(self.source) if self.source else f"utterance {self.key!r}"


@dataclass(frozen=True)
class Issue:
    source: Source
    problem: str

    def __str__(self) -> str:
        return f"{self.source}: {self.problem}"


class ManifestError(UserError, ValueError):
    """One or more malformed manifest lines; the message lists each as file:line: problem."""

    def __init__(self, issues: list[Issue], hint: str = ""):
        self.issues = issues
        shown = "\n".join(f"  {issue}" for issue in issues[:_MAX_ISSUES_SHOWN])
        more = len(issues) - _MAX_ISSUES_SHOWN
        if more > 0:
            shown += f"\n  ... and {more} more"
        noun = "problem" if len(issues) == 1 else "problems"
        message = f"{len(issues)} manifest {noun}:\n{shown}"
        if hint:
            message += f"\n{hint}"
        super().__init__(message)


def raise_if_issues(issues: list[Issue], hint: str = "") -> None:
    if issues:
        raise ManifestError(issues, hint)


class IssueCollector:
    """Problems from several checking stages, raised together as one :class:`ManifestError`.

    Each stage (reading lines, labels, transcripts, audio paths, audio) adds what it found
    instead of raising, so a user sees every problem of every line in one run.
    """

    def __init__(self) -> None:
        self.issues: list[Issue] = []
        self.hints: list[str] = []

    def add(self, issues: list[Issue], hint: str = "") -> None:
        self.issues.extend(issues)
        if issues and hint and hint not in self.hints:
            self.hints.append(hint)

    def __bool__(self) -> bool:
        return bool(self.issues)

    def raise_if_any(self) -> None:
        if self.issues:
            ordered = sorted(self.issues, key=lambda i: (i.source.path, i.source.line))
            raise ManifestError(ordered, "\n".join(self.hints))


def report(issues: list[Issue], collect: IssueCollector | None, hint: str = "") -> None:
    """Add ``issues`` to ``collect``, or raise them at once when there is no collector."""
    if collect is not None:
        collect.add(issues, hint)
    else:
        raise_if_issues(issues, hint)


def _parse_line(obj: Any, source: Source) -> tuple[Utterance | None, list[Issue]]:
    """Every problem of one line (not only the first), or the record."""
    if not isinstance(obj, dict):
        return None, [Issue(source, f"expected a JSON object, got {type(obj).__name__}")]
    issues: list[Issue] = []
    missing = [name for name in REQUIRED_FIELDS if obj.get(name) in (None, "")]
    if missing:
        issues.append(Issue(source, f"missing field {', '.join(repr(m) for m in missing)}"))
    values: dict[str, Any] = {}
    for name in REQUIRED_FIELDS:
        if name in missing:
            continue
        if isinstance(obj[name], bool) or not isinstance(obj[name], (str, int)):
            issues.append(Issue(source, f"field {name!r} must be a string, got {obj[name]!r}"))
        values[name] = str(obj[name])
    for name in ("length", "start", "end", "video_start", "video_end"):
        value = obj.get(name)
        if value is None:
            continue
        if not is_finite_number(value) or value < 0:
            issues.append(Issue(source, f"field {name!r} must be a finite, non-negative number of seconds, "
                                        f"got {value!r}"))
        else:
            values[name] = float(value)
    for first, last in (("start", "end"), ("video_start", "video_end")):
        if first in values and last in values and values[last] <= values[first]:
            issues.append(Issue(source, f"{last!r} ({values[last]}) must be after {first!r} ({values[first]})"))
    channel = obj.get("channel", 1)
    if isinstance(channel, bool) or not isinstance(channel, int):
        issues.append(Issue(source, f"field 'channel' must be an integer, got {channel!r}"))
    else:
        values["channel"] = channel
    for name in ("dataset", "speaker", "lang", "text", "session", "gender", "video"):
        value = obj.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            issues.append(Issue(source, f"field {name!r} must be a string, got {value!r}"))
        else:
            values[name] = str(value)
    if issues:
        return None, issues
    extra = {k: v for k, v in obj.items() if k not in _KNOWN_FIELDS}
    return Utterance(**values, extra=extra, source=source), []


def iter_manifest(path: str | os.PathLike) -> Iterator[tuple[Utterance | None, list[Issue]]]:
    """Yield ``(utterance, issues)`` per non-blank line; never raises on content.

    Lines are read one at a time (a manifest of any size costs one line of memory here);
    a line that is not UTF-8, not strict JSON (NaN, Infinity, 1e999, a field given twice)
    or not a valid record yields its issues and reading goes on.
    """
    path = Path(path)
    for number, raw, problem in iter_lines(path):
        source = Source(str(path), number)
        if problem is not None:
            yield None, [Issue(source, problem)]
            continue
        if not raw.strip():
            continue
        try:
            obj = loads_json(raw)
        except json.JSONDecodeError as error:
            yield None, [Issue(source, f"bad JSON ({error.msg} at column {error.colno})")]
            continue
        except ValueError as error:
            yield None, [Issue(source, str(error))]
            continue
        yield _parse_line(obj, source)


def read_manifest(path: str | os.PathLike, collect: IssueCollector | None = None) -> list[Utterance]:
    """Read a jsonl manifest, raising one :class:`ManifestError` listing every bad line.

    With ``collect``, the problems are added there and the good lines are returned.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"manifest not found: {path}")
    utterances: list[Utterance] = []
    issues: list[Issue] = []
    seen: dict[str, Source] = {}
    for utterance, line_issues in iter_manifest(path):
        issues.extend(line_issues)
        if utterance is None:
            continue
        assert utterance.source is not None
        if utterance.key in seen:
            issues.append(Issue(utterance.source,
                                f"duplicate key {utterance.key!r} (first at line {seen[utterance.key].line})"))
            continue
        seen[utterance.key] = utterance.source
        utterances.append(utterance)
    if not utterances and not issues:
        issues.append(Issue(Source(str(path), 0), "manifest has no utterances"))
    report(issues, collect)
    return utterances


def write_manifest(utterances: Iterable[Utterance], path: str | os.PathLike) -> Path:
    """Write records as jsonl atomically (a crash never leaves half a manifest)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for utterance in utterances:
            handle.write(json.dumps(utterance.to_json(), ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def resolve_audio_path(wav: str, audio_root: str | os.PathLike) -> tuple[Path | None, str | None]:
    """``(absolute path, None)`` for a manifest's ``wav``, or ``(None, problem)``.

    The one rule every command uses: absolute paths are taken as written; relative ones are
    resolved against ``audio_root`` and may not climb out of it (``../..``): manifests are
    shared files, and one should not be able to point mmemo at arbitrary files on a machine.
    """
    root = Path(os.path.abspath(audio_root))
    path = Path(wav)
    if path.is_absolute():
        resolved = Path(os.path.normpath(path))
    else:
        resolved = Path(os.path.normpath(root / path))
        if resolved != root and root not in resolved.parents:
            return None, f"audio path {wav!r} escapes the data root {root}"
    if not resolved.is_file():
        return None, f"audio file not found: {resolved}"
    return resolved, None


def resolve_audio_paths(utterances: Iterable[Utterance], audio_root: str | os.PathLike,
                        collect: IssueCollector | None = None) -> None:
    """Set ``audio_path`` on each record (:func:`resolve_audio_path`); missing files are reported
    here (raised at once, or added to ``collect``)."""
    found: list[Issue] = []
    for utterance in utterances:
        resolved, problem = resolve_audio_path(utterance.wav, audio_root)
        if problem is not None:
            found.append(Issue(utterance.source or Source("<memory>", 0), f"{problem} (key {utterance.key!r})"))
            continue
        utterance.audio_path = resolved
    report(found, collect, audio_root_hint(audio_root))


def resolve_video_paths(utterances: Iterable[Utterance], audio_root: str | os.PathLike,
                        collect: IssueCollector | None = None) -> None:
    """Set ``video_path`` on each record with a ``video`` field, by the same rule as audio paths.
    A record without one simply has no video (a missing modality); a named file that is absent
    or escapes the root is a problem."""
    found: list[Issue] = []
    for utterance in utterances:
        if not utterance.video:
            continue
        resolved, problem = resolve_audio_path(utterance.video, audio_root)
        if problem is not None:
            found.append(Issue(utterance.source or Source("<memory>", 0),
                               f"{problem.replace('audio', 'video', 1)} (key {utterance.key!r})"))
            continue
        utterance.video_path = resolved
    report(found, collect, audio_root_hint(audio_root))


def audio_root_hint(audio_root: str | os.PathLike) -> str:
    return (f"Relative 'wav' paths are resolved against {os.path.abspath(audio_root)} "
            "(set data.audio_root, or --audio-root, to change it).")

"""RTTM files: speaker turns (``SPEAKER`` lines, NIST's format) and emotion turns (``EMOTION`` lines).

A ``SPEAKER`` line is NIST RTTM: ``SPEAKER <file> <chan> <start> <dur> <NA> <NA> <speaker> <NA> <NA>``.
Emotion timelines use the same ten fields with type ``EMOTION``, the emotion in the sub-type field
and the speaker (or ``<NA>``) in the name field, so standard RTTM tools still parse the file and
one file can hold both kinds. Reading is strict: a bad line is named ``file:line`` with the problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from mmemo.errors import InvalidInput

MAX_LINE = 4096
NA = "<NA>"


@dataclass(frozen=True)
class Span:
    """One RTTM line: ``label`` is the speaker (SPEAKER) or the emotion (EMOTION)."""

    kind: str
    recording: str
    start: float
    end: float
    label: str
    speaker: str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


def speaker_line(recording: str, start: float, end: float, speaker: str) -> str:
    return f"SPEAKER {recording} 1 {start:.3f} {end - start:.3f} {NA} {NA} {speaker} {NA} {NA}"


def emotion_line(recording: str, start: float, end: float, emotion: str, speaker: str | None = None) -> str:
    return f"EMOTION {recording} 1 {start:.3f} {end - start:.3f} {NA} {emotion} {speaker or NA} {NA} {NA}"


def write_rttm(path: str | Path, lines: list[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def read_rttm(path: str | Path, kind: str | None = None) -> list[Span]:
    """Every ``SPEAKER``/``EMOTION`` line (only ``kind`` when given); other RTTM types are skipped."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such RTTM file")
    spans = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if len(line) > MAX_LINE:
                raise InvalidInput(f"{path}:{number}: line longer than {MAX_LINE} characters")
            fields = line.split()
            if not fields or fields[0].startswith((";", "#")):
                continue
            if fields[0] not in ("SPEAKER", "EMOTION"):
                continue
            if kind is not None and fields[0] != kind:
                continue
            if len(fields) < 8:
                raise InvalidInput(f"{path}:{number}: an RTTM line has 10 fields (type file channel start "
                                   f"duration ortho subtype name conf slat), got {len(fields)}")
            try:
                start, duration = float(fields[3]), float(fields[4])
            except ValueError:
                raise InvalidInput(f"{path}:{number}: start and duration must be numbers, got "
                                   f"{fields[3]!r} and {fields[4]!r}") from None
            if not (math.isfinite(start) and math.isfinite(duration) and start >= 0 and duration > 0):
                raise InvalidInput(f"{path}:{number}: start must be >= 0 and duration > 0 seconds "
                                   f"(got {fields[3]}, {fields[4]})")
            if fields[0] == "SPEAKER":
                spans.append(Span("SPEAKER", fields[1], start, start + duration, fields[7], fields[7]))
            else:
                if fields[6] == NA:
                    raise InvalidInput(f"{path}:{number}: an EMOTION line carries its emotion in field 7 (sub-type)")
                spans.append(Span("EMOTION", fields[1], start, start + duration, fields[6],
                                  None if fields[7] == NA else fields[7]))
    return spans

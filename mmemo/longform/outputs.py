"""Files of a long-form prediction: the full JSON, a CSV of segments, and RTTM (speakers + emotions)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from mmemo.longform.rttm import emotion_line, speaker_line, write_rttm


def segments_csv(result) -> str:
    handle = io.StringIO()
    writer = csv.writer(handle)
    writer.writerow(["start", "end", "speaker", "label", "confidence", *result.classes, "text", "error"])
    for s in result.segments:
        writer.writerow([f"{s.start:.3f}", f"{s.end:.3f}", s.speaker or "", s.label or "",
                         "" if s.confidence is None else f"{s.confidence:.5f}",
                         *[f"{s.scores[c]:.5f}" if c in s.scores else "" for c in result.classes],
                         s.text or "", s.error or ""])
    return handle.getvalue()


def rttm_lines(result, recording: str) -> list[str]:
    """SPEAKER lines (when diarized) then EMOTION lines (each segment's top emotion)."""
    lines = [speaker_line(recording, s.start, s.end, s.speaker) for s in result.segments if s.speaker]
    lines += [emotion_line(recording, s.start, s.end, s.label, s.speaker) for s in result.segments if s.label]
    return lines


def write_long_form(result, folder: str | Path) -> dict[str, Path]:
    """``<stem>.json``, ``<stem>.segments.csv`` and ``<stem>.rttm`` in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(result.path).stem
    paths = {"json": folder / f"{stem}.json", "csv": folder / f"{stem}.segments.csv"}
    paths["json"].write_text(json.dumps(result.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["csv"].write_text(segments_csv(result), encoding="utf-8")
    paths["rttm"] = write_rttm(folder / f"{stem}.rttm", rttm_lines(result, stem))
    return paths

"""Writing predictions: json, jsonl or csv, and embeddings as one ``.npy`` per clip plus an index."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import numpy as np

from mmemo.errors import InvalidInput
from mmemo.inference.predictions import Prediction
from mmemo.textfiles import dumps_json

FORMATS = ("json", "jsonl", "csv")
INDEX_FILE = "index.jsonl"


def render_predictions(predictions: list[Prediction], fmt: str, classes: list[str],
                       dimensions: list[str] | None = None) -> str:
    """The predictions as text.

    json: one list of records; jsonl: one record per line; csv: one row per clip in utterance
    mode, one row per frame when the predictions carry timelines (failed clips get a row with
    their ``error``). Probability columns are ``p_<class>`` in the model's class order, then one
    column per predicted dimension (``arousal``, ``valence``, ... on [0, 1]) for models that have them;
    with ``--explain`` utterance rows end in ``generated_rationale`` (JSON also gives the cues and the LM).
    """
    dimensions = list(dimensions or [])
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "json":
        return dumps_json([p.to_dict() for p in predictions], ensure_ascii=False, indent=1) + "\n"
    if fmt == "jsonl":
        return "".join(dumps_json(p.to_dict(), ensure_ascii=False) + "\n" for p in predictions)
    frames = any(p.timeline is not None for p in predictions)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    probability_columns = [f"p_{c}" for c in classes]
    if frames:
        writer.writerow(["audio_id", "time", "label", *probability_columns, *dimensions, "error"])
        for p in predictions:
            if p.timeline is None:
                writer.writerow([p.audio_id, "", "", *[""] * (len(classes) + len(dimensions)), p.error or ""])
                continue
            top = p.timeline.scores.argmax(1) if len(p.timeline.times) else []
            values = p.timeline.values if dimensions and p.timeline.values is not None else \
                np.zeros((len(p.timeline.times), 0))
            for t, index, row, value in zip(p.timeline.times, top, p.timeline.scores, values):
                writer.writerow([p.audio_id, f"{t:.3f}", classes[int(index)], *(f"{v:.5f}" for v in row),
                                 *(f"{v:.5f}" for v in value), ""])
    else:
        explained = any(p.rationale is not None for p in predictions)  # --explain: generated text, so named
        writer.writerow(["audio_id", "label", "confidence", "duration", *probability_columns, *dimensions, "error",
                         *(["generated_rationale"] if explained else [])])
        for p in predictions:
            scores = [f"{p.scores[c]:.5f}" if c in p.scores else "" for c in classes]
            values = [f"{(p.dimensions or {})[d]:.5f}" if d in (p.dimensions or {}) else "" for d in dimensions]
            writer.writerow([p.audio_id, p.label or "", "" if p.confidence is None else f"{p.confidence:.5f}",
                             f"{p.duration:.3f}", *scores, *values, p.error or "",
                             *([(p.rationale or {}).get("text", "")] if explained else [])])
    return buffer.getvalue()


def write_text(text: str, path: str | Path) -> Path:
    """Atomic write (a crash never leaves half a result file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def embedding_filename(audio_id: str) -> str:
    """A safe file name for an id (path separators and odd characters become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", audio_id).strip("._") or "clip"


def save_embeddings(predictions: list[Prediction], directory: str | Path, model_id: str) -> Path:
    """``<id>.npy`` (float32 [D]) per successful clip and ``index.jsonl`` mapping id → file.

    Index lines: ``{"audio_id", "path" (relative to the folder), "dims", "model_id", "source"}``.
    An existing index is extended: rows for the same id are replaced.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    index_path = directory / INDEX_FILE
    rows: dict[str, dict] = {}
    if index_path.is_file():
        for line in index_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["audio_id"]] = row
    taken = {row["path"]: audio_id for audio_id, row in rows.items()}
    for prediction in predictions:
        if prediction.embedding is None:
            continue
        name = embedding_filename(prediction.audio_id) + ".npy"
        counter = 2
        while taken.get(name, prediction.audio_id) != prediction.audio_id:
            name = f"{embedding_filename(prediction.audio_id)}-{counter}.npy"
            counter += 1
        taken[name] = prediction.audio_id
        np.save(directory / name, np.asarray(prediction.embedding, dtype=np.float32))
        rows[prediction.audio_id] = {"audio_id": prediction.audio_id, "path": name,
                                     "dims": int(np.asarray(prediction.embedding).shape[-1]),
                                     "model_id": model_id, "source": "speech_encoder_mean"}
    write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows.values()), index_path)
    return index_path

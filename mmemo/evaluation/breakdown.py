"""Test accuracy broken down by a manifest field, e.g. the demo corpora's ``cue``.

The demo corpora record which modality carries each utterance's label (``cue``: speech, text,
both, face). Accuracy per cue is the check of a fusion study's claim: a unimodal model fails on
the other modalities' shares, and a model that gains from a modality gains on its share. A run
stores it in ``metrics.json`` (``test.accuracy_by_cue``); tables pool it over folds and seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

BREAKDOWN_FIELD = "cue"


def accuracy_by_field(predictions: Sequence[dict], values: dict[str, str]) -> dict[str, dict]:
    """``{value: {"accuracy": fraction, "n": count}}`` over predictions rows (key, label, prediction)."""
    hits: dict[str, list[bool]] = {}
    for row in predictions:
        value = values.get(row["key"])
        if value is not None:
            hits.setdefault(str(value), []).append(row["label"] == row["prediction"])
    return {v: {"accuracy": sum(h) / len(h), "n": len(h)} for v, h in sorted(hits.items())}


def field_values(utterances, field: str = BREAKDOWN_FIELD) -> dict[str, str]:
    """key -> the utterance's ``field`` (from its manifest extras), for those that have it."""
    return {u.key: u.extra[field] for u in utterances if field in (u.extra or {})}


def pooled_by_field(runs, row: Callable, column: Callable, key: str = "accuracy_by_cue") -> dict:
    """(row, column) -> value -> accuracy (%) pooled over the cell's runs (weighted by utterances)."""
    pooled: dict[tuple[str, str], dict[str, list[float]]] = {}
    for run in runs:
        for value, entry in (run.test.get(key) or {}).items():
            cell = pooled.setdefault((row(run), column(run)), {}).setdefault(value, [0.0, 0.0])
            cell[0] += entry["accuracy"] * entry["n"]
            cell[1] += entry["n"]
    return {k: {v: 100 * hits / n for v, (hits, n) in values.items() if n} for k, values in pooled.items()}


def render_breakdown(pooled: dict, rows: Sequence[str], columns: Sequence[str], field: str = BREAKDOWN_FIELD,
                     order: Sequence[str] = ("speech", "text", "both", "face")) -> str:
    """A markdown table: one line per (row, column) cell, one column per value of ``field``."""
    found = {v for cell in pooled.values() for v in cell}
    values = [v for v in order if v in found] + sorted(found - set(order))
    if not values:
        return ""
    lines = [f"Test accuracy by {field} (which modality carries the label; %, pooled over folds and seeds)", "",
             "| model | modalities | " + " | ".join(f"{field}={v}" for v in values) + " |",
             "|---|---|" + "---|" * len(values)]
    for r in rows:
        for c in columns:
            cell = pooled.get((r, c))
            if cell:
                lines.append(f"| {r} | {c} | " + " | ".join(
                    "" if math.isnan(cell.get(v, math.nan)) else f"{cell[v]:.1f}" for v in values) + " |")
    return "\n".join(lines) + "\n"

"""A run's result files: ``metrics.json``, ``predictions.csv``, ``confusion_matrix.png`` (tasks with
classes) and ``dimensions.png`` (predicted against rated values, tasks with dimensions).

Neural runs, classical baselines and ``mmemo eval`` all write the same files,
so tables and comparisons read every run the same way.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from mmemo.evaluation.plots import plot_confusion, plot_dimensions


def write_json(path: Path, data: dict) -> Path:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_run_report(output_dir: str | Path, *, test: dict, meta: dict, valid: dict | None = None,
                     predictions: list[dict] | None = None, title: str = "") -> Path:
    """Write the standard result files of a run and return the ``metrics.json`` path."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if predictions:
        with (output_dir / "predictions.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(predictions[0]))
            writer.writeheader()
            writer.writerows(predictions)
    if "confusion" in test:
        plot_confusion(test["confusion"], test["classes"], output_dir / "confusion_matrix.png",
                       title=title or f"test UA {100 * test['UA']:.1f}%  WA {100 * test['WA']:.1f}%")
    if test.get("dimensions") and predictions:
        plot_dimensions(predictions, test["dimensions"], output_dir / "dimensions.png",
                        scores={d: test.get(f"CCC_{d}") for d in test["dimensions"]})
    return write_json(output_dir / "metrics.json", {"test": test, "valid": valid, "meta": meta})


def read_metrics(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8"))

"""Figures written next to a run's metrics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mmemo.evaluation.metric_names import is_percent, metric_label  # noqa: E402


def plot_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path,
                   title: str = "") -> Path:
    """Row-normalised confusion matrix (recall per true class), with raw counts in each cell."""
    counts = np.asarray(confusion, dtype=float)
    rates = counts / np.clip(counts.sum(1, keepdims=True), 1, None)
    size = max(4.0, 0.8 * len(classes) + 2)
    figure, axis = plt.subplots(figsize=(size, size * 0.85))
    image = axis.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), classes)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            axis.text(j, i, f"{rates[i, j]:.2f}\n({int(counts[i, j])})", ha="center", va="center",
                      fontsize=8, color="white" if rates[i, j] > 0.5 else "black")
    figure.colorbar(image, ax=axis, fraction=0.046, label="recall")
    if title:
        axis.set_title(title)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_dimensions(predictions: Sequence[dict], dimensions: Sequence[str], path: str | Path, *,
                    scores: dict | None = None) -> Path:
    """Predicted against rated value per dimension (normalised [0, 1]), one panel each, with the
    identity line: a CCC near 0 shows as a flat cloud, a biased model as one off the diagonal."""
    figure, axes = plt.subplots(1, len(dimensions), figsize=(3.4 * len(dimensions), 3.4), squeeze=False)
    for axis, name in zip(axes[0], dimensions):
        pairs = [(float(row[f"{name}_true"]), float(row[name])) for row in predictions
                 if row.get(f"{name}_true") not in ("", None)]
        if pairs:
            true, predicted = np.asarray(pairs).T
            axis.scatter(true, predicted, s=6, alpha=0.5)
        axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
        axis.set_xlim(-0.02, 1.02)
        axis.set_ylim(-0.02, 1.02)
        axis.set_xlabel(f"rated {name}")
        axis.set_ylabel(f"predicted {name}")
        score = (scores or {}).get(name)
        axis.set_title(f"{name}: CCC {score:.3f} (n={len(pairs)})" if score is not None else name, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def bar_chart(groups: Sequence[str], series: dict[str, Sequence[tuple[float, float]]], path: str | Path, *,
              ylabel: str = "test %", chance: float | None = None, title: str = "", top: float = 100) -> Path:
    """Grouped bars with error bars: ``series[name][i]`` is (mean, std) for ``groups[i]``."""
    count = max(1, len(series))
    width = 0.8 / count
    x = np.arange(len(groups))
    figure, axis = plt.subplots(figsize=(max(6.0, 1.4 * len(groups) + 2), 4))
    for i, (name, values) in enumerate(series.items()):
        means = [v[0] for v in values]
        stds = [v[1] for v in values]
        axis.bar(x + i * width, means, width, yerr=stds, capsize=3, label=name)
    if chance is not None:
        axis.axhline(chance, color="grey", linestyle=":", label="chance")
    axis.set_xticks(x + width * (count - 1) / 2, [g.replace(": ", ":\n") for g in groups], fontsize=8)
    axis.set_ylabel(ylabel)
    axis.set_ylim(0, top)
    axis.legend(fontsize=8, loc="upper left")
    if title:
        axis.set_title(title, fontsize=10)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def table_chart(table, path: str | Path, *, metric: str = "UA", chance: float | None = None) -> Path:
    """One horizontal bar per row of a :class:`~mmemo.evaluation.tables.Table` (its first column):
    this study's rows with mean ± std over folds, cited rows hatched and grey, so the eye never
    mixes a reproduced number with a copied one."""
    column = table.columns[0]
    rows = list(table.rows)
    figure, axis = plt.subplots(figsize=(9, 0.42 * len(rows) + 1.6))
    for index, row in enumerate(rows):
        cell, cited = table.cells.get((row, column)), table.cited.get((row, column))
        if cell is not None:
            mean, std = cell.mean_std(metric)
            axis.barh(index, mean, xerr=std, capsize=3, color="#3b6fb6")
            axis.text(mean + std + (0.8 if is_percent(metric) else 0.008), index,
                      f"{mean:.1f}" if is_percent(metric) else f"{mean:.3f}", va="center", fontsize=7)
        elif cited is not None and metric in cited.values:
            axis.barh(index, cited.values[metric], color="#cccccc", hatch="//", edgecolor="#888888")
            axis.text(cited.values[metric] + 0.8, index, f"{cited.values[metric]:.1f} (cited)", va="center", fontsize=7)
    if chance is not None:
        axis.axvline(chance, color="grey", linestyle=":", label="chance")
        axis.legend(fontsize=8, loc="lower right")
    axis.set_yticks(range(len(rows)), rows, fontsize=7)
    axis.invert_yaxis()
    axis.set_xlim(0, 100 if is_percent(metric) else 1)
    unit = " %" if is_percent(metric) else ""
    axis.set_xlabel(f"test {metric_label(metric)}{unit} (this study: mean ± std over folds; hatched: cited)")
    if table.title:
        axis.set_title(table.title, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path

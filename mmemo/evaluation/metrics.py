"""Emotion-recognition metrics, built on torchmetrics so every run computes them alike.

* WA (weighted accuracy): overall accuracy, the field's name for it;
* UA (unweighted accuracy): mean per-class recall, the usual headline metric;
* macro-F1 and weighted-F1; per-class recall; the confusion matrix (rows: true).

Values are fractions in [0, 1]; tables print them as percentages.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassRecall,
)

from mmemo.errors import InvalidInput

HEADLINE = ("UA", "WA", "macro_F1", "weighted_F1")


class EmotionMetrics(nn.Module):
    """Accumulates predictions over an epoch; ``summary()`` gives a JSON-ready dict."""

    def __init__(self, classes: Sequence[str]):
        super().__init__()
        self.classes = list(classes)
        n = len(self.classes)
        self.collection = MetricCollection({
            "WA": MulticlassAccuracy(n, average="micro"),
            "UA": MulticlassRecall(n, average="macro"),
            "macro_F1": MulticlassF1Score(n, average="macro"),
            "weighted_F1": MulticlassF1Score(n, average="weighted"),
            "recall": MulticlassRecall(n, average="none"),
            "confusion": MulticlassConfusionMatrix(n),
        })

    def update(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        """predictions: [B] class ids or [B,C] scores; targets: [B] class ids."""
        if predictions.ndim == 2:
            predictions = predictions.argmax(-1)
        self.collection.update(predictions, targets)

    def reset(self) -> None:
        self.collection.reset()

    def summary(self) -> dict:
        values = self.collection.compute()
        confusion = values["confusion"].long()
        result = {name: float(values[name]) for name in HEADLINE}
        result["per_class_recall"] = {c: float(r) for c, r in zip(self.classes, values["recall"])}
        result["confusion"] = confusion.tolist()
        result["classes"] = list(self.classes)
        result["n"] = int(confusion.sum())
        return result


def compute_metrics(predictions: Sequence[int], targets: Sequence[int], classes: Sequence[str]) -> dict:
    """The same summary for predictions made outside Lightning (e.g. scikit-learn)."""
    metrics = EmotionMetrics(classes)
    metrics.update(torch.as_tensor(list(predictions)), torch.as_tensor(list(targets)))
    return metrics.summary()


def concordance(predictions: Sequence[float], targets: Sequence[float]) -> float:
    """Lin's concordance correlation coefficient (CCC), the field's metric for dimensional emotion.

    ``2 cov(p, t) / (var(p) + var(t) + (mean(p) - mean(t))^2)``, population moments: 1 is perfect
    agreement, 0 none (predicting the mean everywhere scores 0), negative worse than that.
    """
    import numpy as np

    p, t = np.asarray(predictions, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    if p.shape != t.shape or p.ndim != 1 or len(p) < 2:
        raise InvalidInput(f"CCC needs two equal-length series of >= 2 values, got {p.shape} and {t.shape}")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise InvalidInput("CCC of non-finite values")
    covariance = ((p - p.mean()) * (t - t.mean())).mean()
    denominator = p.var() + t.var() + (p.mean() - t.mean()) ** 2
    return float(2 * covariance / denominator) if denominator > 0 else 0.0

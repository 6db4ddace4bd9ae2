"""What a model learns from a batch, and how it is scored, for each task (``task=...``, issue 17).

* ``categorical``: cross-entropy to the class (``emo``); UA/WA/F1.
* ``dimensional``: a regression head on the fusion head's fused embedding
  (:meth:`~mmemo.fusion.base.FusionHead.regressor`) predicts every dimension on the normalised
  [0, 1] scale; loss ``ccc`` (1 - CCC), ``mse`` or ``ccc+mse``; CCC/Pearson/MAE per dimension,
  selected on the mean CCC. Lines whose class the label map drops still train (class -1).
* ``multitask``: both, combined by fixed weights (``loss.task_weights``) or by learned
  uncertainty weighting (``loss.weighting=uncertainty``); lines without a class (-1) only train
  the dimensions.
* ``soft``: cross-entropy to the annotators' distribution (``emo_dist``); scored by the KL and JS
  divergences to it and by UA/WA/F1 against the majority label (``emo``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mmemo.data.targets import SELECTION, check_task, uses_dimensions
from mmemo.errors import InvalidInput
from mmemo.evaluation.dimensional import DimensionalMetrics, SoftLabelMetrics
from mmemo.evaluation.metrics import HEADLINE, EmotionMetrics
from mmemo.fusion.base import FusionOutput
from mmemo.training.losses import UncertaintyWeighting, ccc_loss, soft_cross_entropy

REGRESSION_LOSSES = ("ccc", "mse", "ccc+mse")
WEIGHTINGS = ("fixed", "uncertainty")
STAGES = ("val", "test")


class Objective(nn.Module):
    """The task's losses, metrics and test rows; holds the regression head when the task has dimensions."""

    def __init__(self, task: str, classes: list[str], dimensions: list[str], head: nn.Module, loss: dict,
                 class_weights: torch.Tensor | None = None, dimension_stats: dict | None = None):
        super().__init__()
        self.task = check_task(task)
        self.classes = list(classes)
        self.dimensions = list(dimensions) if uses_dimensions(task) else []
        if uses_dimensions(task) and not self.dimensions:
            raise InvalidInput(f"task={task} needs the corpus's dimensions (data.dimensions or its corpus.json)")
        self.learns_classes = task != "dimensional"
        self.regression = str(loss.get("regression", "ccc"))
        if self.regression not in REGRESSION_LOSSES:
            raise InvalidInput(f"model.loss.regression must be one of {REGRESSION_LOSSES}, got {self.regression!r}")
        weighting = str(loss.get("weighting", "fixed"))
        if weighting not in WEIGHTINGS:
            raise InvalidInput(f"model.loss.weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.task_weights = {"classes": 1.0, "dimensions": 1.0, **dict(loss.get("task_weights") or {})}
        unknown = set(self.task_weights) - {"classes", "dimensions"}
        if unknown:
            raise InvalidInput(f"model.loss.task_weights takes 'classes' and 'dimensions', got {sorted(unknown)}")
        self.uncertainty = UncertaintyWeighting(["classes", "dimensions"]) \
            if task == "multitask" and weighting == "uncertainty" else None
        self.regressor = TargetScale(head.regressor(len(self.dimensions)), len(self.dimensions), dimension_stats) \
            if self.dimensions else None
        self.cross_entropy = nn.CrossEntropyLoss(weight=class_weights, ignore_index=-1,
                                                 label_smoothing=float(loss.get("label_smoothing", 0.0)))
        metrics = {}
        for stage in STAGES:
            parts = {}
            if self.learns_classes:
                parts["classes"] = EmotionMetrics(self.classes)
            if self.dimensions:
                parts["dimensions"] = DimensionalMetrics(self.dimensions)
            if task == "soft":
                parts["soft"] = SoftLabelMetrics()
            metrics[stage] = nn.ModuleDict(parts)
        self.metrics = nn.ModuleDict(metrics)

    @property
    def selection(self) -> str:
        return SELECTION[self.task]

    def regress(self, output: FusionOutput) -> torch.Tensor | None:
        """Dimensional predictions [B, D] on the normalised scale (None when the task has none)."""
        return None if self.regressor is None else self.regressor(output)

    def losses(self, output: FusionOutput, values: torch.Tensor | None, batch: dict) -> dict[str, torch.Tensor]:
        """The task's loss terms by name (``classes``, ``dimensions``)."""
        parts = {}
        if self.task == "soft":
            parts["classes"] = soft_cross_entropy(output.logits, batch["distribution"])
        elif self.learns_classes:
            labelled = batch["label"] >= 0
            parts["classes"] = self.cross_entropy(output.logits.float(), batch["label"]) if bool(labelled.any()) \
                else output.logits.sum() * 0.0
        if values is not None:
            target, mask = batch["dimensions"], batch["dimensions_mask"]
            terms = []
            if "ccc" in self.regression:
                terms.append(ccc_loss(values, target, mask))
            if "mse" in self.regression:
                weight = mask.float()
                terms.append(((values - target) ** 2 * weight).sum() / weight.sum().clamp(min=1.0))
            parts["dimensions"] = sum(terms)
        return parts

    def combine(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.uncertainty is not None:
            return self.uncertainty(parts)
        return sum(self.task_weights[name] * value for name, value in parts.items())

    def update(self, stage: str, output: FusionOutput, values: torch.Tensor | None, batch: dict) -> None:
        metrics = self.metrics[stage]
        if "classes" in metrics:
            labelled = batch["label"] >= 0
            if bool(labelled.any()):
                metrics["classes"].update(output.logits.detach()[labelled], batch["label"][labelled])
        if "dimensions" in metrics:
            metrics["dimensions"].update(values.detach(), batch["dimensions"], batch["dimensions_mask"])
        if "soft" in metrics:
            metrics["soft"].update(output.logits.detach(), batch["distribution"])

    def summary(self, stage: str) -> dict:
        """This epoch's metrics (one flat dict, as ``metrics.json`` stores it), then reset."""
        result: dict = {"task": self.task}
        for metric in self.metrics[stage].values():
            result.update(metric.summary())
            metric.reset()
        if self.task == "multitask":
            result["UA_CCC"] = (result["UA"] + result["CCC"]) / 2
        result.setdefault("n", result.get(f"n_{self.dimensions[0]}") if self.dimensions else 0)
        return result

    def logged(self, summary: dict) -> dict[str, float]:
        """The scalars each epoch logs (to the progress bar, W&B and the checkpoint monitor)."""
        names = [*HEADLINE] if self.learns_classes else []
        if self.dimensions:
            names += ["CCC", *(f"{kind}_{d}" for d in self.dimensions for kind in ("CCC", "Pearson", "MAE"))]
        if self.task == "soft":
            names += ["KL", "JS"]
        if self.task == "multitask":
            names.append("UA_CCC")
        return {name: float(summary[name]) for name in names if name in summary and not _nan(summary[name])}

    def rows(self, output: FusionOutput, values: torch.Tensor | None, batch: dict) -> list[dict]:
        """predictions.csv rows: class and probabilities (tasks with classes), each dimension predicted
        and true (normalised; empty where the line has no value)."""
        rows = []
        scores = torch.softmax(output.logits.float(), -1).cpu() if self.learns_classes else None
        for i, key in enumerate(batch["key"]):
            row = {"key": key, "speaker": batch["speaker"][i]}
            if scores is not None:
                label = int(batch["label"][i])
                row |= {"label": self.classes[label] if label >= 0 else "",
                        "prediction": self.classes[int(scores[i].argmax())],
                        **{f"p_{c}": round(float(p), 5) for c, p in zip(self.classes, scores[i])}}
            for d, name in enumerate(self.dimensions):
                known = bool(batch["dimensions_mask"][i, d])
                row[name] = round(float(values[i, d]), 5)
                row[f"{name}_true"] = round(float(batch["dimensions"][i, d]), 5) if known else ""
            rows.append(row)
        return rows


class TargetScale(nn.Module):
    """The regressor predicts each dimension *standardised* (training mean and std); this maps it back.

    A regressor that starts at 0 on targets centred near 0.5 with a spread of 0.2 spends its first
    epochs learning the mean and scale that the CCC loss punishes most, and under-fits: on the demo
    corpus, concat's validation CCC was 0.86 after 25 epochs, 0.94 with this (docs/decisions.md).
    Without statistics (checkpoints from before) it is the identity.
    """

    def __init__(self, regressor: nn.Module, dims: int, stats: dict | None = None):
        super().__init__()
        self.regressor = regressor
        stats = stats or {}
        self.register_buffer("mean", torch.tensor(stats.get("mean", [0.0] * dims), dtype=torch.float))
        self.register_buffer("std", torch.tensor(stats.get("std", [1.0] * dims), dtype=torch.float))

    def forward(self, output: FusionOutput) -> torch.Tensor:
        return self.mean + self.std * self.regressor(output)


def dimension_stats(values: list[list[float]]) -> dict:
    """Per-dimension mean and std of the training targets (NaN = no value), for :class:`TargetScale`."""
    import numpy as np

    table = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    mean = np.nanmean(table, 0) if len(values) else np.zeros(table.shape[1])
    std = np.nanstd(table, 0) if len(values) else np.ones(table.shape[1])
    mean = np.where(np.isfinite(mean), mean, 0.5)
    std = np.where(np.isfinite(std) & (std > 1e-3), std, 1.0)
    return {"mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std]}


def legacy_state_keys(state: dict) -> dict:
    """Checkpoint keys of older layouts renamed to today's: the loss before objectives existed, and the
    regressor before :class:`TargetScale` wrapped it (those checkpoints keep the identity scale)."""
    def rename(key: str) -> str:
        if key.startswith("loss_fn."):
            return key.replace("loss_fn.", "objective.cross_entropy.", 1)
        if key.startswith("objective.regressor.") and not key.startswith(("objective.regressor.regressor.",
                                                                            "objective.regressor.mean",
                                                                            "objective.regressor.std")):
            return key.replace("objective.regressor.", "objective.regressor.regressor.", 1)
        return key

    return {rename(k): v for k, v in state.items()}


def class_weights(mode: str, counts: list[int] | None) -> torch.Tensor | None:
    """``balanced``: inverse training-class frequency (``n / (C * n_c)``); ``none``: no weights."""
    if mode == "none":
        return None
    if mode != "balanced":
        raise InvalidInput(f"loss.class_weights must be 'none' or 'balanced', got {mode!r}")
    if not counts:
        raise InvalidInput("loss.class_weights=balanced needs the training class counts")
    counts_t = torch.tensor(counts, dtype=torch.float).clamp(min=1)
    return counts_t.sum() / (len(counts_t) * counts_t)


def _nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def headline(result: dict) -> str:
    """A one-line summary of a run's metrics for logs: ``UA 0.71``, ``CCC 0.52`` or both."""
    parts = [f"{name} {result[name]:.4f}" for name in ("UA", "CCC", "KL") if name in result]
    return ", ".join(parts) or "no metrics"

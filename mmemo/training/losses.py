"""Losses for dimensional and soft-label emotion (issue 17), next to the categorical cross-entropy.

* :func:`ccc_loss`: ``1 - CCC`` per dimension over the batch (population moments, as the metric),
  the usual objective for arousal/valence/dominance since it optimises what is scored;
* :func:`soft_cross_entropy`: cross-entropy to the annotators' distribution; for a one-hot
  distribution it is exactly the categorical cross-entropy;
* :class:`UncertaintyWeighting`: the multi-task weighting of Kendall et al. (2018), one learned
  log-variance per task, ``sum(exp(-s_k) L_k + s_k)``, for categorical + dimensional training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmemo.errors import InvalidInput


def concordance_batch(predictions: torch.Tensor, targets: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """CCC per column of ``[B, D]`` predictions and targets (population moments)."""
    if predictions.shape != targets.shape or predictions.ndim != 2:
        raise InvalidInput(f"CCC needs [B, D] predictions and targets of one shape, got "
                           f"{list(predictions.shape)} and {list(targets.shape)}")
    p, t = predictions.float(), targets.float()
    p_mean, t_mean = p.mean(0), t.mean(0)
    covariance = ((p - p_mean) * (t - t_mean)).mean(0)
    denominator = p.var(0, unbiased=False) + t.var(0, unbiased=False) + (p_mean - t_mean) ** 2
    return 2 * covariance / (denominator + eps)


def ccc_loss(predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``mean_d (1 - CCC_d)``; ``mask`` [B, D] drops missing values per dimension."""
    if mask is None:
        return (1 - concordance_batch(predictions, targets)).mean()
    losses = []
    for d in range(predictions.shape[1]):
        keep = mask[:, d].bool()
        if int(keep.sum()) >= 2:
            losses.append(1 - concordance_batch(predictions[keep, d:d + 1], targets[keep, d:d + 1])[0])
    return torch.stack(losses).mean() if losses else predictions.sum() * 0.0


def soft_cross_entropy(logits: torch.Tensor, distribution: torch.Tensor) -> torch.Tensor:
    """``-sum_c q_c log softmax(z)_c``, averaged over the batch."""
    if logits.shape != distribution.shape:
        raise InvalidInput(f"soft labels {list(distribution.shape)} do not match logits {list(logits.shape)}")
    return -(distribution.float() * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


class UncertaintyWeighting(nn.Module):
    """Learned task weights: ``sum_k exp(-s_k) L_k + s_k`` with ``s_k = log sigma_k^2`` (starts at 0: equal)."""

    def __init__(self, tasks: list[str]):
        super().__init__()
        self.tasks = list(tasks)
        self.log_variance = nn.Parameter(torch.zeros(len(self.tasks)))

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        missing = set(self.tasks) - set(losses)
        if missing:
            raise InvalidInput(f"multi-task loss is missing {sorted(missing)}")
        return sum(torch.exp(-s) * losses[k] + s for k, s in zip(self.tasks, self.log_variance))

"""Metrics for dimensional and soft-label emotion (issue 17), accumulated over an epoch like ``EmotionMetrics``.

* :class:`DimensionalMetrics`: per dimension the CCC (population moments, as
  :func:`~mmemo.evaluation.metrics.concordance`), Pearson's r and the MAE on the normalised [0, 1]
  scale, plus ``CCC`` = their mean over dimensions (the selection metric of dimensional runs). A value
  the manifest lacks is masked out of its dimension only.
* :class:`SoftLabelMetrics`: the mean KL divergence KL(q || p) of the predicted distribution p from the
  annotators' q, and the Jensen-Shannon divergence (base 2, so in [0, 1]).

Both are torchmetrics ``Metric`` states, so under DDP every rank's share is gathered before computing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchmetrics import Metric

from mmemo.errors import InvalidInput


class DimensionalMetrics(Metric):
    """CCC / Pearson / MAE per dimension; ``summary()`` gives ``CCC``, ``CCC_<dim>``, ``Pearson_<dim>``,
    ``MAE_<dim>``, ``n_<dim>``."""

    full_state_update = False

    def __init__(self, dimensions: Sequence[str]):
        super().__init__()
        if not dimensions:
            raise InvalidInput("dimensional metrics need at least one dimension")
        self.dimensions = list(dimensions)
        self.add_state("predictions", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")
        self.add_state("masks", default=[], dist_reduce_fx="cat")

    def update(self, predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        if predictions.shape != targets.shape or predictions.shape[-1] != len(self.dimensions):
            raise InvalidInput(f"dimensional predictions {list(predictions.shape)} and targets "
                               f"{list(targets.shape)} must both be [B, {len(self.dimensions)}]")
        mask = torch.ones_like(targets, dtype=torch.bool) if mask is None else mask.bool()
        self.predictions.append(predictions.detach().double())
        self.targets.append(torch.where(mask, targets.detach().double(), torch.zeros_like(targets, dtype=torch.double)))
        self.masks.append(mask)

    def compute(self) -> dict:
        def stacked(state):
            return torch.cat(state) if isinstance(state, list) else state

        if isinstance(self.predictions, list) and not self.predictions:
            return {"CCC": math.nan}
        p, t, m = stacked(self.predictions), stacked(self.targets), stacked(self.masks)
        out: dict = {}
        for d, name in enumerate(self.dimensions):
            keep = m[:, d]
            pd, td = p[keep, d], t[keep, d]
            out[f"n_{name}"] = int(keep.sum())
            if len(pd) < 2:
                out.update({f"CCC_{name}": math.nan, f"Pearson_{name}": math.nan, f"MAE_{name}": math.nan})
                continue
            pc, tc = pd - pd.mean(), td - td.mean()
            covariance = (pc * tc).mean()
            denominator = pd.var(unbiased=False) + td.var(unbiased=False) + (pd.mean() - td.mean()) ** 2
            spread = torch.sqrt((pc**2).mean() * (tc**2).mean())
            out[f"CCC_{name}"] = float(2 * covariance / denominator) if denominator > 0 else 0.0
            out[f"Pearson_{name}"] = float(covariance / spread) if spread > 0 else 0.0
            out[f"MAE_{name}"] = float((pd - td).abs().mean())
        values = [out[f"CCC_{n}"] for n in self.dimensions if not math.isnan(out[f"CCC_{n}"])]
        out["CCC"] = sum(values) / len(values) if values else math.nan
        return out

    def summary(self) -> dict:
        result = self.compute()
        result["dimensions"] = list(self.dimensions)
        return result


class SoftLabelMetrics(Metric):
    """Mean KL(q || p) and JS(q, p) between annotators' distributions q and predicted p."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("kl", default=torch.zeros((), dtype=torch.double), dist_reduce_fx="sum")
        self.add_state("js", default=torch.zeros((), dtype=torch.double), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, distribution: torch.Tensor) -> None:
        kl, js = divergences(logits, distribution)
        self.kl += kl.sum()
        self.js += js.sum()
        self.count += len(kl)

    def compute(self) -> dict:
        n = int(self.count)
        return {"KL": float(self.kl / n) if n else math.nan, "JS": float(self.js / n) if n else math.nan}

    def summary(self) -> dict:
        return self.compute()


def divergences(logits: torch.Tensor, distribution: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample KL(q || softmax(z)) in nats and JS(q, p) in bits (0 log 0 = 0)."""
    if logits.shape != distribution.shape:
        raise InvalidInput(f"soft labels {list(distribution.shape)} do not match scores {list(logits.shape)}")
    log_p = torch.log_softmax(logits.detach().double(), -1)
    q = distribution.detach().double()
    p = log_p.exp()

    def kl_of(a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
        return torch.where(a > 0, a * (torch.log(a.clamp(min=1e-300)) - log_b), torch.zeros_like(a)).sum(-1)

    middle = 0.5 * (p + q)
    log_middle = torch.log(middle.clamp(min=1e-300))
    js = 0.5 * (kl_of(q, log_middle) + kl_of(p, log_middle)) / math.log(2)
    return kl_of(q, log_p), js.clamp(min=0.0, max=1.0)

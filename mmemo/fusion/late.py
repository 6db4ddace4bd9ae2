"""``late``: one classifier per modality, their predictions combined by a rule.

Rules (``combine``):

* ``mean_log_prob``: the average of the modalities' log-probabilities;
* ``learned``: a softmax-weighted average of log-probabilities with learned weights;
* ``product``: product of experts — the sum of log-probabilities, renormalised.

``aux_weight > 0`` adds each modality's own cross-entropy to the loss (logged
as ``aux_<modality>``), so every branch learns to classify alone.

Missing modality: the rule is applied over the modalities a sample has, so a
sample without a transcript is classified by the speech branch alone.

Dimensional targets (arousal, valence, ...) get one regressor per modality, combined over the
modalities a sample has with **learned weights per dimension** (:class:`LateRegressor`; equal at the
start): speech carries arousal and text valence, so an equal average drags each dimension towards
the modality that does not carry it (on the demo corpus, fused arousal fell below speech alone).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmemo.encoders.base import EncoderOutput
from mmemo.errors import InvalidInput
from mmemo.fusion.base import FusionHead, FusionOutput, register
from mmemo.fusion.layers import mlp

RULES = ("mean_log_prob", "learned", "product")
#: The regression weights' logits are this times their parameter, so they move as fast as the regressors
#: learn (at the head's learning rate a softmax weight barely leaves 1/2 in 25 epochs).
WEIGHT_SCALE = 10.0


@register("late")
class LateFusion(FusionHead):
    def __init__(self, input_dims: dict[str, int], num_classes: int, *, hidden: int = 256, dropout: float = 0.2,
                 combine: str = "mean_log_prob", aux_weight: float = 0.0, normalize: bool = True,
                 pooling: str = "mean_std"):
        super().__init__(input_dims, num_classes, normalize=normalize, pooling=pooling)
        if combine not in RULES:
            raise InvalidInput(f"late fusion combine must be one of {RULES}, got {combine!r}")
        self.combine = combine
        self.aux_weight = aux_weight
        self.classifiers = nn.ModuleDict({m: mlp(d, hidden, num_classes, dropout) for m, d in self.pooled_dims.items()})
        self.weights = nn.Parameter(torch.zeros(len(self.modalities)))

    def forward(self, feats: dict[str, EncoderOutput], targets: torch.Tensor | None = None) -> FusionOutput:
        present = self.presence(feats)
        pooled = self.pooled(feats, present)
        logits = {m: self.classifiers[m](pooled[m]) for m in self.modalities}
        log_probs = torch.stack([F.log_softmax(logits[m].float(), -1) for m in self.modalities])  # [M,B,C]
        available = torch.stack([present[m] for m in self.modalities]).float()  # [M,B]
        if self.combine == "learned":
            weights = torch.softmax(self.weights.float()[:, None] + torch.log(available.clamp(min=1e-12)), 0)
        else:
            weights = available / available.sum(0, keepdim=True)
        combined = (weights[..., None] * log_probs).sum(0)
        if self.combine == "product":
            combined = torch.log_softmax((available[..., None] * log_probs).sum(0), -1)
        aux = {}
        if targets is not None and self.aux_weight > 0:
            for m in self.modalities:
                if bool(present[m].any()):
                    loss = F.cross_entropy(logits[m][present[m]].float(), targets[present[m]])
                    aux[f"aux_{m}"] = self.aux_weight * loss
        return FusionOutput(combined, aux_losses=aux, embeddings=pooled, present=present)

    def regressor(self, outputs: int, hidden: int = 256, dropout: float = 0.2) -> nn.Module:
        """One regressor per modality, combined per dimension with learned weights."""
        return LateRegressor(self.pooled_dims, outputs, hidden, dropout)


class LateRegressor(nn.Module):
    def __init__(self, pooled_dims: dict[str, int], outputs: int, hidden: int, dropout: float):
        super().__init__()
        self.nets = nn.ModuleDict({m: mlp(d, hidden, outputs, dropout) for m, d in pooled_dims.items()})
        #: [M, D] logits of each modality's weight for each dimension (softmax over the present ones)
        self.weights = nn.Parameter(torch.zeros(len(pooled_dims), outputs))

    def forward(self, output: FusionOutput) -> torch.Tensor:
        values = torch.stack([self.nets[m](output.embeddings[m]).float() for m in self.nets])  # [M,B,D]
        available = torch.stack([output.present[m] for m in self.nets]).float()[..., None]  # [M,B,1]
        logits = WEIGHT_SCALE * self.weights.float()[:, None, :] + torch.log(available.clamp(min=1e-12))
        weights = torch.softmax(logits, 0)
        return (weights * values).sum(0)

"""``joint_embedding``: project modalities into one space, align them, classify the fused embedding.

Each modality's pooled features are projected to ``embed_dim`` and L2-normalised.
An alignment loss pulls an utterance's speech and text embeddings together:

* ``infonce``: CLIP-style symmetric InfoNCE over the batch with a learnable
  temperature (initialised at 0.07, as in CLIP);
* ``supcon``: supervised contrastive — embeddings of *any* utterances with the
  same label are positives, across and within modalities.

The loss is weighted by ``align_weight`` and logged as ``align`` (and the
temperature as ``temperature``). The classifier sees the concatenation of the
modalities' projections.

Missing modality: because the space is aligned, a missing modality's slot is
filled with the mean of the present modalities' embeddings (a missing
transcript is stood in for by the speech embedding).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmemo.encoders.base import EncoderOutput
from mmemo.errors import InvalidInput
from mmemo.fusion.base import FusionHead, FusionOutput, register
from mmemo.fusion.layers import mlp

LOSSES = ("infonce", "supcon")


def info_nce(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between paired rows of a and b ([N,E], normalised)."""
    logits = scale * a @ b.T
    labels = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def supervised_contrastive(z: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """SupCon over all embeddings z ([N,E], normalised) with class labels [N]."""
    logits = scale * z @ z.T
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    log_prob = logits - torch.logsumexp(logits, 1, keepdim=True)
    counts = positives.sum(1)
    valid = counts > 0
    if not bool(valid.any()):
        return z.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~positives, 0.0)).sum(1)[valid] / counts[valid]
    return per_anchor.mean()


@register("joint_embedding")
class JointEmbeddingFusion(FusionHead):
    def __init__(self, input_dims: dict[str, int], num_classes: int, *, embed_dim: int = 128, hidden: int = 256,
                 dropout: float = 0.2, align_loss: str = "infonce", align_weight: float = 0.5,
                 temperature: float = 0.07, learn_temperature: bool = True, normalize: bool = True,
                 pooling: str = "mean_std"):
        super().__init__(input_dims, num_classes, normalize=normalize, pooling=pooling)
        if align_loss not in LOSSES:
            raise InvalidInput(f"joint_embedding align_loss must be one of {LOSSES}, got {align_loss!r}")
        self.align_loss = align_loss
        self.align_weight = align_weight
        self.projections = nn.ModuleDict({
            m: nn.Sequential(nn.LayerNorm(d), nn.Dropout(dropout), nn.Linear(d, embed_dim))
            for m, d in self.pooled_dims.items()
        })
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)), requires_grad=learn_temperature)
        self.classifier = mlp(embed_dim * len(self.modalities), hidden, num_classes, dropout)

    @property
    def temperature(self) -> torch.Tensor:
        return 1.0 / self.log_scale.clamp(max=math.log(100.0)).exp()

    def forward(self, feats: dict[str, EncoderOutput], targets: torch.Tensor | None = None) -> FusionOutput:
        present = self.presence(feats)
        pooled = self.pooled(feats, present)
        embedded = {m: F.normalize(self.projections[m](pooled[m]).float(), dim=-1) for m in self.modalities}
        stack = torch.stack([embedded[m] for m in self.modalities])  # [M,B,E]
        available = torch.stack([present[m] for m in self.modalities]).float()[..., None]  # [M,B,1]
        stand_in = (stack * available).sum(0) / available.sum(0).clamp(min=1.0)
        slots = [torch.where(present[m][:, None], embedded[m], stand_in) for m in self.modalities]
        fused = torch.cat(slots, -1)
        logits = self.classifier(fused)
        aux = {}
        if self.align_weight > 0 and len(self.modalities) > 1 and (targets is not None or self.training):
            loss = self._alignment(embedded, present, targets)
            if loss is not None:
                aux["align"] = self.align_weight * loss
        embeddings = {**{f"{m}_joint": embedded[m] for m in self.modalities}, "fused": fused}
        return FusionOutput(logits, aux_losses=aux, embeddings=embeddings,
                            logs={"temperature": self.temperature.detach()})

    def _alignment(self, embedded, present, targets) -> torch.Tensor | None:
        scale = self.log_scale.clamp(max=math.log(100.0)).exp()
        both = torch.stack([present[m] for m in self.modalities]).all(0)
        if self.align_loss == "infonce":
            if int(both.sum()) < 2:
                return None
            pairs = [(a, b) for i, a in enumerate(self.modalities) for b in self.modalities[i + 1:]]
            return sum(info_nce(embedded[a][both], embedded[b][both], scale) for a, b in pairs) / len(pairs)
        if targets is None:
            return None
        z = torch.cat([embedded[m][present[m]] for m in self.modalities])
        labels = torch.cat([targets[present[m]] for m in self.modalities])
        return supervised_contrastive(z, labels, scale)

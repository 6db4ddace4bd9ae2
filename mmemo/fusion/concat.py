"""``concat``: masked mean-pool each modality, concatenate, classify with an MLP.

The simplest early-fusion baseline, and with one modality the plain unimodal
pooled classifier. A missing modality is replaced by its learned stand-in
vector (trained by modality dropout; zeros otherwise).
"""

from __future__ import annotations

import torch

from mmemo.encoders.base import EncoderOutput
from mmemo.fusion.base import FusionHead, FusionOutput, register
from mmemo.fusion.layers import mlp


@register("concat")
class ConcatFusion(FusionHead):
    def __init__(self, input_dims: dict[str, int], num_classes: int, *, hidden: int = 256,
                 dropout: float = 0.2, normalize: bool = True, pooling: str = "mean_std"):
        super().__init__(input_dims, num_classes, normalize=normalize, pooling=pooling)
        self.classifier = mlp(sum(self.pooled_dims.values()), hidden, num_classes, dropout)

    def forward(self, feats: dict[str, EncoderOutput], targets: torch.Tensor | None = None) -> FusionOutput:
        pooled = self.pooled(feats, self.presence(feats))
        fused = torch.cat([pooled[m] for m in self.modalities], dim=-1)
        return FusionOutput(self.classifier(fused), embeddings={**pooled, "fused": fused})

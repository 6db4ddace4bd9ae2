"""``linear``: the linear probe of SSL papers — pooled (mean and std), standardised, one linear layer.

This is the head of emotion2vec's frozen-feature evaluation (its IEMOCAP WA
71.79 is a linear probe on mean-pooled features). With several modalities the
pooled vectors are concatenated; a missing one gets its learned stand-in.
"""

from __future__ import annotations

import torch
from torch import nn

from mmemo.encoders.base import EncoderOutput
from mmemo.fusion.base import FusionHead, FusionOutput, register


@register("linear")
class LinearProbe(FusionHead):
    def __init__(self, input_dims: dict[str, int], num_classes: int, *, dropout: float = 0.0,
                 normalize: bool = True, pooling: str = "mean_std"):
        super().__init__(input_dims, num_classes, normalize=normalize, pooling=pooling)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(sum(self.pooled_dims.values()), num_classes)

    def forward(self, feats: dict[str, EncoderOutput], targets: torch.Tensor | None = None) -> FusionOutput:
        pooled = self.pooled(feats, self.presence(feats))
        fused = torch.cat([pooled[m] for m in self.modalities], -1)
        return FusionOutput(self.classifier(self.dropout(fused)), embeddings={**pooled, "fused": fused})

"""``concat``: masked mean-pool each modality, concatenate, classify with an MLP.

The simplest early-fusion baseline, and with one modality the plain unimodal
pooled classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from mmemo.encoders.base import EncoderOutput
from mmemo.fusion.base import FusionHead, FusionOutput, masked_mean, register


@register("concat")
class ConcatFusion(FusionHead):
    def __init__(self, input_dims: dict[str, int], num_classes: int, *, hidden: int = 256,
                 dropout: float = 0.2):
        super().__init__(input_dims, num_classes)
        total = sum(input_dims.values())
        self.classifier = nn.Sequential(
            nn.LayerNorm(total), nn.Dropout(dropout), nn.Linear(total, hidden), nn.GELU(),
            nn.Dropout(dropout), nn.Linear(hidden, num_classes),
        )

    def forward(self, feats: dict[str, EncoderOutput]) -> FusionOutput:
        self.check_inputs(feats)
        missing = [m for m in self.modalities if m not in feats]
        if missing:
            raise KeyError(f"concat fusion needs every modality it was trained with; missing {missing}")
        pooled = {m: masked_mean(feats[m].frames, feats[m].mask) for m in self.modalities}
        fused = torch.cat([pooled[m] for m in self.modalities], dim=-1)
        return FusionOutput(self.classifier(fused), embeddings={**pooled, "fused": fused})

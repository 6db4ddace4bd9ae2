"""``emobox``: EmoBox's downstream head — frame-wise Linear + ReLU, masked mean-pool, Linear.

EmoBox evaluates every frozen upstream with this head, so reproducing its
intra-corpus table needs exactly it. Frames are projected before pooling (unlike
``concat``, which pools first); padded frames are excluded from the mean. With
several modalities each gets its own projection and the pooled vectors are
concatenated; a missing one gets a learned stand-in.
"""

from __future__ import annotations

import torch
from torch import nn

from mmemo.encoders.base import EncoderOutput
from mmemo.fusion.base import FusionHead, FusionOutput, masked_mean, register


@register("emobox")
class EmoBoxHead(FusionHead):
    needs_frames = True

    def __init__(self, input_dims: dict[str, int], num_classes: int, *, hidden: int = 256, dropout: float = 0.1,
                 normalize: bool = True):
        super().__init__(input_dims, num_classes, normalize=normalize)
        self.projections = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in input_dims.items()})
        self.stand_ins = nn.ParameterDict({m: nn.Parameter(torch.zeros(hidden)) for m in input_dims})
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden * len(self.modalities), num_classes)

    def forward(self, feats: dict[str, EncoderOutput], targets: torch.Tensor | None = None) -> FusionOutput:
        present = self.presence(feats)
        feats = self.standardized(feats)
        batch = next(iter(present.values())).shape[0]
        pooled = {}
        for m in self.modalities:
            stand_in = self.stand_ins[m].expand(batch, -1)
            if m not in feats:
                pooled[m] = stand_in
                continue
            frames = torch.relu(self.projections[m](feats[m].frames))
            pooled[m] = torch.where(present[m][:, None], masked_mean(frames, feats[m].mask), stand_in.to(frames.dtype))
        fused = torch.cat([pooled[m] for m in self.modalities], -1)
        return FusionOutput(self.classifier(self.dropout(fused)), embeddings={**pooled, "fused": fused})

"""``attentive``: masked attentive pooling of each modality, then an MLP.

A learned query scores every frame; the softmax over a clip's *valid* frames
weights its frames into one vector, so padding gets zero weight and a clip
pools the same way alone or in a batch. It is the head of the Whisper
fine-tuning recipe, where mean pooling would give the many near-silent frames
of a short utterance as much weight as the voiced ones. With several
modalities the pooled vectors are concatenated; a missing one gets its
learned stand-in.
"""

from __future__ import annotations

import torch
from torch import nn

from mmemo.encoders.base import EncoderOutput
from mmemo.fusion.base import FusionHead, FusionOutput, register
from mmemo.fusion.layers import mlp


class AttentivePooling(nn.Module):
    """frames: [B,T,D], mask: [B,T] -> [B,D] (and the weights [B,T])."""

    def __init__(self, dim: int, heads: int = 1):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.score = nn.Linear(dim, heads)
        self.heads = heads

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.score(self.norm(frames)).float()  # [B,T,H]
        scores = scores.masked_fill(~mask[..., None], float("-inf"))
        weights = torch.softmax(scores, 1).nan_to_num(0.0)  # rows without frames -> zeros
        pooled = torch.einsum("bth,btd->bhd", weights.to(frames.dtype), frames)
        return pooled.mean(1), weights.mean(-1)


@register("attentive")
class AttentiveFusion(FusionHead):
    needs_frames = True

    def __init__(self, input_dims: dict[str, int], num_classes: int, *, hidden: int = 256, dropout: float = 0.2,
                 heads: int = 1, normalize: bool = True):
        super().__init__(input_dims, num_classes, normalize=normalize)
        self.pools = nn.ModuleDict({m: AttentivePooling(d, heads) for m, d in input_dims.items()})
        self.classifier = mlp(sum(input_dims.values()), hidden, num_classes, dropout)

    def forward(self, feats: dict[str, EncoderOutput], targets: torch.Tensor | None = None) -> FusionOutput:
        present = self.presence(feats)
        feats = self.standardized(feats)
        batch = next(iter(present.values())).shape[0]
        pooled, attention = {}, {}
        for m in self.modalities:
            stand_in = self.missing[m].expand(batch, -1)
            if m not in feats:
                pooled[m] = stand_in
                continue
            vector, attention[m] = self.pools[m](feats[m].frames, feats[m].mask)
            pooled[m] = torch.where(present[m][:, None], vector, stand_in.to(vector.dtype))
        fused = torch.cat([pooled[m] for m in self.modalities], -1)
        return FusionOutput(self.classifier(fused), embeddings={**pooled, "fused": fused,
                                                                **{f"{m}_attention": a for m, a in attention.items()}})

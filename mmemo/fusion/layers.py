"""Building blocks shared by the fusion heads."""

from __future__ import annotations

import torch
from torch import nn


def downsample(frames: torch.Tensor, mask: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked average over non-overlapping windows of ``stride`` frames: [B,T,D] -> [B,ceil(T/stride),D].

    Windows start at frame 0 and average only valid frames, so the result does
    not depend on how much padding follows a sequence.
    """
    if stride <= 1:
        return frames, mask
    batch, length, dim = frames.shape
    extra = (-length) % stride
    weights = nn.functional.pad(mask, (0, extra)).to(frames.dtype)
    values = nn.functional.pad(frames, (0, 0, 0, extra)) * weights[..., None]
    sums = values.view(batch, -1, stride, dim).sum(2)
    counts = weights.view(batch, -1, stride).sum(2)
    return sums / counts.clamp(min=1.0)[..., None], counts > 0


def mlp(inputs: int, hidden: int, outputs: int, dropout: float) -> nn.Sequential:
    """The classifier every head ends with: LayerNorm, dropout, Linear, GELU, dropout, Linear."""
    return nn.Sequential(nn.LayerNorm(inputs), nn.Dropout(dropout), nn.Linear(inputs, hidden), nn.GELU(),
                         nn.Dropout(dropout), nn.Linear(hidden, outputs))


class CrossModalBlock(nn.Module):
    """Pre-norm transformer block whose queries attend to *another* modality's frames (MulT-style).

    queries: [B,Tq,D]; context: [B,Tk,D]; context_mask: [B,Tk] (True = valid).
    Padded context frames are excluded by a key-padding mask, so they never
    change the output.
    """

    def __init__(self, dim: int, heads: int, ff_mult: int = 4, dropout: float = 0.1):
        super().__init__()
        self.query_norm = nn.LayerNorm(dim)
        self.context_norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ff_norm = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(ff_mult * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        context = self.context_norm(context)
        attended, _ = self.attention(self.query_norm(queries), context, context,
                                     key_padding_mask=~context_mask, need_weights=False)
        queries = queries + self.dropout(attended)
        return queries + self.dropout(self.ff(self.ff_norm(queries)))

"""Building blocks shared by the fusion heads."""

from __future__ import annotations

import torch
from torch import nn


def downsample(frames: torch.Tensor, mask: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked average over non-overlapping windows of ``stride`` frames: [B,T,D] -> [B,ceil(T/stride),D].

    Windows start at frame 0 and average only valid frames, so the result does
    not depend on how much padding follows a sequence (and equals
    :meth:`FeatureStore.get_windows` of the unpadded sequence). The ragged last
    window is summed on its own rather than padding (copying) the whole batch.
    """
    if stride <= 1:
        return frames, mask
    batch, length, dim = frames.shape
    weights = mask.to(frames.dtype)
    values = frames * weights[..., None]
    full = length - length % stride
    sums = values[:, :full].reshape(batch, -1, stride, dim).sum(2)
    counts = weights[:, :full].reshape(batch, -1, stride).sum(2)
    if full < length:
        sums = torch.cat([sums, values[:, full:].sum(1, keepdim=True)], 1)
        counts = torch.cat([counts, weights[:, full:].sum(1, keepdim=True)], 1)
    return sums / counts.clamp(min=1.0)[..., None], counts > 0


def to_stride(output, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An :class:`~mmemo.encoders.base.EncoderOutput`'s frames and mask at ``stride`` encoder frames per frame.

    Cached features may arrive already averaged (``output.stride``); only the
    remaining factor is applied, which gives the same windows.
    """
    if stride % output.stride:
        raise ValueError(f"frames averaged over {output.stride} encoder frames cannot be re-windowed to {stride}")
    return downsample(output.frames, output.mask, stride // output.stride)


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose CPU mask costs a third of PyTorch's; used on frame-level activations.

    PyTorch draws one Bernoulli sample per element from its CPU generator, which
    made dropout ~40 % of a cross-attention training step on CPU. Here each
    64-bit draw of the same (seeded) generator yields four 16-bit uniforms; an
    element is kept when its uniform clears ``round(p * 65536)``, and kept values
    are scaled by the exact inverse keep rate, so the expectation is unchanged.
    Other devices (CUDA's generator is fast), evaluation and ``p = 0`` use the
    built-in path. Pooled heads keep ``nn.Dropout``: their tensors are tiny, and
    their published tables stay reproducible draw for draw.
    """

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or inputs.device.type != "cpu" or self.p >= 1.0:
            return super().forward(inputs)
        dropped = round(self.p * 65536)
        count = inputs.numel()
        draws = torch.empty((count + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
        uniforms = draws.view(torch.int16)[:count].view(inputs.shape)
        keep = (uniforms >= dropped - 32768).to(inputs.dtype) * (65536 / (65536 - dropped))
        return inputs * keep


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
        self.ff = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(), Dropout(dropout),
                                nn.Linear(ff_mult * dim, dim))
        self.dropout = Dropout(dropout)

    def forward(self, queries: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        context = self.context_norm(context)
        attended, _ = self.attention(self.query_norm(queries), context, context,
                                     key_padding_mask=~context_mask, need_weights=False)
        queries = queries + self.dropout(attended)
        return queries + self.dropout(self.ff(self.ff_norm(queries)))

"""Building blocks shared by the fusion heads."""

from __future__ import annotations

import torch
from torch import nn

from mmemo.errors import InvalidInput


class Standardize(nn.Module):
    """Per-feature standardisation with running statistics: what scikit-learn's ``StandardScaler``
    does for a probe, estimated on the fly over valid rows only.

    Frozen SSL and Whisper features have a few dimensions hundreds of times larger than the rest;
    an optimiser on raw features then follows those dimensions and ignores the others (a
    logistic regression on standardised features beat every head by 4-20 UA points before heads
    did this). Unlike BatchNorm, the batch's own statistics are never used to normalise it:
    mmemo's batches are length-bucketed, so a batch is not a sample of the data (and in emotion
    corpora length carries class information that batch statistics would subtract). Training
    batches update a running estimate - a cumulative average at first (the first epoch gives the
    data set's statistics, exactly as a scaler fitted on them), then an exponential one with rate
    ``momentum`` so fine-tuned encoders' drift is followed - and every batch, in training and in
    evaluation, is normalised with it (no gradient through the statistics).
    x: [N,D] or [B,T,D]; valid: [N] or [B,T] bool.
    """

    def __init__(self, dim: int, momentum: float = 0.001, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.register_buffer("tracked", torch.zeros((), dtype=torch.long))  # rows seen, capped

    @torch.no_grad()
    def update(self, x: torch.Tensor, valid: torch.Tensor) -> None:
        rows = x[valid].double()
        count = rows.shape[0]
        if count == 0:
            return
        seen = int(self.tracked)
        rate = max(count / (seen + count), self.momentum)
        mean, var = rows.mean(0), rows.var(0, unbiased=False)
        delta = mean - self.running_mean.double()
        # pooled mean and variance of (what was seen) and (this batch), weighted by `rate`
        new_mean = self.running_mean.double() + rate * delta
        new_var = (1 - rate) * self.running_var.double() + rate * var + rate * (1 - rate) * delta ** 2
        self.running_mean.copy_(new_mean.float())
        self.running_var.copy_(new_var.float() if seen else var.float())
        self.tracked.fill_(min(seen + count, 2**62))

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.update(x, valid)
        return ((x.float() - self.running_mean) / torch.sqrt(self.running_var + self.eps)).to(x.dtype)


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
        raise InvalidInput(f"frames averaged over {output.stride} encoder frames cannot be re-windowed to {stride}")
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

"""``cross_attention``: bidirectional cross-modal transformer blocks (MulT-style), then pooling.

Each modality's frames are projected to ``dim``. In each of ``depth`` layers,
every modality's frames (queries) attend to the frames of the other
modalities (keys/values) — speech queries attend to text tokens and vice
versa — through :class:`CrossModalBlock`, whose key-padding masks keep padded
frames out. Each stream is then mean-pooled over its valid frames, the pooled
vectors are concatenated and classified.

``frame_stride`` (per modality, e.g. ``{speech: 4}``) first averages frames in
windows, which cuts attention cost for 50 Hz speech encoders by that factor
while keeping padding invariance. With cached features the windows are
averaged once per utterance where the features are read, not in every batch.

With one modality there is nothing to attend to: the stream passes through
``depth`` self-attention blocks instead, so the unimodal run has the same capacity.

Missing modality: a sample without a modality gets a single learned stand-in
token for it, which the other streams attend to; its own pooled vector is the
stand-in's. With modality dropout the stand-in learns to mean "absent".
"""

from __future__ import annotations

import torch
from torch import nn

from mmemo.encoders.base import EncoderOutput
from mmemo.fusion.base import FusionHead, FusionOutput, masked_mean, register
from mmemo.fusion.layers import CrossModalBlock, mlp, to_stride


@register("cross_attention")
class CrossAttentionFusion(FusionHead):
    needs_frames = True

    def __init__(self, input_dims: dict[str, int], num_classes: int, *, dim: int = 64, depth: int = 2,
                 heads: int = 4, dropout: float = 0.1, hidden: int = 256, frame_stride: dict | None = None,
                 normalize: bool = True):
        super().__init__(input_dims, num_classes, normalize=normalize)
        self.frame_stride = {m: int(s) for m, s in (frame_stride or {}).items() if m in input_dims}
        self.inputs = nn.ModuleDict({m: nn.Sequential(nn.LayerNorm(d), nn.Linear(d, dim))
                                     for m, d in input_dims.items()})
        self.stand_ins = nn.ParameterDict({m: nn.Parameter(torch.zeros(dim)) for m in input_dims})
        self.layers = nn.ModuleList(
            nn.ModuleDict({m: CrossModalBlock(dim, heads, dropout=dropout) for m in input_dims}) for _ in range(depth)
        )
        self.out_norm = nn.LayerNorm(dim)
        self.classifier = mlp(dim * len(self.modalities), hidden, num_classes, dropout)

    def _streams(self, feats, present) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Projected frames [B,T,dim] and masks; missing samples become one stand-in token."""
        batch = next(iter(present.values())).shape[0]
        streams = {}
        for m in self.modalities:
            token = self.stand_ins[m].expand(batch, 1, -1)
            if m not in feats:
                streams[m] = (token, torch.ones(batch, 1, dtype=torch.bool, device=token.device))
                continue
            frames, mask = to_stride(feats[m], self.frame_stride.get(m, 1))
            frames = self.inputs[m](frames)
            mask = mask.clone()
            gone = ~present[m]
            if bool(gone.any()):
                frames = frames.clone()
                frames[gone] = 0.0
                frames[gone, 0] = token[gone, 0].to(frames.dtype)
                mask[gone, 0] = True
            streams[m] = (frames, mask)
        return streams

    def forward(self, feats: dict[str, EncoderOutput], targets: torch.Tensor | None = None) -> FusionOutput:
        present = self.presence(feats)
        streams = self._streams(self.standardized(feats), present)
        for layer in self.layers:
            updated = {}
            for m in self.modalities:
                others = [o for o in self.modalities if o != m]
                if others:
                    context = torch.cat([streams[o][0] for o in others], 1)
                    context_mask = torch.cat([streams[o][1] for o in others], 1)
                else:  # unimodal: self-attention with the same block
                    context, context_mask = streams[m]
                updated[m] = (layer[m](streams[m][0], context, context_mask), streams[m][1])
            streams = updated
        pooled = {m: masked_mean(self.out_norm(streams[m][0]), streams[m][1]) for m in self.modalities}
        fused = torch.cat([pooled[m] for m in self.modalities], -1)
        return FusionOutput(self.classifier(fused), embeddings={**pooled, "fused": fused})

"""``gated``: a gated multimodal unit (GMU, Arevalo et al., 2017).

Each modality's pooled features become a candidate ``h_m = tanh(W_m x_m)``; a
gate computed from all modalities decides, per dimension, how much of each
candidate enters the fused vector ``h = sum_m z_m * h_m`` (a softmax over
modalities, which for two modalities is the paper's sigmoid gate ``z`` and ``1-z``).

Missing modality: its gate logits are set to -inf for that sample, so the
fused vector is built from the modalities present.
"""

from __future__ import annotations

import torch
from torch import nn

from mmemo.encoders.base import EncoderOutput
from mmemo.fusion.base import FusionHead, FusionOutput, register
from mmemo.fusion.layers import mlp


@register("gated")
class GatedFusion(FusionHead):
    def __init__(self, input_dims: dict[str, int], num_classes: int, *, dim: int = 256, hidden: int = 256,
                 dropout: float = 0.2, normalize: bool = True, pooling: str = "mean_std"):
        super().__init__(input_dims, num_classes, normalize=normalize, pooling=pooling)
        self.norms = nn.ModuleDict({m: nn.LayerNorm(d) for m, d in self.pooled_dims.items()})
        self.candidates = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in self.pooled_dims.items()})
        self.gate = nn.Linear(sum(self.pooled_dims.values()), dim * len(self.modalities))
        self.dim = dim
        self.classifier = mlp(dim, hidden, num_classes, dropout)

    def forward(self, feats: dict[str, EncoderOutput], targets: torch.Tensor | None = None) -> FusionOutput:
        present = self.presence(feats)
        pooled = self.pooled(feats, present)
        normed = {m: self.norms[m](pooled[m]) for m in self.modalities}
        candidates = torch.stack([torch.tanh(self.candidates[m](normed[m])) for m in self.modalities], 1)  # [B,M,D]
        gate_logits = self.gate(torch.cat([normed[m] for m in self.modalities], -1))
        gate_logits = gate_logits.view(-1, len(self.modalities), self.dim)
        available = torch.stack([present[m] for m in self.modalities], 1)[..., None]  # [B,M,1]
        gates = torch.softmax(gate_logits.float().masked_fill(~available, float("-inf")), 1).to(candidates.dtype)
        fused = (gates * candidates).sum(1)
        return FusionOutput(self.classifier(fused), embeddings={**pooled, "fused": fused,
                                                                "gates": gates.mean(-1)})

"""The fusion-head contract and registry.

A head takes a dict of modality name -> :class:`EncoderOutput`, so adding a
modality (video, physiology) needs no change to the heads. A new head is one
file that subclasses :class:`FusionHead` with ``@register("name")``, plus one
config in ``configs/model/fusion/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from mmemo.encoders.base import EncoderOutput

_REGISTRY: dict[str, type[FusionHead]] = {}


@dataclass
class FusionOutput:
    """logits: [B,C]; aux_losses: extra training losses by name; embeddings: [B,E] by name."""

    logits: torch.Tensor
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    embeddings: dict[str, torch.Tensor] = field(default_factory=dict)


class FusionHead(nn.Module):
    """Base class. ``input_dims`` fixes the modalities (and their order) the head knows."""

    def __init__(self, input_dims: dict[str, int], num_classes: int):
        super().__init__()
        if not input_dims:
            raise ValueError("a fusion head needs at least one modality")
        self.input_dims = dict(input_dims)
        self.modalities = tuple(input_dims)
        self.num_classes = num_classes

    def check_inputs(self, feats: dict[str, EncoderOutput]) -> None:
        unknown = set(feats) - set(self.modalities)
        if unknown:
            raise KeyError(f"{type(self).__name__} was built for {list(self.modalities)}, got {sorted(unknown)}")


def register(name: str):
    """Class decorator adding a head to the registry under ``name``."""

    def add(cls: type[FusionHead]) -> type[FusionHead]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"fusion head {name!r} is registered twice")
        _REGISTRY[name] = cls
        cls.registry_name = name
        return cls

    return add


def available_heads() -> list[str]:
    import mmemo.fusion  # noqa: F401  (importing the package registers the built-in heads)

    return sorted(_REGISTRY)


def build_fusion(name: str, input_dims: dict[str, int], num_classes: int, **options) -> FusionHead:
    """Instantiate the head registered as ``name``."""
    heads = available_heads()
    if name not in _REGISTRY:
        raise ValueError(f"unknown fusion head {name!r}; available: {heads}")
    return _REGISTRY[name](input_dims, num_classes, **options)


def masked_mean(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames only. frames: [B,T,D]; mask: [B,T] -> [B,D]."""
    weights = mask.to(frames.dtype)[..., None]
    return (frames * weights).sum(1) / weights.sum(1).clamp(min=1.0)

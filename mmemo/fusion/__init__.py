"""Fusion heads; importing this package registers the built-in ones."""

from mmemo.fusion import (  # noqa: F401  (importing registers the heads)
    attentive,
    concat,
    cross_attention,
    emobox,
    gated,
    joint_embedding,
    late,
    linear,
)
from mmemo.fusion.base import FusionHead, FusionOutput, available_heads, build_fusion, register

__all__ = ["FusionHead", "FusionOutput", "available_heads", "build_fusion", "register"]

"""Fusion heads; importing this package registers the built-in ones."""

from mmemo.fusion import concat, cross_attention, emobox, gated, joint_embedding, late, linear  # noqa: F401
from mmemo.fusion.base import FusionHead, FusionOutput, available_heads, build_fusion, register

__all__ = ["FusionHead", "FusionOutput", "available_heads", "build_fusion", "register"]

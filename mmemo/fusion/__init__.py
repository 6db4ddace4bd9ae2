"""Fusion heads: one module each, found by :func:`~mmemo.fusion.base.available_heads` (no list to edit)."""

from mmemo.fusion.base import FusionHead, FusionOutput, available_heads, build_fusion, register

__all__ = ["FusionHead", "FusionOutput", "available_heads", "build_fusion", "register"]

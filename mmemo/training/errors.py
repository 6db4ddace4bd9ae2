"""Errors a run raises about its results (kept free of heavy imports so the CLI can name them)."""

from __future__ import annotations

from mmemo.errors import UserError


class NonFiniteScoresError(UserError, ValueError):
    """The model gave NaN or infinite scores on test data: no metric is reported over them."""

"""The monitor's client errors (a separate module so the analysis core and live streams share it)."""

from __future__ import annotations

from mmemo.errors import UserError


class AnalysisError(UserError, ValueError):
    """Audio the service cannot analyse (undecodable, too long, ...): a client error."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status

"""Bearer-token access control for the monitor's API.

HTTP clients send ``Authorization: Bearer <token>``. Browsers cannot set headers on a
WebSocket, so ``/stream`` also accepts the token as the ``token`` query parameter (the
web UI does this; use TLS in front of the service so the URL is not sent in clear).
Tokens are compared in constant time. With ``--insecure-local`` (loopback only) no token
is needed.
"""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request, WebSocket


def _valid(expected: str | None, given: str | None) -> bool:
    if expected is None:  # --insecure-local
        return True
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries the service's bearer token."""
    expected = request.app.state.token
    if not _valid(expected, bearer(request.headers.get("authorization"))):
        raise HTTPException(status_code=401, detail="missing or invalid bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


def websocket_authorized(websocket: WebSocket) -> bool:
    expected = websocket.app.state.token
    given = bearer(websocket.headers.get("authorization")) or websocket.query_params.get("token")
    return _valid(expected, given)

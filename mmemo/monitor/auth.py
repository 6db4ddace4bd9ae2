"""Bearer-token access control for the monitor's API, and keeping the token out of logs.

HTTP clients send ``Authorization: Bearer <token>``. Browsers cannot set headers on a
WebSocket, so a ``/stream`` client without that header sends ``{"type": "auth", "token": ...}``
as its first message. The token is never accepted in a URL: query strings end up in access
logs, proxies and browser history. Tokens are compared in constant time. With
``--insecure-local`` (loopback only) no token is needed.
"""

from __future__ import annotations

import logging
import re
import secrets

from fastapi import HTTPException, Request, WebSocket

#: Seconds a WebSocket client has to send its auth message.
AUTH_TIMEOUT_S = 10.0


def _valid(expected: str | None, given: str | None) -> bool:
    if expected is None:  # --insecure-local
        return True
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def has_valid_token(request: Request) -> bool:
    return _valid(request.app.state.token, bearer(request.headers.get("authorization")))


def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries the service's bearer token."""
    if not has_valid_token(request):
        raise HTTPException(status_code=401, detail="missing or invalid bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


def websocket_header_token(websocket: WebSocket) -> str | None:
    return bearer(websocket.headers.get("authorization"))


def websocket_token_valid(websocket: WebSocket, token: str | None) -> bool:
    return _valid(websocket.app.state.token, token)


_QUERY_SECRET = re.compile(r"((?:^|[?&;\s])(?:token|access_token|api_key|key)=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[^\s\"']+", re.IGNORECASE)


class RedactSecrets(logging.Filter):
    """Replace the service token (and anything shaped like a credential in a URL) in log records.

    Installed on uvicorn's and mmemo's loggers by ``serve``: a client that puts a token in a
    query string anyway, or a webhook URL with a key in it, never leaves it in clear in a log.
    """

    def __init__(self, secrets_to_hide: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets_to_hide if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        text = _QUERY_SECRET.sub(r"\1[redacted]", text)
        return _BEARER.sub(r"\1[redacted]", text)

    def filter(self, record: logging.LogRecord) -> bool:
        # redact the format and each argument in place: formatters such as uvicorn's access
        # formatter unpack ``record.args``, so its shape must stay
        if isinstance(record.msg, str):
            record.msg = self.redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self.redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: self.redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True

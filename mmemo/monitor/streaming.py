"""Live audio: the WebSocket ``/stream`` and its chunked-HTTP twin ``POST /stream``.

WebSocket protocol (query: ``channel``, ``audio_id``, ``format=s16le|f32le``): a client that
cannot send an ``Authorization: Bearer`` header (a browser) first sends the text message
``{"type": "auth", "token": "..."}``; the server answers ``{"type": "ready", ...}``. Then the
client sends binary messages of raw mono 16 kHz PCM; the server answers every chunk
with ``{"type": "frames", "times", "scores", "seconds", "alerts"}`` (only the new frames).
The text message ``{"type": "end"}`` (or ``end``) asks for ``{"type": "summary", "record"}``
and a normal close. Anything malformed closes the socket with a code and a reason that says
what was wrong - the session ends, the service does not:

====  =========================================================================
1008  missing or invalid token, no auth message within 10 s, or a token in the URL
1007  a chunk that is not valid PCM (odd byte count, NaN samples, ...)
1003  a text message other than ``end``
1009  a chunk over ``--max-chunk-bytes`` or a stream over ``--max-stream``
1011  an internal error (logged)
====  =========================================================================
"""

from __future__ import annotations

import asyncio
import json
import logging

from fastapi import Depends, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mmemo.monitor.analysis import AnalysisError, Monitor
from mmemo.monitor.auth import (
    AUTH_TIMEOUT_S,
    require_token,
    websocket_header_token,
    websocket_token_valid,
)

log = logging.getLogger(__name__)

POLICY, INVALID_DATA, UNSUPPORTED, TOO_BIG, INTERNAL = 1008, 1007, 1003, 1009, 1011


def _message_type(text: str) -> str | None:
    try:
        message = json.loads(text)
    except ValueError:
        return None
    return message.get("type") if isinstance(message, dict) else None


def _is_end(text: str) -> bool:
    if text.strip().lower() == "end":
        return True
    try:
        message = json.loads(text)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("type") == "end"


def add_stream_routes(app: FastAPI) -> None:
    @app.websocket("/stream")
    async def stream(websocket: WebSocket, channel: str = "default", audio_id: str | None = None,
                     format: str = "s16le"):
        await websocket.accept()  # accepted first, so that a refusal is a close code (1008), not HTTP 403
        if not await _authenticate(websocket):
            return
        monitor: Monitor = websocket.app.state.monitor
        try:
            live = await run_in_threadpool(monitor.open_stream, channel=channel, audio_id=audio_id,
                                           sample_format=format)
        except AnalysisError as error:
            await websocket.close(code=POLICY, reason=str(error)[:120])
            return
        await websocket.send_json({"type": "ready", "audio_id": monitor.store.stored_id(live.audio_id),
                                   "classes": monitor.classes, "frame_rate": 1 / monitor.frame_period})
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data, text = message.get("bytes"), message.get("text")
                if data is not None:
                    if len(data) > monitor.settings.max_chunk_bytes:
                        await _close(websocket, live, TOO_BIG, f"chunk of {len(data)} bytes is over the "
                                     f"{monitor.settings.max_chunk_bytes}-byte limit")
                        return
                    try:
                        update = await run_in_threadpool(live.push, data)
                    except OverflowError as error:
                        await _close(websocket, live, TOO_BIG, str(error))
                        return
                    except ValueError as error:
                        await _close(websocket, live, INVALID_DATA, f"malformed audio chunk: {error}")
                        return
                    await websocket.send_json(update)
                elif text is not None and _message_type(text) == "auth":
                    continue  # already authorised (header, or --insecure-local): nothing to do
                elif text is not None and _is_end(text):
                    summary = await run_in_threadpool(live.finish)
                    await websocket.send_json(summary)
                    await websocket.close(code=1000, reason="end of stream")
                    return
                else:
                    await _close(websocket, live, UNSUPPORTED,
                                 "unexpected text message: send binary PCM chunks, then {\"type\": \"end\"}")
                    return
        except WebSocketDisconnect:
            pass
        except Exception:
            log.exception("stream %s failed", live.audio_id)
            await _close(websocket, live, INTERNAL, "internal error (see the service log)")
            return
        await run_in_threadpool(live.abort)

    @app.post("/stream", dependencies=[Depends(require_token)])
    async def stream_http(request: Request, channel: str = "default", audio_id: str | None = None,
                          format: str = "s16le"):
        """Chunked upload of raw PCM: analysed (and alerting) as the body arrives.

        Returns every frame update as NDJSON once the body is complete; for scores *during*
        the upload, use the WebSocket.
        """
        monitor: Monitor = request.app.state.monitor
        live = await run_in_threadpool(monitor.open_stream, channel=channel, audio_id=audio_id,
                                       sample_format=format)
        updates, pending = [], b""
        step = 8000 * (2 if format == "s16le" else 4)  # analyse every 0.5 s of audio as it arrives
        try:
            async for piece in request.stream():
                pending += piece
                while len(pending) >= step:
                    chunk, pending = pending[:step], pending[step:]
                    updates.append(await run_in_threadpool(live.push, chunk))
            if pending:
                updates.append(await run_in_threadpool(live.push, pending))  # raises if not whole samples
        except (ValueError, OverflowError) as error:
            await run_in_threadpool(live.abort)
            return JSONResponse({"detail": f"malformed or oversized stream: {error}"},
                                status_code=413 if isinstance(error, OverflowError) else 422)
        except BaseException:
            await run_in_threadpool(live.abort)
            raise
        summary = await run_in_threadpool(live.finish)
        lines = [json.dumps(u) for u in updates if u["times"] or u["alerts"]] + [json.dumps(summary)]
        return _ndjson("\n".join(lines) + "\n")


async def _authenticate(websocket: WebSocket) -> bool:
    """The Authorization header, else a first ``{"type": "auth", "token"}`` message; 1008 otherwise."""
    if "token" in websocket.query_params:
        await websocket.close(code=POLICY, reason='never put the token in the URL (it is logged); send '
                                                  '{"type": "auth", "token": ...} first')
        return False
    header = websocket_header_token(websocket)
    if header is not None or websocket.app.state.token is None:
        if websocket_token_valid(websocket, header):
            return True
        await websocket.close(code=POLICY, reason="missing or invalid token")
        return False
    try:
        message = await asyncio.wait_for(websocket.receive(), timeout=AUTH_TIMEOUT_S)
    except asyncio.TimeoutError:
        await websocket.close(code=POLICY, reason="no auth message")
        return False
    token = None
    if message.get("text"):
        try:
            parsed = json.loads(message["text"])
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("type") == "auth" and isinstance(parsed.get("token"), str):
            token = parsed["token"]
    if websocket_token_valid(websocket, token):
        return True
    if message.get("type") != "websocket.disconnect":
        await websocket.close(code=POLICY, reason="missing or invalid token")
    return False


def _ndjson(body: str):
    from fastapi.responses import Response

    return Response(body, media_type="application/x-ndjson")


async def _close(websocket: WebSocket, live, code: int, reason: str) -> None:
    await run_in_threadpool(live.abort)
    try:
        await websocket.close(code=code, reason=reason[:120])  # close reasons are limited to 123 bytes
    except RuntimeError:
        pass

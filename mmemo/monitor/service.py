"""``mmemo monitor serve``: the FastAPI app (HTTP routes, UI) and the uvicorn runner.

Routes are thin: they check the token and limits, then call the :class:`Monitor`. Every
route needs the bearer token except the UI's static files and ``GET /health``, which without
a token says only whether the service is up (with one, it gives the full status). The OpenAPI
schema is at ``GET /openapi.json``, behind the token; there is no ``/docs`` page (Swagger UI
loads from a CDN and cannot send the token).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from mmemo.monitor.analysis import AnalysisError, Monitor, load_predictor
from mmemo.monitor.auth import RedactSecrets, has_valid_token, require_token
from mmemo.monitor.limits import BodySizeLimit
from mmemo.monitor.settings import MonitorSettings
from mmemo.monitor.store import RecordFilter
from mmemo.monitor.streaming import add_stream_routes

log = logging.getLogger(__name__)
UI_DIR = Path(__file__).parent / "ui"
#: Multipart framing allowed on top of the file itself when checking --max-upload-mb.
MULTIPART_OVERHEAD = 64 * 1024


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _alert_filter(value: str | None) -> bool | str | None:
    if value is None or value == "":
        return None
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    return value  # a rule name


def _safe_suffix(filename: str | None) -> str:
    """The upload's extension (a hint for the decoder), never a path."""
    suffix = Path(filename or "").suffix.lower()
    return suffix if len(suffix) <= 10 and suffix[1:].isalnum() else ""


def _copy(source, path: Path) -> int:
    source.seek(0)
    with path.open("wb") as handle:
        shutil.copyfileobj(source, handle, 1 << 20)
    return path.stat().st_size


def create_app(settings: MonitorSettings, predictor=None, **monitor_options) -> FastAPI:
    """The service for ``settings``; ``predictor`` (else loaded from ``settings.model``) and
    ``monitor_options`` (transport, stream_factory, clock, sleep) are injectable for tests."""
    settings.resolve()
    monitor = Monitor(settings, predictor if predictor is not None else load_predictor(settings), **monitor_options)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        monitor.start()
        try:
            yield
        finally:
            await run_in_threadpool(monitor.close)

    app = FastAPI(title="mmemo monitor", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.monitor = monitor
    app.state.token = None if settings.insecure_local and not settings.token else settings.token
    app.add_middleware(BodySizeLimit, limit=settings.max_upload_bytes + MULTIPART_OVERHEAD,
                       paths=("/analyze",))
    if settings.cors_origins:  # off unless asked for: the UI is served from the same origin
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])

    @app.exception_handler(AnalysisError)
    async def analysis_error(_request: Request, error: AnalysisError):
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    auth = [Depends(require_token)]

    @app.get("/health")
    async def health(request: Request):
        """Public: ``{"status": "ok"}`` (``degraded`` while the rules file has an error) for load
        balancers. With the token: model, rules (and their error), queues."""
        if not has_valid_token(request):
            return {"status": "degraded" if monitor.rules_file.last_error else "ok"}
        return await run_in_threadpool(monitor.health)

    @app.get("/openapi.json", dependencies=auth, include_in_schema=False)
    async def openapi():
        return app.openapi()

    @app.post("/analyze", dependencies=auth)
    async def analyze(request: Request, channel: str = "default", audio_id: str | None = None):
        """Upload one audio or video file: multipart field ``file`` (+ optional ``channel``, ``audio_id``
        fields) or the raw file as the body. A video model also reads the file's face track."""
        content_type = request.headers.get("content-type", "")
        # the upload goes to a temporary file as it arrives (never whole in memory), then is decoded
        with tempfile.TemporaryDirectory(prefix="mmemo-upload-") as folder:
            if content_type.startswith("multipart/form-data"):
                form = await request.form(max_files=1, max_fields=8)
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    raise HTTPException(422, "multipart upload needs a 'file' field holding the audio")
                path = Path(folder) / ("upload" + _safe_suffix(upload.filename))
                size = await run_in_threadpool(_copy, upload.file, path)
                channel = str(form.get("channel") or channel)
                audio_id = str(form.get("audio_id") or audio_id or upload.filename or "") or None
            else:
                path = Path(folder) / "upload"
                size = 0
                with path.open("wb") as handle:
                    async for piece in request.stream():
                        size += len(piece)
                        handle.write(piece)
            if size > settings.max_upload_bytes:
                raise HTTPException(413, f"upload of {size / 1024 / 1024:.1f} MB is over the "
                                         f"{settings.max_upload_mb:g} MB limit (--max-upload-mb)")
            if not size:
                raise HTTPException(422, "empty upload: send an audio file")
            return await run_in_threadpool(lambda: monitor.analyze_file(path, audio_id=audio_id, channel=channel,
                                                                        source="upload"))

    @app.get("/records", dependencies=auth)
    async def records(since: datetime | None = None, until: datetime | None = None, channel: str | None = None,
                      emotion: str | None = None, alert: str | None = Query(None, description="true, false or a rule"),
                      audio_id: str | None = None, speaker: str | None = Query(None, max_length=64),
                      limit: int = Query(100, ge=1, le=5000), offset: int = Query(0, ge=0)):
        where = RecordFilter(since=_utc(since), until=_utc(until), channel=channel, emotion=emotion,
                             alert=_alert_filter(alert), audio_id=audio_id, speaker=speaker, limit=limit,
                             offset=offset)
        return await run_in_threadpool(monitor.store.records, where)

    @app.get("/records/{record_id}/segments", dependencies=auth)
    async def segments(record_id: int):
        """A segmented record's speech segments: start, end, speaker, transcript and words, emotion."""
        found = await run_in_threadpool(monitor.store.segments, record_id)
        if found is None:
            raise HTTPException(404, f"record {record_id} does not exist")
        return found

    @app.get("/records/{record_id}/timeline", dependencies=auth)
    async def timeline(record_id: int, modality: str = Query("speech", pattern="^[a-z]{1,16}$")):
        """The record's frame timeline: the audio's (``speech``) or another modality's (``face``)."""
        found = await run_in_threadpool(monitor.store.timeline, record_id, modality)
        if found is None:
            raise HTTPException(404, f"record {record_id} has no {modality} frame timeline (or does not exist)")
        return found

    @app.delete("/records/{audio_id:path}", dependencies=auth)
    async def delete_records(audio_id: str):
        """Forget everything stored about one audio id (records, timelines, alerts, embeddings)."""
        deleted = await run_in_threadpool(monitor.store.delete_audio, audio_id)
        if not deleted["records"] and not deleted["alerts"]:
            raise HTTPException(404, f"nothing stored for audio id {audio_id!r}")
        return {"audio_id": audio_id, "deleted": deleted}

    @app.get("/alerts", dependencies=auth)
    async def alerts(since: datetime | None = None, channel: str | None = None, rule: str | None = None,
                     limit: int = Query(100, ge=1, le=5000)):
        return await run_in_threadpool(lambda: monitor.store.alerts(since=_utc(since), channel=channel, rule=rule,
                                                                    limit=limit))

    @app.get("/alerts/dead-letters", dependencies=auth)
    async def dead_letters(limit: int = Query(100, ge=1, le=5000)):
        return await run_in_threadpool(monitor.store.dead_letters, limit)

    @app.get("/stats", dependencies=auth)
    async def stats(since: datetime | None = None, channel: str | None = None,
                    bucket: str = Query("hour", pattern="^(minute|hour|day)$")):
        return await run_in_threadpool(lambda: monitor.store.stats(since=_utc(since), channel=channel, bucket=bucket))

    @app.get("/rules", dependencies=auth)
    async def rules():
        ruleset = monitor.rules_file.ruleset
        return {"path": str(monitor.rules_file.path), "version": monitor.rules_file.version,
                "error": monitor.rules_file.last_error,
                "rules": [{"name": r.name, "type": r.type, "emotions": list(r.emotions), "threshold": r.threshold,
                           "duration": r.duration, "aggregate": r.aggregate, "channels": list(r.channels),
                           "priority": r.priority, "cooldown": r.cooldown, "description": r.describe(),
                           "actions": [a.type if a.type == "log" else f"webhook {a.url}" for a in r.actions]}
                          for r in ruleset.rules]}

    @app.post("/rules/reload", dependencies=auth)
    async def reload_rules():
        result = await run_in_threadpool(monitor.rules_file.reload)
        if result.error:
            raise HTTPException(422, f"rules not reloaded (the previous rules stay active): {result.error}")
        return {"reloaded": True, "changed": result.changed, "rules": result.rules,
                "version": monitor.rules_file.version}

    add_stream_routes(app)

    @app.get("/", include_in_schema=False)
    async def index():
        return RedirectResponse("/ui/index.html")

    app.mount("/ui", StaticFiles(directory=UI_DIR, html=True), name="ui")
    return app


def serve(settings: MonitorSettings) -> None:
    """Run the service until interrupted (``mmemo monitor serve``)."""
    import uvicorn

    app = create_app(settings)
    redact = RedactSecrets([settings.token or ""])
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error", "mmemo"):
        logging.getLogger(name).addFilter(redact)
    who = "WITHOUT a token (--insecure-local)" if app.state.token is None else "with a bearer token"
    log.info("mmemo monitor on http://%s:%d (%s); model %s; database %s", settings.host, settings.port, who,
             app.state.monitor.model_id, settings.db_url.split("@")[-1])
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                            ws_max_size=settings.max_chunk_bytes + 1024)
    server = uvicorn.Server(config)
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error"):  # uvicorn configures its loggers in Config
        logging.getLogger(name).addFilter(redact)
    server.run()

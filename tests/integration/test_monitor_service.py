"""The monitor service end to end with FastAPI's TestClient and the tiny FunASR emotion2vec+ model.

Alerts are forced deterministically by a combination rule over all nine classes (frame
probabilities always sum to 1), so the tests do not depend on the random weights' scores.
"""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from mmemo.monitor.service import create_app
from mmemo.monitor.settings import MonitorSettings, SettingsError

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLASSES = ["angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "<unk>"]


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * np.arange(n) / 16000) ** 2
    return (0.1 * rng.standard_normal(n) * envelope).astype(np.float32)


def wav_bytes(seconds: float = 1.5, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, speechlike(seconds, seed), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def pcm16(seconds: float, seed: int = 0) -> bytes:
    return (speechlike(seconds, seed) * 32767).astype("<i2").tobytes()


def write_rules(path: Path, *, webhook: str | None = None, retries: int = 2, backoff: float = 0.01,
                cooldown: float = 0) -> Path:
    actions = [{"type": "log"}]
    if webhook:
        actions.append({"type": "webhook", "url": webhook, "retries": retries, "backoff": backoff, "timeout": 2})
    rules = {"rules": [
        {"name": "anything", "type": "combination", "emotions": CLASSES, "threshold": 0.99, "duration": 0.5,
         "cooldown": cooldown, "priority": "high", "actions": actions},
        {"name": "anger", "type": "threshold", "emotion": "angry", "threshold": 0.75, "duration": 2.0},
    ]}
    path.write_text(json.dumps(rules))  # JSON is YAML
    return path


@pytest.fixture(scope="module")
def predictor(tiny_e2v_dir):
    from mmemo.inference.predictor import Predictor

    return Predictor.from_source(tiny_e2v_dir)


def make_settings(tmp_path: Path, db_url: str | None = None, **overrides) -> MonitorSettings:
    """Service settings for a test; ``db_url`` None is the default SQLite file in the data folder."""
    options = dict(token=TOKEN, db_url=db_url, data_dir=tmp_path / "data", rules=tmp_path / "rules.yaml",
                   rules_poll_seconds=0.05,
                   batch_wait_ms=1.0, webhook_backoff_scale=1.0)
    options.update(overrides)
    if not Path(options["rules"]).exists():
        write_rules(Path(options["rules"]))
    return MonitorSettings(**options)


@pytest.fixture
def client(tmp_path, predictor, db_url):
    with TestClient(create_app(make_settings(tmp_path, db_url), predictor)) as test_client:
        yield test_client


class stream:
    """A WebSocket session authorised the way the web UI does it: the token in the first message."""

    def __init__(self, client: TestClient, query: str = "", token: str = TOKEN):
        self.context = client.websocket_connect("/stream" + (f"?{query}" if query else ""))
        self.token = token

    def __enter__(self):
        ws = self.context.__enter__()
        ws.send_text(json.dumps({"type": "auth", "token": self.token}))
        return ws

    def __exit__(self, *exc):
        return self.context.__exit__(*exc)


def upload(client: TestClient, data: bytes | None = None, **fields) -> object:
    return client.post("/analyze", headers=AUTH, files={"file": ("call.wav", data or wav_bytes(), "audio/wav")},
                       data=fields)


# -- auth and settings ------------------------------------------------------------------------
def test_requests_without_a_valid_token_get_401(client):
    wrong = {"Authorization": "Bearer not-the-token-at-all"}
    for headers in ({}, wrong, {"Authorization": TOKEN}):  # none, wrong, missing "Bearer"
        assert client.post("/analyze", headers=headers, files={"file": ("a.wav", wav_bytes(), "audio/wav")}
                           ).status_code == 401
        for method, path in [("GET", "/records"), ("GET", "/alerts"), ("POST", "/rules/reload"),
                             ("DELETE", "/records/x"), ("GET", "/stats"), ("POST", "/stream")]:
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
    for opened in (lambda: stream(client, token="wrong-token-0123456789"),  # wrong token in the auth message
                   lambda: client.websocket_connect("/stream", headers={"Authorization": "Bearer wrong"}),
                   lambda: client.websocket_connect(f"/stream?token={TOKEN}")):  # right token, but in the URL
        with pytest.raises(WebSocketDisconnect) as closed:
            with opened() as ws:
                ws.receive_json()
        assert closed.value.code == 1008  # a close code, as documented (not an HTTP 403)
    with client.websocket_connect("/stream", headers=AUTH) as ws:  # non-browser clients: the header
        assert ws.receive_json()["type"] == "ready"
    assert client.get("/health").json() == {"status": "ok"}  # public probe, nothing in it
    assert client.get("/health", headers=AUTH).json()["classes"] == CLASSES
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert client.get(path).status_code in (401, 404), path
    assert "/analyze" in client.get("/openapi.json", headers=AUTH).json()["paths"]
    assert client.get("/records", headers=AUTH).status_code == 200


def test_token_is_required_unless_insecure_local_on_loopback(tmp_path, monkeypatch):
    monkeypatch.delenv("MMEMO_MONITOR_TOKEN", raising=False)
    with pytest.raises(SettingsError, match="bearer token is required"):
        MonitorSettings(data_dir=tmp_path).resolve()
    with pytest.raises(SettingsError, match="only allowed on a loopback"):
        MonitorSettings(insecure_local=True, host="0.0.0.0", data_dir=tmp_path).resolve()
    assert MonitorSettings(insecure_local=True, host="127.0.0.1", data_dir=tmp_path).resolve().token is None
    monkeypatch.setenv("MMEMO_MONITOR_TOKEN", TOKEN)
    assert MonitorSettings(data_dir=tmp_path).resolve().token == TOKEN


def test_cors_is_off_by_default(client):
    response = client.options("/records", headers={"Origin": "https://evil.example",
                                                  "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in response.headers


# -- analyze, records, alerts -------------------------------------------------------------------
def test_upload_is_analysed_stored_and_alerted(client):
    response = upload(client, channel="line-1", audio_id="call-001")
    assert response.status_code == 200, response.text
    body = response.json()
    record, prediction = body["record"], body["prediction"]
    assert record["audio_id"] == "call-001" and record["channel"] == "line-1" and record["source"] == "upload"
    assert record["label"] in CLASSES and set(record["scores"]) == set(CLASSES)
    frames = len(prediction["timeline"]["times"])
    assert record["label"] == prediction["label"] and frames == 74  # 1.5 s at 50 Hz, minus the conv edge
    # "anything" holds on every frame: it fires once per fresh 0.5 s (25-frame) window, no cooldown
    assert [a["rule"] for a in body["alerts"]] == ["anything"] * (frames // 25)
    assert record["alert_count"] == 2 and record["alert_rules"] == ["anything"]

    timeline = client.get(record["timeline"], headers=AUTH).json()
    assert np.allclose(np.array(timeline["scores"]).sum(1), 1, atol=1e-4) and timeline["classes"] == CLASSES

    upload(client, data=wav_bytes(0.3, seed=1), channel="line-2", audio_id="short")  # too short for any alert
    assert [r["audio_id"] for r in client.get("/records?channel=line-1", headers=AUTH).json()] == ["call-001"]
    assert [r["audio_id"] for r in client.get("/records?alert=false", headers=AUTH).json()] == ["short"]
    assert [r["audio_id"] for r in client.get("/records?alert=anything", headers=AUTH).json()] == ["call-001"]
    label = record["label"]
    assert "call-001" in [r["audio_id"] for r in client.get(f"/records?emotion={label}", headers=AUTH).json()]
    assert client.get("/records?since=2999-01-01T00:00:00", headers=AUTH).json() == []
    alerts = client.get("/alerts?channel=line-1", headers=AUTH).json()
    assert len(alerts) == 2 and all(a["record_id"] == record["id"] and a["priority"] == "high" for a in alerts)
    stats = client.get("/stats", headers=AUTH).json()
    assert sum(stats["distribution"].values()) == 2 and stats["trend"]


def test_oversized_and_overlong_uploads_are_refused(tmp_path, predictor, db_url):
    settings = make_settings(tmp_path, db_url, max_upload_mb=0.1, max_duration_s=2.0)
    with TestClient(create_app(settings, predictor)) as client:
        big = wav_bytes(4.0)  # 128 kB > 0.1 MB, as a raw body
        response = client.post("/analyze", headers={**AUTH, "Content-Type": "audio/wav"}, content=big)
        assert response.status_code == 413 and "limit" in response.json()["detail"]

        def chunks():  # no Content-Length: counted while it streams
            for start in range(0, len(big) * 2, 8192):
                yield (big * 2)[start:start + 8192]

        response = client.post("/analyze", headers={**AUTH, "Content-Type": "audio/wav"}, content=chunks())
        assert response.status_code == 413
        response = upload(client, data=wav_bytes(2.5))  # 80 kB fits, but 2.5 s > 2 s
        assert response.status_code == 413 and "2.5 s long" in response.json()["detail"]
        response = upload(client, data=b"RIFF not really a wav file")
        assert response.status_code == 422 and "cannot decode" in response.json()["detail"]
        assert client.get("/records", headers=AUTH).json() == []
        assert upload(client, data=wav_bytes(1.0)).status_code == 200


# -- streaming ------------------------------------------------------------------------------------
def test_websocket_stream_gives_live_frames_alerts_and_a_record(client):
    with stream(client, "channel=live&audio_id=ws-1") as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["classes"] == CLASSES
        audio, frames, alerts = pcm16(3.0), 0, 0
        for start in range(0, len(audio), 8000):  # 0.25 s chunks
            ws.send_bytes(audio[start:start + 8000])
            update = ws.receive_json()
            assert update["type"] == "frames"
            frames += len(update["times"])
            alerts += len(update["alerts"])
        ws.send_text(json.dumps({"type": "end"}))
        summary = ws.receive_json()
    assert summary["type"] == "summary"
    record = summary["record"]
    assert record["source"] == "stream" and record["duration"] == pytest.approx(3.0)
    frames += len(summary["last"]["times"])
    alerts += len(summary["last"]["alerts"])
    assert frames in (149, 150) and alerts == frames // 25 and record["alert_count"] == alerts
    assert len(client.get("/alerts?channel=live", headers=AUTH).json()) == alerts


@pytest.mark.parametrize("message, code, reason", [
    (b"\x01\x02\x03", 1007, "odd byte count"),
    ("hello", 1003, "unexpected text message"),
    (b"\x00" * (2 << 20), 1009, "over the"),
])
def test_malformed_websocket_stream_is_closed_with_a_reason_and_service_stays_healthy(client, message, code, reason):
    with stream(client, "channel=bad") as ws:
        ws.receive_json()
        ws.send_bytes(pcm16(0.5))
        ws.receive_json()
        ws.send_bytes(message) if isinstance(message, bytes) else ws.send_text(message)
        closed = ws.receive()
    assert closed["type"] == "websocket.close" and closed["code"] == code and reason in closed["reason"]
    assert client.get("/health").json()["status"] == "ok"
    with stream(client) as ws:  # a new session works
        ws.receive_json()
        ws.send_bytes(pcm16(2.0))
        assert ws.receive_json()["times"]


def test_chunked_http_stream(client):
    def body():
        audio = pcm16(2.0, seed=3)
        for start in range(0, len(audio), 3000):  # uneven chunk sizes, odd boundaries included
            yield audio[start:start + 3000]

    response = client.post("/stream?channel=http&audio_id=chunked", headers=AUTH, content=body())
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[-1]["type"] == "summary" and lines[-1]["record"]["duration"] == pytest.approx(2.0)
    frames = sum(len(line["times"]) for line in lines[:-1]) + len((lines[-1]["last"] or {}).get("times", []))
    assert frames in (99, 100)
    bad = client.post("/stream", headers=AUTH, content=b"\x00" * 16001)
    assert bad.status_code == 422 and "malformed" in bad.json()["detail"]


# -- webhooks -------------------------------------------------------------------------------------
class _Failing(BaseHTTPRequestHandler):
    attempts: list[dict] = []
    times: list[float] = []

    def do_POST(self):  # noqa: N802
        length = int(self.headers["Content-Length"])
        _Failing.times.append(time.monotonic())
        _Failing.attempts.append({**json.loads(self.rfile.read(length)), "header": self.headers["Idempotency-Key"]})
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_retries_then_dead_letters(tmp_path, predictor, db_url):
    server = HTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Failing.attempts, _Failing.times = [], []
    url = f"http://127.0.0.1:{server.server_port}/hook"
    rules = write_rules(tmp_path / "rules.yaml", webhook=url, retries=2, backoff=0.2)
    try:
        with TestClient(create_app(make_settings(tmp_path, db_url, rules=rules), predictor)) as client:
            alerts = upload(client, data=wav_bytes(0.6), audio_id="hooked").json()["alerts"]
            assert len(alerts) == 1
            assert client.app.state.monitor.dispatcher.join(timeout=20)
            assert len(_Failing.attempts) == 3  # first try + 2 retries
            assert all(a["alert_id"] == alerts[0]["id"] and a["rule"] == "anything" for a in _Failing.attempts)
            keys = {a["idempotency_key"] for a in _Failing.attempts} | {a["header"] for a in _Failing.attempts}
            assert len(keys) == 1  # one key for every attempt of one delivery, in payload and header
            gaps = np.diff(_Failing.times)
            assert 0.2 <= gaps[0] < 0.39 and 0.4 <= gaps[1] < 0.79  # exponential backoff: 0.2 s, then 0.4 s
            (dead,) = client.get("/alerts/dead-letters", headers=AUTH).json()
            assert dead["attempts"] == 3 and dead["last_error"] == "HTTP 503" and dead["url"] == url
            assert dead["payload"]["audio_id"] == "hooked"
            assert client.get("/alerts", headers=AUTH).json()[0]["delivery"] == "dead"
            assert client.get("/health", headers=AUTH).json()["webhooks"] == {"delivered": 0, "dead_lettered": 1,
                                                                              "pending": 0}
    finally:
        server.shutdown()


# -- rules reload, privacy, persistence -------------------------------------------------------------
def test_rules_reload_endpoint_and_hot_reload(client, tmp_path):
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text("rules:\n"
                          "  - {name: sad_only, type: threshold, emotion: sad, threshold: 0.0, duration: 0.2}\n")
    response = client.post("/rules/reload", headers=AUTH)
    assert response.status_code == 200 and response.json()["changed"] and response.json()["rules"] == 1
    assert [r["name"] for r in client.get("/rules", headers=AUTH).json()["rules"]] == ["sad_only"]
    rules_path.write_text("rules:\n  - {name: oops, type: threshold, emotion: furious, threshold: 0.5}\n")
    response = client.post("/rules/reload", headers=AUTH)
    assert response.status_code == 422
    assert "rule 'oops' (#1), field 'emotion': 'furious' is not a class" in response.json()["detail"]
    assert client.get("/health", headers=AUTH).json()["rules"]["error"]
    write_rules(rules_path)  # fixed again; the poller (every 50 ms) picks it up without a request
    monitor = client.app.state.monitor
    for _ in range(100):
        if monitor.rules_file.last_error is None and len(monitor.rules_file.ruleset.rules) == 2:
            break
        threading.Event().wait(0.05)
    assert [r.name for r in monitor.rules_file.ruleset.rules] == ["anything", "anger"]


def test_records_survive_a_restart_and_can_be_deleted(tmp_path, predictor, db_url):
    settings = dict(hash_ids=True, salt="pepper", db_url=None if db_url.startswith("sqlite") else db_url)
    with TestClient(create_app(make_settings(tmp_path, **settings), predictor)) as client:
        stored = upload(client, audio_id="customer-42").json()["record"]
        assert stored["audio_id"] != "customer-42" and len(stored["audio_id"]) == 40  # hashed
    sqlite = settings["db_url"] is None
    assert (tmp_path / "data" / "monitor.db").exists() == sqlite  # the default database: a SQLite file
    with TestClient(create_app(make_settings(tmp_path, **settings), predictor)) as client:  # a new process
        assert client.get("/health", headers=AUTH).json()["journal_mode"] == ("wal" if sqlite else None)
        (record,) = client.get("/records?audio_id=customer-42", headers=AUTH).json()
        assert record["id"] == stored["id"] and record["scores"] == stored["scores"]
        assert client.get(record["timeline"], headers=AUTH).status_code == 200
        response = client.delete("/records/customer-42", headers=AUTH)
        assert response.status_code == 200 and response.json()["deleted"]["records"] == 1
        assert response.json()["deleted"]["alerts"] == 2
        assert client.get("/records", headers=AUTH).json() == [] and client.get("/alerts", headers=AUTH).json() == []
        assert client.delete("/records/customer-42", headers=AUTH).status_code == 404


def test_watch_folder_analyses_files_once(tmp_path, predictor, db_url):
    from mmemo.monitor.watch import WatchFolder

    inbox = tmp_path / "inbox"
    (inbox / "line-7").mkdir(parents=True)
    (inbox / "line-7" / "call.wav").write_bytes(wav_bytes(1.0))
    (inbox / "broken.wav").write_bytes(b"not audio")
    with TestClient(create_app(make_settings(tmp_path, db_url), predictor)) as client:
        watcher = WatchFolder(client.app.state.monitor, inbox)
        assert watcher.scan() == []  # first sight: wait until the size is stable
        results = watcher.scan()
        assert sorted(r["file"] for r in results) == ["broken.wav", "line-7/call.wav"]
        assert watcher.scan() == []
        (record,) = client.get("/records", headers=AUTH).json()
        assert record["channel"] == "line-7" and record["source"] == "watch"
    assert (inbox / ".done" / "line-7" / "call.wav").exists()
    assert "cannot decode" in (inbox / ".failed" / "broken.wav.error.txt").read_text()


def test_rules_classes_restrict_the_served_scores(tmp_path, predictor, db_url):
    """A rules file with ``classes`` masks the 9-class head to four and renormalises, everywhere."""
    rules = tmp_path / "four.yaml"
    rules.write_text(json.dumps({"classes": ["angry", "happy", "neutral", "sad"], "rules": [
        {"name": "upset", "type": "combination", "emotions": ["angry", "sad"], "threshold": 0.0, "duration": 0.5}]}))
    with TestClient(create_app(make_settings(tmp_path, db_url, rules=rules), predictor)) as masked:
        body = upload(masked, audio_id="masked").json()
        scores = body["record"]["scores"]
        assert {c for c, v in scores.items() if v > 0} <= {"angry", "happy", "neutral", "sad"}
        assert sum(scores.values()) == pytest.approx(1.0, abs=1e-4)
        assert body["record"]["label"] in ("angry", "happy", "neutral", "sad")
        timeline = masked.get(body["record"]["timeline"], headers=AUTH).json()
        frames = np.array(timeline["scores"])
        kept = [CLASSES.index(c) for c in ("angry", "happy", "neutral", "sad")]
        assert np.allclose(frames[:, kept].sum(1), 1, atol=1e-4) and np.allclose(np.delete(frames, kept, 1), 0)


def test_explain_stores_a_generated_reason_with_each_upload(tmp_path, predictor, db_url, tiny_gguf):
    settings = make_settings(tmp_path, db_url, explain=True, explain_model=str(tiny_gguf))
    with TestClient(create_app(settings, predictor)) as client:
        body = upload(client, audio_id="call-7").json()
        reason = body["record"]["rationale"]
        assert reason["generated"] is True and reason["model"] == "tiny-llama.gguf" and "Hz" in reason["cues"]
        assert body["prediction"]["rationale"] == reason
        (listed,) = client.get("/records?audio_id=call-7", headers=AUTH).json()
        assert listed["rationale"] == reason  # stored, and read back marked as generated
        assert client.delete("/records/call-7", headers=AUTH).status_code == 200
    (tmp_path / "off").mkdir()
    with TestClient(create_app(make_settings(tmp_path / "off", db_url), predictor)) as client:
        assert upload(client, audio_id="call-8").json()["record"]["rationale"] is None  # off by default

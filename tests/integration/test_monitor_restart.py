"""``kill -9`` of a real ``mmemo monitor serve`` while a webhook waits for its retry.

After a restart the delivery completes (same idempotency key: at least once) or, once its
retries are spent, is dead-lettered; and a rule's cooldown still holds, so the restart does not
let the same alert fire again. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import numpy as np
import soundfile

TOKEN = "restart-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CLASSES = ["angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "<unk>"]


class Receiver(BaseHTTPRequestHandler):
    """``/later`` fails until ``healthy``; ``/never`` always fails. Every request is recorded."""

    healthy = False
    seen: list[tuple[str, str, float]] = []  # path, idempotency key, time

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Receiver.seen.append((self.path, body["idempotency_key"], time.monotonic()))
        ok = self.path == "/later" and Receiver.healthy
        self.send_response(200 if ok else 503)
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wav(seconds: float = 1.0) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), 16000,
                    format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class Service:
    """``mmemo monitor serve`` in its own process, as a user runs it."""

    def __init__(self, model: Path, rules: Path, data_dir: Path, db_url: str):
        self.port = free_port()
        self.log = data_dir.parent / f"serve-{self.port}.log"
        env = {**os.environ, "MMEMO_MONITOR_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "-m", "mmemo.cli", "monitor", "serve", "--model", str(model), "--rules",
                   str(rules), "--data-dir", str(data_dir), "--port", str(self.port), "--db-url", db_url]
        with self.log.open("w") as handle:
            self.process = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"monitor exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"monitor did not start: {self.log.read_text()[-3000:]}")

    def get(self, path: str):
        return httpx.get(self.url + path, headers=AUTH, timeout=30).json()

    def upload(self) -> dict:
        response = httpx.post(self.url + "/analyze", headers=AUTH, files={"file": ("call.wav", wav(), "audio/wav")},
                              timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=10) == -signal.SIGKILL


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_during_a_webhook_retry_then_restart(tiny_e2v_dir, tmp_path, db_url):
    receiver = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    Receiver.healthy, Receiver.seen = False, []
    hook = f"http://127.0.0.1:{receiver.server_port}"
    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps({"rules": [{
        "name": "anything", "type": "combination", "emotions": CLASSES, "threshold": 0.99, "duration": 0.5,
        "cooldown": 86400, "actions": [
            {"type": "webhook", "url": f"{hook}/later", "retries": 3, "backoff": 3.0, "timeout": 2},
            {"type": "webhook", "url": f"{hook}/never", "retries": 1, "backoff": 3.0, "timeout": 2}]}]}))
    data_dir = tmp_path / "data"
    try:
        first = Service(tiny_e2v_dir, rules, data_dir, db_url)
        try:
            (alert,) = first.upload()["alerts"]
            wait_for(lambda: len(Receiver.seen) == 2, 20, "the first attempt of both webhooks")
            assert first.get("/alerts")[0]["delivery"] == "pending"
        finally:
            first.kill()  # while both wait 3 s for their retry
        killed_at = time.monotonic()
        keys = {path: key for path, key, _ in Receiver.seen}
        Receiver.healthy = True

        second = Service(tiny_e2v_dir, rules, data_dir, db_url)
        try:
            wait_for(lambda: second.get("/alerts")[0]["delivery"] == "dead" and not
                     second.get("/health")["webhooks"]["pending"], 60, "both deliveries to finish")
            later = [(key, at) for path, key, at in Receiver.seen if path == "/later"]
            never = [(key, at) for path, key, at in Receiver.seen if path == "/never"]
            assert len(later) == 2 and {key for key, _ in later} == {keys["/later"]}  # resumed, same key
            assert len(never) == 2 and {key for key, _ in never} == {keys["/never"]}  # its last try, then dead
            assert all(at > killed_at for _, at in later[1:] + never[1:])
            (dead,) = second.get("/alerts/dead-letters")
            assert dead["url"] == f"{hook}/never" and dead["attempts"] == 2 and dead["last_error"] == "HTTP 503"
            assert dead["alert_id"] == alert["id"] and dead["payload"]["idempotency_key"] == keys["/never"]

            again = second.upload()  # the same condition: inside the one-day cooldown, across the restart
            assert again["alerts"] == [] and len(second.get("/alerts")) == 1
        finally:
            second.kill()
    finally:
        receiver.shutdown()

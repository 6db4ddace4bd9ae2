"""Alert delivery: log lines at once, webhooks on a background thread with retries.

A webhook is POSTed as JSON; any non-2xx answer or network error is retried after
``backoff * 2**k`` seconds (k = 0, 1, ...) up to ``retries`` more times, and a webhook that
still fails is written to the dead-letter table with its payload and last error, so an
outage of the receiver loses nothing and never slows down analysis requests.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mmemo.monitor.rules import Action
from mmemo.monitor.store import ResultStore

log = logging.getLogger("mmemo.monitor.alerts")

#: ``transport(url, payload, headers, timeout) -> HTTP status``; raises on network errors.
Transport = Callable[[str, dict, dict, float], int]


def httpx_transport() -> Transport:
    import httpx

    client = httpx.Client(follow_redirects=False)

    def post(url: str, payload: dict, headers: dict, timeout: float) -> int:
        return client.post(url, json=payload, headers=headers, timeout=timeout).status_code

    return post


@dataclass
class _Job:
    alert_id: int | None
    action: Action
    payload: dict


class AlertDispatcher:
    """Runs each alert's actions. ``sleep`` and ``transport`` are injectable for tests."""

    def __init__(self, store: ResultStore, transport: Transport | None = None,
                 sleep: Callable[[float], None] = time.sleep, backoff_scale: float = 1.0):
        self.store = store
        self._transport = transport
        self._sleep = sleep
        self.backoff_scale = backoff_scale  # multiplies every rule's backoff (tests and benchmarks use ~0)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.dead = 0

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = httpx_transport()
        return self._transport

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mmemo-webhooks", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def dispatch(self, alert: dict, alert_id: int | None, actions: list[Action]) -> None:
        """Log now; queue webhooks (the caller never waits for a receiver)."""
        payload = {"event": "mmemo.alert", "alert_id": alert_id, **alert}
        for action in actions:
            if action.type == "log":
                level = getattr(logging, action.level.upper())
                log.log(level, "ALERT %s [%s] channel=%s audio=%s %.2f-%.2f s score=%.3f (%s)", alert["rule"],
                        alert["priority"], alert["channel"], alert["audio_id"], alert["start"], alert["end"],
                        alert["score"], alert.get("description", ""))
            elif action.type == "webhook":
                if alert_id is not None:
                    self.store.set_delivery(alert_id, "pending")
                self._queue.put(_Job(alert_id, action, payload))
                self.start()

    def join(self, timeout: float = 10.0) -> bool:
        """Wait until every queued webhook is delivered or dead-lettered (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self.deliver(job)
            except Exception:  # never let one bad job stop delivery
                log.exception("webhook delivery crashed")
            finally:
                self._queue.task_done()

    def deliver(self, job: _Job) -> bool:
        action = job.action
        headers = {"User-Agent": "mmemo-monitor", **dict(action.headers)}
        attempts, error = 0, ""
        for attempt in range(action.retries + 1):
            if attempt:
                self._sleep(action.backoff * self.backoff_scale * 2 ** (attempt - 1))
            attempts += 1
            try:
                status = self.transport(action.url, job.payload, headers, action.timeout)
            except Exception as exc:  # network errors, timeouts
                error = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= status < 300:
                    if job.alert_id is not None:
                        self.store.set_delivery(job.alert_id, "delivered")
                    self.delivered += 1
                    return True
                error = f"HTTP {status}"
            log.warning("webhook %s attempt %d/%d failed: %s", action.url, attempts, action.retries + 1, error)
        self.store.add_dead_letter(alert_id=job.alert_id, url=action.url, payload=job.payload, attempts=attempts,
                                   last_error=error)
        self.dead += 1
        log.error("webhook %s dead-lettered after %d attempts: %s", action.url, attempts, error)
        return False

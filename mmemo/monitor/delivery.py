"""Alert delivery: log lines at once, webhooks from a durable queue with retries.

A webhook is first written to the results store (table ``deliveries``) and only then tried,
so a restart - even ``kill -9`` while a retry is waiting - loses nothing: pending deliveries
are resumed when the monitor starts. Delivery is *at least once*: a receiver may see the same
alert twice (the process died after sending, before recording it), so every payload carries an
``idempotency_key`` (also sent as the ``Idempotency-Key`` header) that stays the same across
attempts and restarts.

Any non-2xx answer or network error is retried after ``backoff * 2**k`` seconds (k = 0, 1, ...)
up to ``retries`` more times; a webhook that still fails is written to the dead-letter table
with its payload and last error. Retries are scheduled in the store (``next_attempt_at``), not
slept through, so one slow receiver never holds up another's alerts, and analysis requests
never wait for a receiver.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection

from mmemo.monitor.actions import Action
from mmemo.monitor.destinations import DestinationError, check_resolved
from mmemo.monitor.store import ResultStore
from mmemo.monitor.templates import TemplateProblem, render_payload, render_text


def email_body(alert: dict) -> str:
    return "\n".join([f"Rule: {alert['rule']} ({alert['priority']})", f"Channel: {alert['channel']}",
                      f"Audio: {alert['audio_id']}, {alert['start']:.1f}-{alert['end']:.1f} s",
                      f"Score: {alert['score']:.3f} (threshold {alert['threshold']:g})",
                      f"Condition: {alert.get('description', '')}", "", "-- mmemo monitor"])

log = logging.getLogger("mmemo.monitor.alerts")

#: ``transport(url, payload, headers, timeout) -> HTTP status``; raises on network errors.
Transport = Callable[[str, dict, dict, float], int]
#: How often the worker looks for due deliveries when nothing wakes it (other processes, restarts).
POLL_SECONDS = 1.0


def httpx_transport() -> Transport:
    import httpx

    client = httpx.Client(follow_redirects=False)

    def post(url: str, payload: dict, headers: dict, timeout: float) -> int:
        return client.post(url, json=payload, headers=headers, timeout=timeout).status_code

    return post


def action_spec(action: Action) -> dict:
    """What a stored delivery needs of its action (the rules may change before it is sent)."""
    return {"retries": action.retries, "backoff": action.backoff, "timeout": action.timeout,
            "headers": dict(action.headers)}


#: ``mailer(recipients, subject, body)``; raises on failure.
Mailer = Callable[[list, str, str], None]


def smtp_mailer(host: str, port: int = 25, sender: str = "mmemo@localhost", *, user: str | None = None,
                password: str | None = None, starttls: bool = False, timeout: float = 30.0) -> Mailer:
    """Plain SMTP (optionally STARTTLS and login); the password is never logged."""
    import smtplib
    from email.message import EmailMessage

    def send(recipients: list, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = sender, ", ".join(recipients), subject
        message.set_content(body)
        with smtplib.SMTP(host, port, timeout=timeout) as server:
            if starttls:
                server.starttls()
            if user:
                server.login(user, password or "")
            server.send_message(message)

    return send


class AlertDispatcher:
    """Runs each alert's actions; one worker thread sends the stored webhook deliveries.

    ``transport`` and ``clock`` are injectable for tests; ``backoff_scale`` multiplies every
    rule's backoff (tests and benchmarks use ~0). ``allowed_hosts`` skip the destination checks.
    """

    def __init__(self, store: ResultStore, transport: Transport | None = None, *,
                 clock: Callable[[], float] = time.time,
                 backoff_scale: float = 1.0, allowed_hosts: Collection[str] = (), mailer: Mailer | None = None):
        self.store = store
        self._transport = transport
        self.mailer = mailer
        self.clock = clock
        self.backoff_scale = backoff_scale
        self.allowed_hosts = tuple(allowed_hosts)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.dead = 0

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = httpx_transport()
        return self._transport

    def start(self) -> None:
        """Start the worker; deliveries left pending by an earlier process are picked up at once."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="mmemo-webhooks", daemon=True)
            self._thread.start()
            pending = self.store.pending_deliveries()
            if pending:
                log.info("resuming %d pending webhook deliver%s", pending, "y" if pending == 1 else "ies")

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout)
            self._thread = None

    def dispatch(self, alert: dict, alert_id: int | None, actions: list[Action]) -> None:
        """Log now; store webhooks for the worker (the caller never waits for a receiver)."""
        for action in actions:
            if action.type == "log":
                level = getattr(logging, action.level.upper())
                log.log(level, "ALERT %s [%s] channel=%s audio=%s %.2f-%.2f s score=%.3f (%s)", alert["rule"],
                        alert["priority"], alert["channel"], alert["audio_id"], alert["start"], alert["end"],
                        alert["score"], alert.get("description", ""))
            elif action.type in ("webhook", "email"):
                key = uuid.uuid4().hex
                event = {"alert_id": alert_id, **alert}
                try:
                    if action.type == "webhook":
                        url = action.url
                        payload = render_payload(action.template, event) if action.template else \
                            {"event": "mmemo.alert", "idempotency_key": key, **event}
                    else:
                        url = "mailto:" + ",".join(action.to)
                        payload = {"subject": render_text(action.subject, event), "body": email_body(event)}
                except TemplateProblem as error:  # validated at load; a value outside the sample's shape
                    log.error("alert %s: %s action not sent: %s", alert["rule"], action.type, error)
                    continue
                self.store.add_delivery(alert_id=alert_id, url=url, action=action_spec(action),
                                        payload=payload, key=key, due=self.clock())
                self.start()
                self._wake.set()

    def join(self, timeout: float = 10.0) -> bool:
        """Wait until no delivery is pending (delivered or dead-lettered); tests and shutdown."""
        deadline = time.monotonic() + timeout
        while self.store.pending_deliveries() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.01)
        return not self.store.pending_deliveries()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self.store.claim_delivery(self.clock(), lease_seconds=60.0)
                if claimed is not None:
                    self._attempt(claimed)
                    continue
                due = self.store.next_delivery_due()
            except Exception:  # a database hiccup must not end delivery
                log.exception("webhook queue unavailable; retrying")
                due = None
            wait = POLL_SECONDS if due is None else min(POLL_SECONDS, max(0.0, due - self.clock()))
            self._wake.wait(wait)
            self._wake.clear()

    def _attempt(self, delivery: dict) -> None:
        action = delivery["action"]
        headers = {"User-Agent": "mmemo-monitor", "Idempotency-Key": delivery["key"], **action.get("headers", {})}
        attempt = delivery["attempts"] + 1
        total = int(action["retries"]) + 1
        try:
            if delivery["url"].startswith("mailto:"):
                if self.mailer is None:
                    raise DestinationError("no SMTP server configured (--smtp-host)")
                payload = delivery["payload"]
                self.mailer(delivery["url"][len("mailto:"):].split(","), payload["subject"], payload["body"])
                error = ""
            else:
                check_resolved(delivery["url"], self.allowed_hosts)
                status = self.transport(delivery["url"], delivery["payload"], headers, float(action["timeout"]))
                error = "" if 200 <= status < 300 else f"HTTP {status}"
        except DestinationError as refused:
            error, total = f"refused: {refused}", attempt  # never retried
        except Exception as exc:  # network errors, timeouts
            error = f"{type(exc).__name__}: {exc}"
        if not error:
            self.store.delivery_attempted(delivery["id"], ok=True)
            self.delivered += 1
            return
        url = delivery["url"].split("?")[0]  # a query string may carry a receiver's secret
        if attempt < total:
            delay = float(action["backoff"]) * self.backoff_scale * 2 ** (attempt - 1)
            self.store.delivery_attempted(delivery["id"], ok=False, error=error, retry_at=self.clock() + delay)
            log.warning("webhook %s attempt %d/%d failed: %s; next try in %.3g s", url, attempt, total, error, delay)
            return
        self.store.delivery_attempted(delivery["id"], ok=False, error=error)
        self.dead += 1
        log.error("webhook %s dead-lettered after %d attempts: %s", url, attempt, error)

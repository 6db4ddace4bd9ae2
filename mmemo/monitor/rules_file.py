"""The rules file that reloads itself: polled, validated, and never left without rules.

A file that fails validation is refused and the previous rules stay active; the error is shown
by ``GET /health`` and ``GET /rules`` until the file is fixed (parsing lives in
:mod:`mmemo.monitor.rules`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmemo.monitor.rules import RulesError, RuleSet, load_rules

log = logging.getLogger("mmemo.monitor.rules")  # the logger these messages always had


@dataclass
class ReloadResult:
    changed: bool
    error: str | None = None
    rules: int = 0


class RulesFile:
    """A rules file kept current: :meth:`poll` reloads it when its content changed.

    A file that fails validation is refused and the previous rules stay active, so editing
    the file on a live service can never leave it without alerts; the error is kept in
    :attr:`last_error` (shown by ``GET /health`` and ``GET /rules``).
    """

    def __init__(self, path: str | Path, classes: Sequence[str] | None = None, *, strict: bool = True,
                 allowed_hosts: Collection[str] = (), dimensions: Sequence[str] = ()):
        self.path = Path(path)
        self.classes = list(classes) if classes is not None else None
        self.dimensions = list(dimensions)
        self.strict = strict
        self.allowed_hosts = tuple(allowed_hosts)
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self.last_error: str | None = None
        self.ruleset = self._load()  # the first load must succeed
        self._stamp = self._current_stamp()
        self.version = 1

    def _current_stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _load(self) -> RuleSet:
        return load_rules(self.path, self.classes, strict=self.strict, allowed_hosts=self.allowed_hosts,
                          dimensions=self.dimensions)

    def reload(self) -> ReloadResult:
        """Re-read the file now (``POST /rules/reload``). Never raises: a file that cannot be
        used is reported once (log, ``/health``, ``/rules``) and the previous rules stay."""
        with self._lock:
            stamp = self._current_stamp()
            try:
                ruleset = self._load()
            except Exception as error:  # noqa: BLE001 - whatever a file holds, the service keeps running
                message = str(error) if isinstance(error, RulesError) else \
                    f"{self.path}: cannot use the rules file ({type(error).__name__}: {error})"
                self._stamp = stamp  # do not retry the same broken content on every poll
                if message != self.last_error:
                    log.error("rules not reloaded, keeping the previous %d rule(s): %s", len(self.ruleset.rules),
                              message)
                self.last_error = message
                return ReloadResult(False, message, len(self.ruleset.rules))
            self._stamp, self.last_error = stamp, None
            changed = ruleset.digest != self.ruleset.digest
            if changed:
                self.ruleset = ruleset
                self.version += 1
                log.info("rules reloaded from %s: %d rule(s)", self.path, len(ruleset.rules))
            return ReloadResult(changed, None, len(ruleset.rules))

    def poll(self) -> ReloadResult | None:
        """Reload if the file's mtime or size changed since the last look (hot reload)."""
        if self._current_stamp() == self._stamp:
            return None
        return self.reload()


@dataclass
class RulesPoller:
    """A daemon thread calling :meth:`RulesFile.poll` every ``interval`` seconds."""

    rules_file: RulesFile
    interval: float = 1.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mmemo-rules-poll", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.rules_file.poll()
            except Exception:  # a poll must never kill the thread
                log.exception("rules poll failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

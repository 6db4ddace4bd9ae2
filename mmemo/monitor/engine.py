"""The alert engine: rules evaluated frame by frame over score timelines, with cooldowns.

One :class:`RuleSession` follows one piece of audio (an uploaded file or a live stream) and
keeps each rule's sliding window; the :class:`AlertEngine` owns what outlives a session -
the current rules (swapped on reload) and the cooldown clock per (rule, channel) - so two
files from the same call-centre line share a cooldown but never a window.

Window semantics, for a frame period ``dt`` and a rule with ``duration``: the window is the
last ``n = max(1, ceil(duration / dt))`` frames. It *holds* when it is full and its frames'
rule score (one emotion, or the sum of several) is ``>= threshold`` on every frame
(``aggregate: min``) or on average (``aggregate: mean``); a dimensions rule holds when its
conditions (``arousal >= 0.7 and valence <= 0.3``) hold on every frame, or on the window means.
A rule fires on the first frame where its window holds and its cooldown has passed; its window
then starts afresh, so a condition that keeps holding fires again after another full window
(and the cooldown).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from mmemo.errors import InvalidInput
from mmemo.monitor.rules import PRIORITIES, Rule, RuleSet

Clock = Callable[[], float]


@dataclass
class Alert:
    """One firing. ``start``/``end`` are seconds into the audio; ``fired_at`` is epoch seconds."""

    rule: str
    priority: str
    channel: str
    audio_id: str
    start: float
    end: float
    score: float  # the window's mean rule score
    threshold: float
    emotions: list[str]
    fired_at: float
    description: str = ""
    actions: list = field(default_factory=list, repr=False)  # rules.Action, for delivery only

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("actions")
        return data


def frames_needed(duration: float, frame_period: float) -> int:
    """Frames a window must span: ``duration`` rounded up to whole frames (at least one)."""
    return max(1, math.ceil(duration / frame_period - 1e-6))


@dataclass
class _Window:
    rule: Rule
    size: int
    scores: deque = field(default_factory=deque)
    total: float = 0.0
    below: int = 0  # frames in the window under the threshold (aggregate: min)

    def push(self, value: float) -> None:
        self.scores.append(value)
        self.total += value
        self.below += value < self.rule.threshold
        if len(self.scores) > self.size:
            old = self.scores.popleft()
            self.total -= old
            self.below -= old < self.rule.threshold

    def holds(self) -> bool:
        if len(self.scores) < self.size:
            return False
        if self.rule.aggregate == "min":
            return self.below == 0
        return self.total / self.size >= self.rule.threshold - 1e-9

    def reset(self) -> None:
        self.scores.clear()
        self.total, self.below = 0.0, 0


_COMPARE = {">=": np.greater_equal, "<=": np.less_equal, ">": np.greater, "<": np.less}


def conditions_hold(rule: Rule, values: np.ndarray, columns: list[int]) -> np.ndarray:
    """Whether every condition of a dimensions rule holds, per row of ``values`` [..., D] -> [...] bool."""
    ok = np.ones(values.shape[:-1], dtype=bool)
    for (_, op, bound), column in zip(rule.conditions, columns):
        ok &= _COMPARE[op](values[..., column], bound - 1e-9 if op == ">=" else bound + 1e-9 if op == "<=" else bound)
    return ok


@dataclass
class _DimensionWindow:
    """The window of a ``type: dimensions`` rule: every frame meets the conditions (``min``) or the
    window's mean of each dimension does (``mean``)."""

    rule: Rule
    size: int
    columns: list[int]
    rows: deque = field(default_factory=deque)
    missed: int = 0  # frames in the window that do not meet the conditions

    def push(self, vector: np.ndarray) -> None:
        ok = bool(conditions_hold(self.rule, vector, self.columns))
        self.rows.append((vector, ok))
        self.missed += not ok
        if len(self.rows) > self.size:
            self.missed -= not self.rows.popleft()[1]

    def holds(self) -> bool:
        if len(self.rows) < self.size:
            return False
        if self.rule.aggregate == "min":
            return self.missed == 0
        return bool(conditions_hold(self.rule, np.mean([v for v, _ in self.rows], axis=0), self.columns))

    @property
    def total(self) -> float:
        """Frames meeting the conditions (so ``total / size`` is the share reported as the alert's score)."""
        return float(len(self.rows) - self.missed)

    def reset(self) -> None:
        self.rows.clear()
        self.missed = 0


class AlertEngine:
    """Current rules plus the cooldown clock; thread-safe (sessions run on worker threads).

    ``last_fired`` ({(rule, channel): epoch s}) restores the cooldown clock of an earlier run
    (the monitor derives it from its stored alerts), so a restart never lets a rule with a
    day-long cooldown fire again within the day.
    """

    def __init__(self, rules: RuleSet | Callable[[], RuleSet], classes: Sequence[str],
                 last_fired: dict[tuple[str, str], float] | None = None, dimensions: Sequence[str] = ()):
        self._rules = rules if callable(rules) else (lambda: rules)
        self.classes = list(classes)
        #: The model's dimensions, in the order of the ``values`` columns sessions are fed.
        self.dimensions = list(dimensions)
        self._index = {name: i for i, name in enumerate(self.classes)}
        self._dimension_index = {name: i for i, name in enumerate(self.dimensions)}
        self._last_fired: dict[tuple[str, str], float] = dict(last_fired or {})
        self._lock = threading.Lock()

    @property
    def ruleset(self) -> RuleSet:
        return self._rules()

    def session(self, channel: str, audio_id: str, frame_period: float, start_time: float | None = None,
                clock: Clock = time.time) -> RuleSession:
        """Windows for one piece of audio whose frame 0 began at ``start_time`` (epoch s)."""
        return RuleSession(self, channel, audio_id, frame_period, clock() if start_time is None else start_time)

    def columns(self, rule: Rule) -> list[int]:
        """The score columns a rule reads: its emotions' (or, for a dimensions rule, its conditions')."""
        if rule.type == "dimensions":
            return [self._dimension_index[name] for name, _, _ in rule.conditions]
        return [self._index[emotion] for emotion in rule.emotions]

    def try_fire(self, rule: Rule, channel: str, event_time: float) -> bool:
        """Claim a firing unless the rule is cooling down on this channel."""
        key = (rule.name, channel)
        with self._lock:
            last = self._last_fired.get(key)
            if last is not None and event_time < last + rule.cooldown:
                return False
            self._last_fired[key] = event_time
            return True


class RuleSession:
    """Sliding windows of every applicable rule over one audio's frames, fed in any chunks."""

    def __init__(self, engine: AlertEngine, channel: str, audio_id: str, frame_period: float, start_time: float):
        if frame_period <= 0:
            raise InvalidInput(f"frame_period must be > 0, got {frame_period}")
        self.engine, self.channel, self.audio_id = engine, channel, audio_id
        self.frame_period, self.start_time = frame_period, start_time
        self._windows: dict[str, _Window] = {}
        self._ruleset: RuleSet | None = None

    def _current_windows(self) -> list[_Window]:
        ruleset = self.engine.ruleset
        if ruleset is not self._ruleset:  # reloaded: keep windows of unchanged rules, start new ones
            windows = {}
            for rule in ruleset.for_channel(self.channel):
                old = self._windows.get(rule.key())
                size = frames_needed(rule.duration, self.frame_period)
                windows[rule.key()] = old if old is not None and old.rule == rule else \
                    _DimensionWindow(rule, size, self.engine.columns(rule)) if rule.type == "dimensions" \
                    else _Window(rule, size)
            self._windows, self._ruleset = windows, ruleset
        return list(self._windows.values())

    def feed(self, times: np.ndarray, probs: np.ndarray, values: np.ndarray | None = None) -> list[Alert]:
        """Evaluate new frames (``times: [T]`` frame centres, s into the audio; ``probs: [T,C]``; ``values:
        [T,D]`` the engine's dimensions, for dimensions rules); return firings."""
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[0] != times.shape[0] or probs.shape[1] != len(self.engine.classes):
            raise InvalidInput(f"expected probs [T={times.shape[0]}, C={len(self.engine.classes)}], "
                             f"got {list(probs.shape)}")
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (times.shape[0], len(self.engine.dimensions)):
                raise InvalidInput(f"expected dimension values [T={times.shape[0]}, D={len(self.engine.dimensions)}]"
                                   f", got {list(values.shape)}")
        alerts: list[Alert] = []
        for window in self._current_windows():
            rule = window.rule
            if rule.type == "dimensions":
                if values is None:  # this audio has no dimension values (a model without them)
                    continue
                scores = values
            else:
                scores = probs[:, self.engine.columns(rule)].sum(axis=1)
            for t, value in zip(times, scores):
                window.push(value if rule.type == "dimensions" else float(value))
                if not window.holds():
                    continue
                if not self.engine.try_fire(rule, self.channel, self.start_time + t):
                    continue
                half = self.frame_period / 2  # times are frame centres (mmemo.inference.timeline)
                start = t - (window.size - 1) * self.frame_period - half
                alerts.append(Alert(rule=rule.name, priority=rule.priority, channel=self.channel,
                                    audio_id=self.audio_id, start=round(max(start, 0.0), 4),
                                    end=round(t + half, 4), score=window.total / window.size,
                                    threshold=rule.threshold, emotions=list(rule.emotions or rule.dimensions),
                                    fired_at=self.start_time + float(t), description=rule.describe(),
                                    actions=list(rule.actions)))
                window.reset()
        alerts.sort(key=lambda a: (a.fired_at, -PRIORITIES.index(a.priority)))  # most urgent first
        return alerts

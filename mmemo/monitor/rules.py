"""Alert rules: the YAML format and its validation (the self-reloading file: :mod:`mmemo.monitor.rules_file`).

A rule watches one score per frame - one emotion's probability (``type: threshold``) or the
sum of several (``type: combination``) - and fires when that score meets ``threshold`` over
a window of at least ``duration`` seconds (every frame with ``aggregate: min``, the window
average with ``aggregate: mean``). Evaluation lives in :mod:`mmemo.monitor.engine`; this module
only turns a file into validated :class:`Rule` objects, with errors that name the file, the
rule and the field, so a typo never silently disables an alert.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mmemo.errors import UserError
from mmemo.monitor.destinations import check_url
from mmemo.monitor.templates import DEFAULT_SUBJECT, TemplateProblem, check_payload_template, check_template
from mmemo.textfiles import TextFileError, loads_yaml, read_text

log = logging.getLogger(__name__)

#: Priority names in increasing order of urgency; stored and compared as their index.
PRIORITIES = ("low", "medium", "high", "critical")
RULE_TYPES = ("threshold", "combination")
AGGREGATES = ("min", "mean")
ACTION_TYPES = ("log", "webhook", "email")
#: A rules file larger than this is not a rules file.
MAX_RULES_BYTES = 1 << 20
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")

_RULE_FIELDS = {"name", "type", "emotion", "emotions", "threshold", "duration", "aggregate", "channels",
                "priority", "cooldown", "actions", "enabled", "description"}
_DEFAULT_FIELDS = {"duration", "aggregate", "channels", "priority", "cooldown", "actions"}
_ACTION_FIELDS = {"log": {"type", "level"},
                  "webhook": {"type", "url", "retries", "backoff", "timeout", "headers", "template"},
                  "email": {"type", "to", "subject", "retries", "backoff"}}
#: The simpler rule style monitoring users already write (``emotion``, ``threshold``, ``duration_sec``,
#: ``action``), converted on load with a note in the log.
_SIMPLE_FIELDS = {"name", "emotion", "threshold", "duration_sec", "action", "url", "webhook_url", "to",
                  "cooldown_sec", "channel", "priority", "enabled"}


class RulesError(UserError, ValueError):
    """A rules file that cannot be used; the message names the file, rule and field."""


def _canonical(classes: Sequence[str]) -> dict[str, str]:
    """Lower-cased class name -> the model's own spelling."""
    return {c.lower(): c for c in classes}


@dataclass(frozen=True)
class Action:
    """Where a firing goes: the service log, or an HTTP POST retried with exponential backoff."""

    type: str
    level: str = "warning"  # log
    url: str = ""  # webhook
    template: str = ""  # webhook: a built-in chat payload (slack, teams, discord, mattermost) or a Jinja2 template
    to: tuple[str, ...] = ()  # email recipients
    subject: str = ""  # email subject template
    retries: int = 3  # attempts after the first one
    backoff: float = 1.0  # seconds before the first retry; doubled each time
    timeout: float = 5.0
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Rule:
    name: str
    type: str
    emotions: tuple[str, ...]
    threshold: float
    duration: float = 0.0
    aggregate: str = "min"
    channels: tuple[str, ...] = ("*",)
    priority: str = "medium"
    cooldown: float = 60.0
    actions: tuple[Action, ...] = (Action("log"),)
    description: str = ""

    def applies_to(self, channel: str) -> bool:
        return "*" in self.channels or channel in self.channels

    @property
    def rank(self) -> int:
        return PRIORITIES.index(self.priority)

    def key(self) -> str:
        """Identity of the condition: a reloaded rule with the same key keeps its window state."""
        text = repr((self.name, self.type, self.emotions, self.threshold, self.duration, self.aggregate))
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def describe(self) -> str:
        what = self.emotions[0] if self.type == "threshold" else " + ".join(self.emotions)
        window = "every frame" if self.aggregate == "min" else "window mean"
        return f"{what} >= {self.threshold:g} for >= {self.duration:g} s ({window})"


@dataclass
class RuleSet:
    rules: list[Rule]
    source: str = "<memory>"
    digest: str = ""
    #: The model's classes this deployment watches (``classes:`` in the file): scores are restricted
    #: to them and renormalised before rules run (None: every class).
    classes: tuple[str, ...] | None = None

    def mask(self, classes: Sequence[str]):
        """A function restricting [..., C] probabilities to ``self.classes`` (renormalised), or None."""
        if not self.classes:
            return None
        import numpy as np

        keep = np.array([c in self.classes for c in classes], dtype=bool)

        def apply(probs):
            probs = np.asarray(probs, dtype=np.float64) * keep
            total = probs.sum(axis=-1, keepdims=True)
            return np.divide(probs, total, out=np.zeros_like(probs), where=total > 0)

        return apply

    def restrict(self, classes: Sequence[str], scores: dict[str, float]) -> tuple[dict[str, float], str, float]:
        """Utterance ``scores`` under :meth:`mask` (unchanged without ``classes``): (scores, top label, its score)."""
        import numpy as np

        vector = np.array([scores[c] for c in classes])
        mask = self.mask(classes)
        vector = mask(vector) if mask is not None else vector
        top = int(vector.argmax())
        return {c: round(float(v), 5) for c, v in zip(classes, vector)}, classes[top], float(vector[top])

    def for_channel(self, channel: str) -> list[Rule]:
        return [rule for rule in self.rules if rule.applies_to(channel)]

    def fit_classes(self, classes: Sequence[str], *, strict: bool = True) -> RuleSet:
        """The rules with emotion names spelled as the model's classes (matched case-insensitively).

        ``strict`` (a user's rules file): a name that is no class of the model is an error, with
        the closest class names suggested. Not strict (the built-in default rules): a rule that
        does not fit this model is left out with a log line, so a default never blocks a model.
        """
        known = _canonical(classes)
        fitted = []
        for index, rule in enumerate(self.rules):
            unknown = [e for e in rule.emotions if e.lower() not in known]
            if unknown:
                field_name = "emotion" if rule.type == "threshold" else "emotions"
                close = difflib.get_close_matches(unknown[0].lower(), list(known), n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(repr(known[c]) for c in close)}?" if close else ""
                problem = (f"{self.source}: rule {rule.name!r} (#{index + 1}), field {field_name!r}: "
                           f"{unknown[0]!r} is not a class of the model{hint} (classes: {', '.join(classes)})")
                if strict:
                    raise RulesError(problem)
                log.info("default rule %r skipped: it does not fit this model (%s)", rule.name, problem)
                continue
            fitted.append(replace(rule, emotions=tuple(known[e.lower()] for e in rule.emotions)))
        watched = None
        if self.classes:
            unknown = [c for c in self.classes if c.lower() not in known]
            if unknown:
                raise RulesError(f"{self.source}: 'classes' lists {unknown[0]!r}, not a class of the model "
                                 f"(classes: {', '.join(classes)})")
            watched = tuple(known[c.lower()] for c in self.classes)
        return RuleSet(fitted, self.source, self.digest, watched)


# -- parsing -------------------------------------------------------------------------------------
def _fail(source: str, where: str, field_name: str, problem: str) -> RulesError:
    return RulesError(f"{source}: {where}, field {field_name!r}: {problem}")


def _number(value: Any, source: str, where: str, name: str, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(source, where, name, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise _fail(source, where, name, f"must be a finite number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise _fail(source, where, name, f"must be {bounds}, got {value!r}")
    return float(value)


def _choice(value: Any, choices: Sequence[str], source: str, where: str, name: str) -> str:
    if value not in choices:
        raise _fail(source, where, name, f"must be one of {', '.join(choices)}; got {value!r}")
    return value


def _parse_action(raw: Any, source: str, where: str, index: int, allowed_hosts: Collection[str] = ()) -> Action:
    name = f"actions[{index}]"
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, dict):
        raise _fail(source, where, name, f"must be a mapping like {{type: log}}, got {raw!r}")
    kind = _choice(raw.get("type"), ACTION_TYPES, source, where, f"{name}.type")
    unknown = set(raw) - _ACTION_FIELDS[kind]
    if unknown:
        raise _fail(source, where, f"{name}.{sorted(unknown)[0]}",
                    f"unknown for a {kind} action (allowed: {', '.join(sorted(_ACTION_FIELDS[kind]))})")
    if kind == "log":
        return Action("log", level=_choice(raw.get("level", "warning"), LOG_LEVELS, source, where, f"{name}.level"))
    retries = raw.get("retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 20:
        raise _fail(source, where, f"{name}.retries", f"must be an integer in [0, 20], got {retries!r}")
    if kind == "email":
        to = raw.get("to")
        to = [to] if isinstance(to, str) else to
        if not isinstance(to, list) or not to or not all(isinstance(a, str) and _EMAIL.fullmatch(a) for a in to):
            raise _fail(source, where, f"{name}.to",
                        f"must be an e-mail address or a list of them, got {raw.get('to')!r}")
        subject = raw.get("subject", DEFAULT_SUBJECT)
        try:
            check_template(subject)
        except TemplateProblem as error:
            raise _fail(source, where, f"{name}.subject", str(error)) from None
        return Action("email", to=tuple(to), subject=subject, retries=retries,
                      backoff=_number(raw.get("backoff", 1.0), source, where, f"{name}.backoff", 0.0, 3600.0))
    url = raw.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise _fail(source, where, f"{name}.url", f"must be an http:// or https:// URL, got {url!r}")
    try:
        check_url(url, allowed_hosts)
    except ValueError as error:  # DestinationError, or a malformed URL (bad port, brackets)
        raise _fail(source, where, f"{name}.url", str(error)) from None
    headers = raw.get("headers", {}) or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise _fail(source, where, f"{name}.headers", "must map header names to strings")
    template = raw.get("template", "")
    if not isinstance(template, str):
        raise _fail(source, where, f"{name}.template",
                    f"must be a built-in name or a template string, got {template!r}")
    try:
        check_payload_template(template)
    except TemplateProblem as error:
        raise _fail(source, where, f"{name}.template", str(error)) from None
    return Action("webhook", url=url, retries=retries, template=template,
                  backoff=_number(raw.get("backoff", 1.0), source, where, f"{name}.backoff", 0.0, 3600.0),
                  timeout=_number(raw.get("timeout", 5.0), source, where, f"{name}.timeout", 0.001, 600.0),
                  headers=tuple(sorted((str(k), v) for k, v in headers.items())))


def is_simple_style(raw: Any) -> bool:
    return isinstance(raw, dict) and "type" not in raw and bool({"duration_sec", "action"} & set(raw)) \
        and set(raw) <= _SIMPLE_FIELDS


def from_simple_style(raw: dict, source: str, index: int) -> dict:
    """``{emotion: angry, threshold: 0.8, duration_sec: 3, action: webhook, url: ...}`` as a mmemo rule."""
    emotion = raw.get("emotion")
    threshold = raw.get("threshold")
    action = raw.get("action", "log")
    actions = []
    for kind in ([action] if isinstance(action, str) else action if isinstance(action, list) else [action]):
        if kind == "webhook":
            actions.append({"type": "webhook", "url": raw.get("url") or raw.get("webhook_url")})
        elif kind == "email":
            actions.append({"type": "email", "to": raw.get("to")})
        elif kind in ("log", "alert", "notify"):
            actions.append({"type": "log"})
        else:
            raise RulesError(f"{source}: rule #{index + 1}, field 'action': {kind!r} is not log, webhook or email")
    converted = {"name": raw.get("name") or f"{emotion}_over_{threshold}", "type": "threshold", "emotion": emotion,
                 "threshold": threshold, "duration": raw.get("duration_sec", 0.0), "actions": actions}
    for old, new in (("cooldown_sec", "cooldown"), ("priority", "priority"), ("enabled", "enabled")):
        if old in raw:
            converted[new] = raw[old]
    if "channel" in raw:
        converted["channels"] = [raw["channel"]]
    return converted


def _parse_rule(raw: Any, defaults: dict, source: str, index: int, seen: set[str],
                allowed_hosts: Collection[str] = ()) -> Rule | None:
    if not isinstance(raw, dict):
        raise RulesError(f"{source}: rule #{index + 1} must be a mapping, got {raw!r}")
    if is_simple_style(raw):
        raw = from_simple_style(raw, source, index)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RulesError(f"{source}: rule #{index + 1}, field 'name': every rule needs a non-empty name")
    where = f"rule {name!r} (#{index + 1})"
    if name in seen:
        raise _fail(source, where, "name", "duplicate rule name (names identify rules in alerts and cooldowns)")
    seen.add(name)
    unknown = set(raw) - _RULE_FIELDS
    if unknown:
        raise _fail(source, where, sorted(unknown)[0], f"unknown field (allowed: {', '.join(sorted(_RULE_FIELDS))})")
    merged = {**defaults, **raw}
    kind = _choice(merged.get("type"), RULE_TYPES, source, where, "type")
    if kind == "threshold":
        if "emotions" in raw:
            raise _fail(source, where, "emotions", "a threshold rule takes one 'emotion'; use type: combination "
                                                   "for a sum of emotions")
        emotion = merged.get("emotion")
        if not isinstance(emotion, str) or not emotion:
            raise _fail(source, where, "emotion", f"a threshold rule needs one emotion name, got {emotion!r}")
        emotions: tuple[str, ...] = (emotion,)
    else:
        if "emotion" in raw:
            raise _fail(source, where, "emotion", "a combination rule takes a list 'emotions'")
        listed = merged.get("emotions")
        if (not isinstance(listed, list) or len(listed) < 2
                or not all(isinstance(e, str) and e for e in listed)):
            raise _fail(source, where, "emotions", f"a combination needs a list of >= 2 emotion names, got {listed!r}")
        if len(set(listed)) != len(listed):
            raise _fail(source, where, "emotions", f"lists an emotion twice: {listed!r}")
        emotions = tuple(listed)
    if "threshold" not in merged:
        raise _fail(source, where, "threshold", "missing (a score in [0, 1] for threshold rules)")
    threshold = _number(merged["threshold"], source, where, "threshold", 0.0,
                        1.0 if kind == "threshold" else float(len(emotions)))
    channels = merged.get("channels", ["*"])
    if isinstance(channels, str):
        channels = [channels]
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) and c for c in channels):
        raise _fail(source, where, "channels", f"must be a list of channel names or ['*'], got {channels!r}")
    actions_raw = merged.get("actions", [{"type": "log"}])
    if not isinstance(actions_raw, list) or not actions_raw:
        raise _fail(source, where, "actions", f"must be a non-empty list of actions, got {actions_raw!r}")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _fail(source, where, "enabled", f"must be true or false, got {enabled!r}")
    rule = Rule(
        name=name, type=kind, emotions=emotions, threshold=threshold,
        duration=_number(merged.get("duration", 0.0), source, where, "duration", 0.0, 86_400.0),
        aggregate=_choice(merged.get("aggregate", "min"), AGGREGATES, source, where, "aggregate"),
        channels=tuple(channels),
        priority=_choice(merged.get("priority", "medium"), PRIORITIES, source, where, "priority"),
        cooldown=_number(merged.get("cooldown", 60.0), source, where, "cooldown", 0.0),
        actions=tuple(_parse_action(a, source, where, i, allowed_hosts) for i, a in enumerate(actions_raw)),
        description=str(raw.get("description", "")),
    )
    return rule if enabled else None


def parse_rules(data: Any, source: str = "<memory>", allowed_hosts: Collection[str] = ()) -> RuleSet:
    """Validate a parsed rules document (``{defaults: {...}, rules: [...]}``)."""
    if data is None:
        data = {}
    if isinstance(data, list):  # the simple style: a bare list of rules
        data = {"rules": data}
    if not isinstance(data, dict):
        raise RulesError(f"{source}: the top level must be a mapping with a 'rules' list")
    unknown = set(data) - {"defaults", "rules", "classes"}
    if unknown:
        raise RulesError(f"{source}: unknown top-level key {sorted(unknown)[0]!r} (allowed: defaults, rules, classes)")
    classes = data.get("classes")
    if classes is not None and (not isinstance(classes, list) or len(classes) < 2
                                or not all(isinstance(c, str) and c for c in classes)
                                or len(set(classes)) < len(classes)):
        raise RulesError(f"{source}: 'classes' must list at least two distinct class names (the model's scores "
                         f"are restricted to them and renormalised), got {classes!r}")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise RulesError(f"{source}: 'defaults' must be a mapping")
    bad = set(defaults) - _DEFAULT_FIELDS
    if bad:
        raise RulesError(f"{source}: defaults, field {sorted(bad)[0]!r}: not allowed in defaults "
                         f"(allowed: {', '.join(sorted(_DEFAULT_FIELDS))})")
    raw_rules = data.get("rules") or []
    if not isinstance(raw_rules, list):
        raise RulesError(f"{source}: 'rules' must be a list")
    seen: set[str] = set()
    simple = sum(is_simple_style(raw) for raw in raw_rules)
    rules = [rule for i, raw in enumerate(raw_rules)
             if (rule := _parse_rule(raw, defaults, source, i, seen, allowed_hosts))]
    if simple:
        log.info("%s: %d rule%s in the simple style (emotion/threshold/duration_sec/action) converted: %s", source,
                 simple, "" if simple == 1 else "s", "; ".join(f"{r.name}: {r.describe()}" for r in rules[:simple]))
    ruleset = RuleSet(rules, source, classes=tuple(classes) if classes else None)
    if ruleset.classes:
        outside = [(r.name, e) for r in rules for e in r.emotions if e.lower() not in {c.lower() for c in classes}]
        if outside:
            raise RulesError(f"{source}: rule {outside[0][0]!r} watches {outside[0][1]!r}, which 'classes' leaves out")
    return ruleset


def load_rules(path: str | Path, classes: Sequence[str] | None = None, *, strict: bool = True,
               allowed_hosts: Collection[str] = ()) -> RuleSet:
    """Read and validate a rules file; with ``classes``, fit every emotion name to the model's
    (see :meth:`RuleSet.fit_classes` for ``strict``). Any problem is a :class:`RulesError`
    naming the file (and line, rule and field where there is one)."""
    path = Path(path)
    try:
        text = read_text(path, max_bytes=MAX_RULES_BYTES)
        data = loads_yaml(text, path)
    except TextFileError as error:
        raise RulesError(str(error)) from None
    ruleset = parse_rules(data, str(path), allowed_hosts)
    ruleset.digest = hashlib.sha256(text.encode()).hexdigest()
    if classes is not None:
        ruleset = ruleset.fit_classes(classes, strict=strict)
    return ruleset


def default_rules_path() -> Path:
    """``configs/monitor/rules.yaml`` of this checkout (the default rule: angry >= 0.75 for 2 s)."""
    from mmemo.config import config_dir

    return Path(config_dir()) / "monitor" / "rules.yaml"

"""Alert rules: the YAML format and its validation (the self-reloading file: :mod:`mmemo.monitor.rules_file`).

A rule watches one score per frame - one emotion's probability (``type: threshold``) or the
sum of several (``type: combination``) - and fires when that score meets ``threshold`` over
a window of at least ``duration`` seconds (every frame with ``aggregate: min``, the window
average with ``aggregate: mean``). A ``type: dimensions`` rule watches a model's predicted
dimensions (normalised [0, 1]) instead: ``when: "arousal >= 0.7 and valence <= 0.3"`` must hold
on every frame of the window (``min``) or for the window's mean of each dimension (``mean``).
Evaluation lives in :mod:`mmemo.monitor.engine`, actions in :mod:`mmemo.monitor.actions`; this
module only turns a file into validated :class:`Rule` objects, with errors that name the file,
the rule and the field, so a typo never silently disables an alert.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mmemo.monitor.actions import Action, parse_action
from mmemo.monitor.rule_fields import RulesError, choice, fail, number
from mmemo.textfiles import TextFileError, loads_yaml, read_text

__all__ = ["Action", "Rule", "RuleSet", "RulesError", "load_rules", "parse_rules"]

log = logging.getLogger(__name__)

#: Priority names in increasing order of urgency; stored and compared as their index.
PRIORITIES = ("low", "medium", "high", "critical")
RULE_TYPES = ("threshold", "combination", "dimensions")
#: Comparison operators of a dimensions rule's ``when``.
OPERATORS = (">=", "<=", ">", "<")
_CONDITION = re.compile(r"^\s*([A-Za-z_]\w*)\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+))\s*$")
AGGREGATES = ("min", "mean")
#: A rules file larger than this is not a rules file.
MAX_RULES_BYTES = 1 << 20

_RULE_FIELDS = {"name", "type", "emotion", "emotions", "when", "threshold", "duration", "aggregate", "channels",
                "priority", "cooldown", "actions", "enabled", "description"}
_DEFAULT_FIELDS = {"duration", "aggregate", "channels", "priority", "cooldown", "actions"}
#: The simpler rule style monitoring users already write (``emotion``, ``threshold``, ``duration_sec``,
#: ``action``), converted on load with a note in the log.
_SIMPLE_FIELDS = {"name", "emotion", "threshold", "duration_sec", "action", "url", "webhook_url", "to",
                  "cooldown_sec", "channel", "priority", "enabled"}


def _canonical(classes: Sequence[str]) -> dict[str, str]:
    """Lower-cased class name -> the model's own spelling."""
    return {c.lower(): c for c in classes}


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
    #: ``type: dimensions``: (dimension, operator, value) conditions, all of which must hold.
    conditions: tuple[tuple[str, str, float], ...] = ()

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for name, _, _ in self.conditions))

    def applies_to(self, channel: str) -> bool:
        return "*" in self.channels or channel in self.channels

    @property
    def rank(self) -> int:
        return PRIORITIES.index(self.priority)

    def key(self) -> str:
        """Identity of the condition: a reloaded rule with the same key keeps its window state."""
        text = repr((self.name, self.type, self.emotions, self.threshold, self.duration, self.aggregate,
                     self.conditions))
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def describe(self) -> str:
        window = "every frame" if self.aggregate == "min" else "window mean"
        if self.type == "dimensions":
            return f"{condition_text(self.conditions)} for >= {self.duration:g} s ({window})"
        what = self.emotions[0] if self.type == "threshold" else " + ".join(self.emotions)
        return f"{what} >= {self.threshold:g} for >= {self.duration:g} s ({window})"


def condition_text(conditions) -> str:
    return " and ".join(f"{name} {op} {value:g}" for name, op, value in conditions)


def parse_conditions(text: Any, source: str, where: str) -> tuple[tuple[str, str, float], ...]:
    """``"arousal >= 0.7 and valence <= 0.3"`` (or a list of such parts) -> conditions on [0, 1] values."""
    parts = text if isinstance(text, list) else re.split(r"\s+and\s+", text, flags=re.IGNORECASE) \
        if isinstance(text, str) and text.strip() else None
    if not parts or not all(isinstance(p, str) for p in parts):
        raise fail(source, where, "when", f"needs conditions like 'arousal >= 0.7 and valence <= 0.3', got {text!r}")
    conditions = []
    for part in parts:
        match = _CONDITION.match(part)
        if not match:
            raise fail(source, where, "when", f"{part.strip()!r} is not '<dimension> <op> <number>' "
                                               f"(op one of {', '.join(OPERATORS)}; join parts with 'and')")
        value = float(match[3])
        if not 0.0 <= value <= 1.0:
            raise fail(source, where, "when", f"{part.strip()!r}: dimensions are predicted on the normalised "
                                               "[0, 1] scale, so the value must be in [0, 1]")
        conditions.append((match[1], match[2], value))
    return tuple(conditions)


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

    def fit_classes(self, classes: Sequence[str], *, strict: bool = True, dimensions: Sequence[str] = ()) -> RuleSet:
        """The rules with emotion (and dimension) names spelled as the model's (matched case-insensitively).

        ``strict`` (a user's rules file): a name that is no class (or dimension) of the model is an
        error, with the closest names suggested. Not strict (the built-in default rules): a rule that
        does not fit this model is left out with a log line, so a default never blocks a model.
        """
        known, known_dims = _canonical(classes), _canonical(dimensions)
        fitted = []
        for index, rule in enumerate(self.rules):
            names, pool = (rule.dimensions, known_dims) if rule.type == "dimensions" else (rule.emotions, known)
            unknown = [e for e in names if e.lower() not in pool]
            if unknown:
                field_name = {"threshold": "emotion", "combination": "emotions"}.get(rule.type, "when")
                close = difflib.get_close_matches(unknown[0].lower(), list(pool), n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(repr(pool[c]) for c in close)}?" if close else ""
                what = "class" if rule.type != "dimensions" else "dimension"
                listed = ", ".join(classes if rule.type != "dimensions" else dimensions) or "none"
                problem = (f"{self.source}: rule {rule.name!r} (#{index + 1}), field {field_name!r}: "
                           f"{unknown[0]!r} is not a {what} of the model{hint} ({what}s: {listed})")
                if strict:
                    raise RulesError(problem)
                log.info("default rule %r skipped: it does not fit this model (%s)", rule.name, problem)
                continue
            fitted.append(replace(rule, emotions=tuple(known[e.lower()] for e in rule.emotions),
                                  conditions=tuple((known_dims[d.lower()], op, v) for d, op, v in rule.conditions)))
        watched = None
        if self.classes:
            unknown = [c for c in self.classes if c.lower() not in known]
            if unknown:
                raise RulesError(f"{self.source}: 'classes' lists {unknown[0]!r}, not a class of the model "
                                 f"(classes: {', '.join(classes)})")
            watched = tuple(known[c.lower()] for c in self.classes)
        return RuleSet(fitted, self.source, self.digest, watched)


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
        raise fail(source, where, "name", "duplicate rule name (names identify rules in alerts and cooldowns)")
    seen.add(name)
    unknown = set(raw) - _RULE_FIELDS
    if unknown:
        raise fail(source, where, sorted(unknown)[0], f"unknown field (allowed: {', '.join(sorted(_RULE_FIELDS))})")
    merged = {**defaults, **raw}
    kind = choice(merged.get("type"), RULE_TYPES, source, where, "type")
    conditions: tuple[tuple[str, str, float], ...] = ()
    if kind != "dimensions" and "when" in raw:
        raise fail(source, where, "when", "only a 'type: dimensions' rule takes conditions on dimensions")
    if kind == "dimensions":
        for wrong in ("emotion", "emotions", "threshold"):
            if wrong in raw:
                raise fail(source, where, wrong, "a dimensions rule states its condition in 'when' "
                                                  "(e.g. 'arousal >= 0.7 and valence <= 0.3')")
        conditions = parse_conditions(merged.get("when"), source, where)
        emotions: tuple[str, ...] = ()
    elif kind == "threshold":
        if "emotions" in raw:
            raise fail(source, where, "emotions", "a threshold rule takes one 'emotion'; use type: combination "
                                                   "for a sum of emotions")
        emotion = merged.get("emotion")
        if not isinstance(emotion, str) or not emotion:
            raise fail(source, where, "emotion", f"a threshold rule needs one emotion name, got {emotion!r}")
        emotions: tuple[str, ...] = (emotion,)
    else:
        if "emotion" in raw:
            raise fail(source, where, "emotion", "a combination rule takes a list 'emotions'")
        listed = merged.get("emotions")
        if (not isinstance(listed, list) or len(listed) < 2
                or not all(isinstance(e, str) and e for e in listed)):
            raise fail(source, where, "emotions", f"a combination needs a list of >= 2 emotion names, got {listed!r}")
        if len(set(listed)) != len(listed):
            raise fail(source, where, "emotions", f"lists an emotion twice: {listed!r}")
        emotions = tuple(listed)
    if "threshold" not in merged and kind != "dimensions":
        raise fail(source, where, "threshold", "missing (a score in [0, 1] for threshold rules)")
    threshold = 1.0 if kind == "dimensions" else number(merged["threshold"], source, where, "threshold", 0.0,
                                                          1.0 if kind == "threshold" else float(len(emotions)))
    channels = merged.get("channels", ["*"])
    if isinstance(channels, str):
        channels = [channels]
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) and c for c in channels):
        raise fail(source, where, "channels", f"must be a list of channel names or ['*'], got {channels!r}")
    actions_raw = merged.get("actions", [{"type": "log"}])
    if not isinstance(actions_raw, list) or not actions_raw:
        raise fail(source, where, "actions", f"must be a non-empty list of actions, got {actions_raw!r}")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail(source, where, "enabled", f"must be true or false, got {enabled!r}")
    rule = Rule(
        name=name, type=kind, emotions=emotions, threshold=threshold,
        duration=number(merged.get("duration", 0.0), source, where, "duration", 0.0, 86_400.0),
        aggregate=choice(merged.get("aggregate", "min"), AGGREGATES, source, where, "aggregate"),
        channels=tuple(channels),
        priority=choice(merged.get("priority", "medium"), PRIORITIES, source, where, "priority"),
        cooldown=number(merged.get("cooldown", 60.0), source, where, "cooldown", 0.0),
        actions=tuple(parse_action(a, source, where, i, allowed_hosts) for i, a in enumerate(actions_raw)),
        description=str(raw.get("description", "")), conditions=conditions,
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
               allowed_hosts: Collection[str] = (), dimensions: Sequence[str] = ()) -> RuleSet:
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
        ruleset = ruleset.fit_classes(classes, strict=strict, dimensions=dimensions)
    return ruleset


def default_rules_path() -> Path:
    """``configs/monitor/rules.yaml`` of this checkout (the default rule: angry >= 0.75 for 2 s)."""
    from mmemo.config import config_dir

    return Path(config_dir()) / "monitor" / "rules.yaml"

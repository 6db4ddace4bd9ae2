"""Checking one field of a rules file: the error type and the number/choice checks every part uses.

Shared by the rules (:mod:`mmemo.monitor.rules`) and their actions (:mod:`mmemo.monitor.actions`),
so a problem always reads ``<file>: rule 'name' (#n), field 'x': <problem>``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mmemo.errors import UserError


class RulesError(UserError, ValueError):
    """A rules file that cannot be used; the message names the file, rule and field."""


def fail(source: str, where: str, field_name: str, problem: str) -> RulesError:
    return RulesError(f"{source}: {where}, field {field_name!r}: {problem}")


def number(value: Any, source: str, where: str, name: str, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(source, where, name, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise fail(source, where, name, f"must be a finite number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise fail(source, where, name, f"must be {bounds}, got {value!r}")
    return float(value)


def choice(value: Any, choices: Sequence[str], source: str, where: str, name: str) -> str:
    if value not in choices:
        raise fail(source, where, name, f"must be one of {', '.join(choices)}; got {value!r}")
    return value

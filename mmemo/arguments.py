"""Command-line options derived from the dataclass a command fills, so each default is written once.

A field declared with :func:`option` is also a command-line option: its flag, type, choices,
default and help come from the field, and :func:`add_options` adds them all to an argparse
parser. ``mmemo monitor serve`` is :class:`~mmemo.monitor.settings.MonitorSettings`,
``mmemo predict`` is :class:`~mmemo.inference.run.PredictOptions`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field
from pathlib import Path


def finite_float(text: str) -> float:
    """argparse type: a float that is a number (``nan``, ``inf`` and ``1e999`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def optional_dbfs(text: str) -> float | None:
    """argparse type for a silence threshold: a level in dBFS, or ``none`` to turn the check off."""
    return None if text.lower() in ("none", "null", "off") else finite_float(text)


@dataclass(frozen=True)
class Option:
    """How a field appears on the command line."""

    help: str
    flag: str | None = None  # default: --field-name; a bool field defaulting to True takes --no-<name>
    choices: tuple | None = None
    parse: Callable[[str], object] | None = None  # default: from the field's type
    metavar: str | None = None
    required: bool = False


def option(default=MISSING, *, help: str, default_factory=MISSING, **how):
    """A dataclass field that is also a command-line option (see :class:`Option`)."""
    meta = {"cli": Option(help=help, **how)}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


_PARSERS: dict[type, Callable[[str], object]] = {int: int, float: finite_float, str: str, Path: Path}


def _base_type(annotation) -> tuple[type, bool]:
    """(the type a value has, whether it is a list) for ``X``, ``X | None`` and ``list[X]``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add an option for every field of ``cls`` declared with :func:`option`."""
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        how: Option | None = item.metadata.get("cli")
        if how is None:
            continue
        kind, many = _base_type(hints[item.name])
        default = item.default if item.default is not MISSING else None
        kwargs: dict = {"dest": item.name, "help": how.help}
        if kind is bool:
            flag = how.flag or (f"--no-{item.name}" if default else f"--{item.name}").replace("_", "-")
            kwargs["action"] = "store_false" if default else "store_true"
        else:
            flag = how.flag or "--" + item.name.replace("_", "-")
            kwargs |= {"type": how.parse or _PARSERS[kind], "action": "append" if many else "store",
                       "default": None if many else default, "required": how.required}
            if how.choices:
                kwargs["choices"] = list(how.choices)
            kwargs["metavar"] = how.metavar or flag.lstrip("-").replace("-", "_").upper()
            if default not in (None, MISSING) and not many and not how.required:
                kwargs["help"] = f"{how.help} (default: {default:g})" if isinstance(default, float) \
                    else f"{how.help} (default: {default})"
        parser.add_argument(flag, **kwargs)


def from_options(cls: type, args: argparse.Namespace, **given):
    """An instance of ``cls`` from parsed options (a repeatable option never given is its default)."""
    values = dict(given)
    for item in dataclasses.fields(cls):
        if "cli" in item.metadata and item.name not in values:
            value = getattr(args, item.name)
            if value is not None or item.default is None:
                values[item.name] = value
    return cls(**values)

"""A search space written in Hydra's override grammar, parsed once for every sweep engine.

The Optuna sweeper and the W&B translation read the same ``params`` mapping, so one
``configs/hparams_search/<name>.yaml`` drives both::

    model/fusion: choice(concat, gated, joint_embedding)   # categorical
    model.fusion.hidden: range(64, 257, 64)                # integers 64..256 step 64 (stop exclusive)
    model.fusion.dropout: interval(0.0, 0.5)               # uniform float
    model.optim.lr: tag(log, interval(1e-4, 3e-3))         # log-uniform float
    trainer.max_epochs: tag(int, interval(5, 20))          # uniform integer
    model/fusion=joint_embedding:                          # a conditional block: only sampled
      model.fusion.align_weight: interval(0.0, 1.0)        #   when model/fusion is joint_embedding

Conditional blocks exist because head-specific options (an alignment weight) are
rejected by the other heads; Optuna samples them define-by-run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mmemo.errors import InvalidInput


@dataclass(frozen=True)
class Param:
    """One searched override. ``kind``: choice | int | float; ``when``: (key, value) it depends on."""

    name: str
    kind: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None  # inclusive
    step: float | None = None
    log: bool = False
    when: tuple[str, str] | None = None


@dataclass(frozen=True)
class SearchSpace:
    """Searched parameters (in order) and fixed overrides passed to every job."""

    params: tuple[Param, ...]
    fixed: tuple[str, ...] = ()

    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def active(self, chosen: Mapping[str, Any]) -> list[Param]:
        """The parameters that apply given the values ``chosen`` so far (conditions are checked)."""
        return [p for p in self.params if p.when is None or format_value(chosen.get(p.when[0])) == p.when[1]]


def format_value(value: Any) -> str:
    """A value as Hydra's override grammar writes it (``True`` -> ``true``, floats without noise)."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(float(f"{value:.6g}"))
    return str(value)


def to_overrides(values: Mapping[str, Any]) -> list[str]:
    return [f"{name}={format_value(value)}" for name, value in values.items()]


def _parse_one(name: str, text: str, when: tuple[str, str] | None) -> Param | str:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    override = OverridesParser.create().parse_override(f"{name}={text}")
    if not override.is_sweep_override():
        return f"{name}={override.get_value_element_as_str()}"
    sweep = override.value()
    tags = set(getattr(sweep, "tags", ()) or ())
    unknown = tags - {"log", "int"}
    if unknown:
        raise InvalidInput(f"search space {name}: unknown tag(s) {sorted(unknown)}; use log and/or int")
    if isinstance(sweep, ChoiceSweep):
        if tags:
            raise InvalidInput(f"search space {name}: tags apply to interval/range, not choice")
        return Param(name, "choice", choices=tuple(sweep.list), when=when)
    if isinstance(sweep, RangeSweep):
        numbers = (sweep.start, sweep.stop, sweep.step)
        if sweep.step <= 0:
            raise InvalidInput(f"search space {name}: range step must be positive")
        values = []
        current = sweep.start
        while current < sweep.stop:
            values.append(current)
            current += sweep.step
        if not values:
            raise InvalidInput(f"search space {name}: range({sweep.start}, {sweep.stop}) is empty")
        kind = "int" if all(isinstance(v, int) for v in numbers) else "float"
        return Param(name, kind, low=values[0], high=values[-1], step=sweep.step, log="log" in tags, when=when)
    if isinstance(sweep, IntervalSweep):
        if sweep.start >= sweep.end:
            raise InvalidInput(f"search space {name}: interval({sweep.start}, {sweep.end}) needs start < end")
        if "log" in tags and sweep.start <= 0:
            raise InvalidInput(f"search space {name}: a log interval needs start > 0")
        if "int" in tags:
            return Param(name, "int", low=int(sweep.start), high=int(sweep.end), log="log" in tags, when=when)
        return Param(name, "float", low=float(sweep.start), high=float(sweep.end), log="log" in tags, when=when)
    raise InvalidInput(f"search space {name}: {text!r} is not choice(...), range(...) or interval(...)")


def parse_search_space(params: Mapping[str, Any] | None, extra: list[str] = ()) -> SearchSpace:
    """Parse ``params`` (plus command-line overrides ``extra``, which win) into a SearchSpace."""
    entries: list[tuple[str, str, tuple[str, str] | None]] = []
    for key, value in (params or {}).items():
        if isinstance(value, Mapping):
            condition_key, sep, condition_value = str(key).partition("=")
            if not sep:
                raise InvalidInput(f"search space: the block {key!r} must be named KEY=VALUE (its condition)")
            for name, text in value.items():
                entries.append((str(name), str(text), (condition_key.strip(), condition_value.strip())))
        else:
            entries.append((str(key), str(value), None))
    for override in extra:
        name, sep, text = override.partition("=")
        if not sep:
            raise InvalidInput(f"expected KEY=VALUE, got {override!r}")
        entries = [e for e in entries if e[0] != name] + [(name, text, None)]
    params_out, fixed = [], []
    for name, text, when in entries:
        parsed = _parse_one(name, text, when)
        if isinstance(parsed, Param):
            params_out.append(parsed)
        elif when is not None:
            raise InvalidInput(f"search space {name}: fixed values inside a conditional block are not supported")
        else:
            fixed.append(parsed)
    names = {p.name for p in params_out}
    for param in params_out:
        if param.when and param.when[0] not in names:
            raise InvalidInput(f"search space {param.name}: its condition {param.when[0]!r} is not a searched key")
    unconditional = [p for p in params_out if p.when is None]
    return SearchSpace(tuple(unconditional + [p for p in params_out if p.when is not None]), tuple(fixed))

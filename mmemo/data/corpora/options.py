"""The options of ``mmemo data prepare`` adapters: declared once, typed on the command line as strings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mmemo.errors import InvalidInput

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Option:
    """One ``prepare`` option; values may come as strings from the command line."""

    name: str
    default: Any
    choices: tuple[Any, ...] = ()
    help: str = ""
    kind: type = str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def coerce(self, value: Any) -> Any:
        if value is None:
            if self.default is None:
                return None
            raise InvalidInput(f"option {self.name!r} needs a value")
        if self.kind is bool and not isinstance(value, bool):
            text = str(value).strip().lower()
            if text not in _TRUE | _FALSE:
                raise InvalidInput(f"option {self.name!r} takes true or false, got {value!r}")
            value = text in _TRUE
        elif self.kind is int and not isinstance(value, int):
            try:
                value = int(str(value))
            except ValueError:
                raise InvalidInput(f"option {self.name!r} takes an integer, got {value!r}") from None
        elif self.kind is str:
            value = str(value)
        if self.choices and value not in self.choices:
            raise InvalidInput(f"option {self.name!r} must be one of "
                             f"{', '.join(str(c) for c in self.choices)}; got {value!r}")
        return value

    def describe(self) -> str:
        values = " | ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in self.choices)
        default = str(self.default).lower() if isinstance(self.default, bool) else self.default
        return f"{self.flag} {values or self.kind.__name__.upper()} (default {default}): {self.help}"


def resolve_options(corpus: str, declared: Sequence[Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults plus given values, checked; an unknown option names the known ones."""
    by_name = {o.name: o for o in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        known = ", ".join(sorted(by_name)) or "none"
        raise InvalidInput(f"unknown option(s) {', '.join(map(repr, unknown))} for corpus {corpus!r}; "
                         f"its options are: {known}")
    return {o.name: o.coerce(given[o.name]) if o.name in given else o.default for o in declared}

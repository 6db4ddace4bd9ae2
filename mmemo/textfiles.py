"""Reading text files that users hand to mmemo: UTF-8 with line numbers, strict JSON, strict YAML.

Every text file mmemo reads from a user (manifests, label maps, ``corpus.json``, alert
rules, model folders' small config files) goes through here, so every problem is reported
the same way, as ``file:line: problem`` (or ``file: problem``), and the same class of input
is refused everywhere:

* bytes that are not UTF-8 (a Latin-1 ``é``), with the line and column of the first bad byte;
* JSON numbers that are not finite: ``NaN``, ``Infinity`` and overflowing literals such as
  ``1e999`` (Python's ``json`` accepts all three and returns ``nan``/``inf``);
* a key repeated inside one JSON object or YAML mapping (both parsers silently keep the last).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from mmemo.errors import InvalidInput, UserError

_BOM = b"\xef\xbb\xbf"


class TextFileError(UserError, ValueError):
    """A text file that cannot be used; ``str()`` is ``file:line: problem`` (or ``file: problem``)."""

    def __init__(self, path: str | os.PathLike, problem: str, line: int | None = None):
        self.path, self.problem, self.line = str(path), problem, line
        super().__init__(f"{self.path}:{line}: {problem}" if line else f"{self.path}: {problem}")


def utf8_problem(data: bytes, error: UnicodeDecodeError) -> tuple[int, str]:
    """``(line, problem)`` for the first byte of ``data`` that is not UTF-8."""
    line = data.count(b"\n", 0, error.start) + 1
    column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
    bad = data[error.start: error.start + 1].hex()
    return line, (f"not valid UTF-8 (byte 0x{bad} at column {column}); save the file as UTF-8 "
                  f"(e.g. iconv -f latin1 -t utf-8)")


def decode_utf8(data: bytes, path: str | os.PathLike) -> str:
    """``data`` as text (a leading BOM is dropped), or :class:`TextFileError` naming the bad byte."""
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line, problem = utf8_problem(data, error)
        raise TextFileError(path, problem, line) from None


def read_text(path: str | os.PathLike, *, max_bytes: int | None = None) -> str:
    """A whole UTF-8 text file; ``max_bytes`` refuses files too large to be what they claim."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise TextFileError(path, f"is {size} bytes, more than the {max_bytes} expected for this file")
        data = path.read_bytes()
    except OSError as error:
        raise TextFileError(path, f"cannot read it ({error.strerror or error})") from None
    return decode_utf8(data, path)


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str | None, str | None]]:
    """``(line number, text, problem)`` for every line, read one at a time (bounded memory).

    A line that is not UTF-8 yields ``text=None`` and the problem, and reading goes on, so a
    caller can report every bad line of the file in one pass.
    """
    path = Path(path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            try:
                yield number, raw.decode("utf-8"), None
            except UnicodeDecodeError as error:
                _, problem = utf8_problem(raw, error)
                yield number, None, problem


# -- JSON --------------------------------------------------------------------------------------
class _StrictJSONError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _StrictJSONError(f"field {key!r} appears twice in one object (which value is meant?)")
        seen[key] = value
    return seen


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _StrictJSONError(f"number {text} is out of range (not a finite float)")
    return value


def _no_constant(name: str) -> float:
    raise _StrictJSONError(f"{name} is not a number mmemo accepts (only finite numbers)")


def loads_json(text: str) -> Any:
    """``json.loads`` that refuses NaN/Infinity, overflowing numbers and repeated keys.

    Raises ValueError: ``json.JSONDecodeError`` (with its position) for bad syntax, a plain
    ValueError with the problem otherwise.
    """
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_finite_float,
                          parse_constant=_no_constant)
    except _StrictJSONError as error:
        raise InvalidInput(str(error)) from None
    except RecursionError:
        raise InvalidInput("nested too deeply") from None


def json_problem(text: str) -> str | None:
    """What is wrong with one JSON document, or None (used for manifest lines)."""
    try:
        loads_json(text)
    except json.JSONDecodeError as error:
        return f"bad JSON ({error.msg} at column {error.colno})"
    except ValueError as error:
        return str(error)
    return None


def load_json(path: str | os.PathLike, *, max_bytes: int | None = 64 << 20) -> Any:
    """A strict JSON file; every problem as :class:`TextFileError` with its line."""
    text = read_text(path, max_bytes=max_bytes)
    try:
        return loads_json(text)
    except json.JSONDecodeError as error:
        raise TextFileError(path, f"bad JSON ({error.msg} at column {error.colno})", error.lineno) from None
    except ValueError as error:
        raise TextFileError(path, str(error)) from None


def dumps_json(data: Any, **options) -> str:
    """``json.dumps`` that refuses to write NaN or Infinity (they are not JSON)."""
    return json.dumps(data, allow_nan=False, **options)


# -- YAML --------------------------------------------------------------------------------------
class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` (no Python objects) that refuses a key repeated in one mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    mapping: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, f"unhashable key {key!r}",
                                                    key_node.start_mark) from None
        if key in mapping:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice in one mapping",
                                                    key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def loads_yaml(text: str, path: str | os.PathLike = "<string>") -> Any:
    """Parse YAML safely and strictly; problems as :class:`TextFileError` with their line."""
    loader = None
    try:
        loader = _StrictLoader(text)  # what yaml.safe_load does, with the duplicate check
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = " ".join(part for part in (error.context, error.problem) if part) or "invalid YAML"
        raise TextFileError(path, f"not valid YAML: {problem}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as error:  # e.g. a control character (ReaderError has no line mark)
        raise TextFileError(path, f"not valid YAML: {str(error).splitlines()[0]}") from None
    except RecursionError:
        raise TextFileError(path, "not valid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml(path: str | os.PathLike, *, max_bytes: int | None = 4 << 20) -> Any:
    return loads_yaml(read_text(path, max_bytes=max_bytes), path)


def is_finite_number(value: Any) -> bool:
    """A real int or float (not bool) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

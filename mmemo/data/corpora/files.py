"""Reading raw corpus files: audio files by name (any audio suffix), audio lengths (failures recorded),
undeclared encodings, entry lookup.

Corpora are often kept as converted copies (FLAC, 16 kHz, ...) under their own
file names, so an utterance's audio is found by folder and *stem*: ``x.wav``,
``x.flac`` or any other suffix of :data:`~mmemo.data.audio.AUDIO_SUFFIXES`.
When a stem has several files, the first suffix of that list wins (``.wav``,
then ``.flac``, ...) and :class:`AudioIndex` counts it for the summary's notes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from mmemo.data.audio import AUDIO_SUFFIXES
from mmemo.data.corpora.records import Failure
from mmemo.data.manifest import Utterance
from mmemo.errors import InvalidInput
from mmemo.textfiles import TextFileError, utf8_problem


def is_audio(path: str | os.PathLike) -> bool:
    """A visible file name ending in one of :data:`AUDIO_SUFFIXES` (any case); ``._x.wav`` forks are not."""
    name = os.path.basename(path)
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_SUFFIXES


def audio_stem(name: str | os.PathLike) -> str:
    """A file name without its audio suffix (``x.flac`` -> ``x``); a name without one is returned whole."""
    name = os.path.basename(name)
    base, suffix = os.path.splitext(name)
    return base if suffix.lower() in AUDIO_SUFFIXES else name


def _preference(name: str) -> tuple[int, str]:
    return AUDIO_SUFFIXES.index(os.path.splitext(name)[1].lower()), name


class AudioIndex:
    """The audio files of a corpus by folder and stem, each folder listed once.

    :meth:`files` gives one file per stem of a folder, :meth:`find` the file for
    a path named by a label file (``dir/x.wav`` finds ``dir/x.flac`` too). A stem
    with several files (``x.wav`` and ``x.flac``) gives the preferred one
    (:data:`AUDIO_SUFFIXES` order) and is counted in :attr:`duplicates`.
    """

    def __init__(self) -> None:
        self._folders: dict[Path, dict[str, list[str]]] = {}
        #: (folder, stem) -> the names found for it, preferred first; only stems with several files.
        self.duplicates: dict[tuple[Path, str], list[str]] = {}

    def _stems(self, folder: Path) -> dict[str, list[str]]:
        folder = Path(folder)
        if folder not in self._folders:
            stems: dict[str, list[str]] = {}
            try:
                entries = [e for e in os.scandir(folder) if is_audio(e.name) and e.is_file()]
            except OSError:
                entries = []
            for entry in entries:
                stems.setdefault(audio_stem(entry.name), []).append(entry.name)
            for names in stems.values():
                names.sort(key=_preference)
            self._folders[folder] = stems
        return self._folders[folder]

    def _pick(self, folder: Path, stem: str, names: list[str]) -> Path:
        if len(names) > 1:
            self.duplicates[(folder, stem)] = names
        return folder / names[0]

    def files(self, folder: str | os.PathLike) -> list[Path]:
        """One audio file per stem in ``folder`` (not below it), sorted by name; [] if it is not a folder."""
        folder = Path(folder)
        return sorted((self._pick(folder, stem, names) for stem, names in self._stems(folder).items()),
                      key=lambda p: p.name)

    def find(self, path: str | os.PathLike) -> Path | None:
        """The audio file for ``path`` (a file name with any or no suffix): same folder, same stem."""
        path = Path(path)
        names = self._stems(path.parent).get(audio_stem(path.name))
        return self._pick(path.parent, audio_stem(path.name), names) if names else None

    def note(self) -> str | None:
        """A line for the summary's notes when some stems had several audio files, else None."""
        if not self.duplicates:
            return None
        (folder, _), names = min(self.duplicates.items())
        return (f"{len(self.duplicates)} name(s) have several audio files (e.g. {folder}/{{{', '.join(names)}}}); "
                f"one is used for each, the first of {' '.join(AUDIO_SUFFIXES)}")


def _ffprobe_audio_seconds(path: Path) -> float | None:
    """The duration ffprobe finds for a file with an audio stream (MP4, M4A, WebM, ...), else None."""
    import json
    import math
    import shutil
    import subprocess

    if shutil.which("ffprobe") is None:
        return None
    try:
        result = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                                 "stream=codec_type,duration:format=duration", "-of", "json", str(path)],
                                capture_output=True, check=False, timeout=60)
        found = json.loads(result.stdout or b"{}")
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    streams = [s for s in found.get("streams") or [] if s.get("codec_type") == "audio"]
    if result.returncode != 0 or not streams:
        return None
    for value in (streams[0].get("duration"), (found.get("format") or {}).get("duration")):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(seconds) and seconds > 0:
            return seconds
    return None


def audio_length(path: Path) -> float:
    """Duration in seconds of a file libsndfile reads, else the duration ffprobe finds (raises on non-audio)."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception:  # noqa: BLE001 - libsndfile raises several types; ffmpeg may still read it
        seconds = _ffprobe_audio_seconds(path)
        if seconds is None:
            raise
        return round(seconds, 6)
    if info.frames <= 0 or info.samplerate <= 0:
        raise InvalidInput("no audio samples")
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

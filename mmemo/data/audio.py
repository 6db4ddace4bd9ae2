"""Audio loading: any common format to mono float32 at 16 kHz, with validation.

soundfile (libsndfile) reads WAV/FLAC/OGG/MP3 and can read a window of a long
file without decoding the rest; everything else (MP4, M4A, WebM, ...) goes
through the ``ffmpeg`` command. Resampling uses soxr. torchaudio is not used,
because its CPU wheels are linked against CUDA libraries on some installs.

Bad audio raises :class:`AudioError`, whose message names the key and the file.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

SAMPLE_RATE = 16_000
#: Below this peak amplitude a clip counts as silent ("all-zero").
SILENCE_PEAK = 1e-6
CROP_POLICIES = ("start", "center")


class AudioError(ValueError):
    """A clip that cannot be used; ``reason`` is a short machine-friendly summary."""

    def __init__(self, path: str | Path, reason: str, key: str | None = None):
        self.path = str(path)
        self.reason = reason
        self.key = key
        who = f"key {key!r}, " if key else ""
        super().__init__(f"bad audio ({who}file {self.path}): {reason}")


class UnusableAudioError(ValueError):
    """Several clips failed; the message lists each (key, file, reason) and what to do."""

    def __init__(self, errors: list[AudioError], hint: str = ""):
        self.errors = errors
        lines = "\n".join(f"  {error}" for error in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} unusable clip(s):\n{lines}{more}" + (f"\n{hint}" if hint else ""))


@dataclass
class Clip:
    """A decoded clip and what was done to it on the way in."""

    wave: np.ndarray  # [S] float32, mono, SAMPLE_RATE
    source_rate: int
    source_channels: int
    source_seconds: float  # duration of the (segment of the) file before cropping
    cropped: bool

    @property
    def seconds(self) -> float:
        return len(self.wave) / SAMPLE_RATE


def _crop_window(total: int, keep: int, policy: str) -> int:
    """First frame to keep when ``total`` frames must be cut down to ``keep``."""
    if policy == "start":
        return 0
    if policy == "center":
        return (total - keep) // 2
    raise ValueError(f"data.crop must be one of {CROP_POLICIES}, got {policy!r}")


def _read_soundfile(
    path: Path, start: float | None, end: float | None, max_seconds: float | None, crop: str
) -> tuple[np.ndarray, int, int, float, bool]:
    info = soundfile.info(str(path))
    rate, channels = info.samplerate, info.channels
    first = int(round((start or 0.0) * rate))
    last = info.frames if end is None else min(info.frames, int(round(end * rate)))
    if first >= last and info.frames > 0:
        raise ValueError(f"segment [{start}, {end}] s lies outside the {info.frames / rate:.2f} s file")
    total = max(0, last - first)
    cropped = False
    if max_seconds is not None and total > max_seconds * rate:
        keep = int(max_seconds * rate)
        first += _crop_window(total, keep, crop)
        last = first + keep
        cropped = True
    data, _ = soundfile.read(str(path), start=first, stop=last, dtype="float32", always_2d=True)
    return data, rate, channels, total / rate, cropped


def _read_ffmpeg(
    path: Path, start: float | None, end: float | None, max_seconds: float | None, crop: str
) -> tuple[np.ndarray, int, int, float, bool]:
    if shutil.which("ffmpeg") is None:
        raise ValueError(
            "not readable by libsndfile and ffmpeg is not installed "
            "(apt-get install ffmpeg, or convert the file to WAV/FLAC)"
        )
    window = []
    if start:
        window += ["-ss", f"{start:.6f}"]
    if end is not None:
        window += ["-t", f"{end - (start or 0.0):.6f}"]
    # ffmpeg downmixes and resamples in one pass; the full duration is not known
    # without decoding, so cropping happens after decoding here.
    command = ["ffmpeg", "-nostdin", "-v", "error", *window, "-i", str(path),
               "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "-"]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise ValueError(f"ffmpeg could not decode it ({message[-1] if message else 'no message'})")
    data = np.frombuffer(result.stdout, dtype=np.float32).reshape(-1, 1).copy()
    total = len(data)
    cropped = False
    if max_seconds is not None and total > max_seconds * SAMPLE_RATE:
        keep = int(max_seconds * SAMPLE_RATE)
        first = _crop_window(total, keep, crop)
        data = data[first: first + keep]
        cropped = True
    return data, SAMPLE_RATE, 0, total / SAMPLE_RATE, cropped


def load_audio(
    path: str | Path,
    *,
    key: str | None = None,
    start: float | None = None,
    end: float | None = None,
    max_seconds: float | None = None,
    crop: str = "start",
) -> Clip:
    """Decode ``path`` (or its ``[start, end)`` segment in seconds) to mono 16 kHz.

    Clips longer than ``max_seconds`` are cut to that length by the ``crop``
    policy (``start`` keeps the beginning, ``center`` the middle); only the kept
    window is decoded, so a several-hour recording costs no more than the window.
    Raises :class:`AudioError` for missing, empty, corrupt, non-audio, silent or
    non-finite input.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found", key)
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)", key)
    try:
        try:
            data, rate, channels, seconds, cropped = _read_soundfile(path, start, end, max_seconds, crop)
        except soundfile.LibsndfileError:
            data, rate, channels, seconds, cropped = _read_ffmpeg(path, start, end, max_seconds, crop)
    except (ValueError, RuntimeError, OSError) as error:
        reason = str(error)
        if "ffmpeg could not decode" in reason or "Invalid data" in reason:
            reason = f"corrupt or not an audio file ({reason})"
        raise AudioError(path, reason, key) from None
    if data.shape[0] == 0:
        raise AudioError(path, "no audio samples (empty stream)", key)
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(wave).all():
        raise AudioError(path, "contains NaN or infinite samples", key)
    if float(np.abs(wave).max()) < SILENCE_PEAK:
        raise AudioError(path, "all samples are zero (silent clip)", key)
    if rate != SAMPLE_RATE:
        wave = soxr.resample(wave, rate, SAMPLE_RATE, quality="HQ")
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    return Clip(wave, rate, channels or data.shape[1], seconds, cropped)

"""Audio loading: any common format to mono float32 at 16 kHz, with validation.

soundfile (libsndfile) reads WAV/FLAC/OGG/MP3 and can read a window of a long
file without decoding the rest; everything else (MP4, M4A, WebM, ...) goes
through the ``ffmpeg`` command. Resampling uses soxr. torchaudio is not used,
because its CPU wheels are linked against CUDA libraries on some installs.

Bad audio raises :class:`AudioError`, whose message names the key and the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from mmemo.errors import InvalidInput, MediaError, UserError

SAMPLE_RATE = 16_000
#: File suffixes (lower case) read as audio, everywhere: libsndfile reads WAV/FLAC/OGG/MP3/AIFF, ffmpeg the
#: rest. The order is also the preference when one name has several copies (``x.wav`` before ``x.flac``).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".mp4", ".webm", ".opus", ".aac", ".aiff", ".aif")
#: What prediction and the monitor's watch folder pick up from a folder: audio, and video containers whose
#: audio track ffmpeg decodes (a video model reads their faces too). Corpora match AUDIO_SUFFIXES only.
MEDIA_SUFFIXES = AUDIO_SUFFIXES + (".mov", ".mkv", ".avi", ".m4v")
#: A clip whose loudest sample is below this level (dBFS, full scale = 0) counts as silent:
#: -60 dBFS is a peak of 0.001, far under any recording's speech and under most noise floors.
#: ``data.silence_dbfs``, ``mmemo predict --silence-dbfs`` and ``monitor serve --silence-dbfs``
#: change it; ``null`` turns the check off.
SILENCE_DBFS = -60.0
CROP_POLICIES = ("start", "center")
#: Extra audio decoded past a limit, to tell "exactly the limit" from "longer than the limit".
_OVERRUN_SECONDS = 0.1
_PIPE_BLOCK = 1 << 16


class AudioError(MediaError):
    """An audio clip that cannot be used (:class:`~mmemo.errors.MediaError`)."""

    kind = "audio"


class UnusableAudioError(UserError, ValueError):
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
    #: Duration of the (segment of the) file before cropping. Exact when the whole segment was
    #: decoded; for a file cut at ``max_seconds`` by ffmpeg, the container's declared duration
    #: (``duration_known`` False: at least ``seconds``, length unknown) - never decoded to find out.
    source_seconds: float
    cropped: bool
    duration_known: bool = True

    @property
    def seconds(self) -> float:
        return len(self.wave) / SAMPLE_RATE


def clip_identity(path: str | Path, start: float | None, end: float | None, max_seconds: float | None,
                  crop: str) -> str:
    """Identity of a clip as decoded (file path, size, modification time, segment, cropping): equal
    identities give equal waveforms, so features cached under it are never stale."""
    stat = os.stat(path)
    text = json.dumps([os.path.abspath(path), stat.st_size, stat.st_mtime_ns, start, end, max_seconds, crop])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def silence_peak(dbfs: float | None) -> float | None:
    """The peak amplitude below which a clip is silent, for a threshold in dBFS (None: no check)."""
    if dbfs is None:
        return None
    if not math.isfinite(dbfs) or dbfs > 0:
        raise InvalidInput(f"the silence threshold must be a finite level in dBFS <= 0 (e.g. -60), got {dbfs!r}")
    return 10.0 ** (dbfs / 20.0)


def check_seconds(value: float | None, name: str, *, allow_zero: bool = False) -> float | None:
    """A duration option: None, or a finite number > 0 (>= 0 with ``allow_zero``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not allow_zero):
        raise InvalidInput(f"{name} must be a finite number of seconds {'>= 0' if allow_zero else '> 0'}, "
                         f"got {value!r}")
    return float(value)


def _crop_window(total: int, keep: int, policy: str) -> int:
    """First frame to keep when ``total`` frames must be cut down to ``keep``."""
    if policy == "start":
        return 0
    if policy == "center":
        return (total - keep) // 2
    raise InvalidInput(f"data.crop must be one of {CROP_POLICIES}, got {policy!r}")


def _read_soundfile(
    path: Path, start: float | None, end: float | None, max_seconds: float | None, crop: str
) -> tuple[np.ndarray, int, int, float, bool]:
    """libsndfile knows the length from the header and seeks: only the kept window is read."""
    info = soundfile.info(str(path))
    rate, channels = info.samplerate, info.channels
    if rate <= 0:
        raise InvalidInput(f"the header declares a sample rate of {rate} Hz")
    first = int(round((start or 0.0) * rate))
    last = info.frames if end is None else min(info.frames, int(round(end * rate)))
    if first >= last and info.frames > 0:
        raise InvalidInput(f"segment [{start}, {end}] s lies outside the {info.frames / rate:.2f} s file")
    total = max(0, last - first)
    cropped = False
    if max_seconds is not None and total > max_seconds * rate:
        keep = int(max_seconds * rate)
        first += _crop_window(total, keep, crop)
        last = first + keep
        cropped = True
    data, _ = soundfile.read(str(path), start=first, stop=last, dtype="float32", always_2d=True)
    return data, rate, channels, total / rate, cropped


def _need_ffmpeg() -> None:
    if shutil.which("ffmpeg") is None:
        raise InvalidInput(
            "not readable by libsndfile and ffmpeg is not installed "
            "(apt-get install ffmpeg, or convert the file to WAV/FLAC)"
        )


def probe_seconds(path: Path) -> float | None:
    """The duration a container declares (ffprobe reads headers, decodes nothing), or None."""
    if shutil.which("ffprobe") is None:
        return None
    result = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                             "format=duration:stream=duration", "-of", "default=noprint_wrappers=1:nokey=1",
                             str(path)], capture_output=True, check=False, timeout=60)
    for line in result.stdout.decode(errors="replace").split():
        try:
            value = float(line)
        except ValueError:
            continue
        if math.isfinite(value) and value > 0:
            return value
    return None


def _ffmpeg_pcm(path: Path, offset: float, seconds: float | None, limit_samples: int | None) -> np.ndarray:
    """Mono 16 kHz float32 from ``offset`` for ``seconds`` (None: to the end), never more than
    ``limit_samples``: ffmpeg stops itself (``-t``), and the pipe is read in blocks and closed
    at the limit, so memory stays bounded whatever the file claims or holds."""
    window = ["-ss", f"{offset:.6f}"] if offset > 0 else []
    duration = ["-t", f"{seconds:.6f}"] if seconds is not None else []
    command = ["ffmpeg", "-nostdin", "-v", "error", *window, "-i", str(path), "-map", "0:a:0", "-vn", "-sn",
               "-dn", "-ac", "1", "-ar", str(SAMPLE_RATE), *duration, "-f", "f32le", "-"]
    limit_bytes = None if limit_samples is None else 4 * limit_samples
    buffer, size, enough = bytearray(), 0, False
    with tempfile.TemporaryFile() as errors, subprocess.Popen(command, stdout=subprocess.PIPE,
                                                              stderr=errors) as process:
        assert process.stdout is not None
        while not enough:
            want = _PIPE_BLOCK if limit_bytes is None else min(_PIPE_BLOCK, limit_bytes - size)
            block = process.stdout.read(want)
            if not block:
                break
            buffer += block
            size += len(block)
            enough = limit_bytes is not None and size >= limit_bytes
        if enough:
            process.kill()  # all that will be used: do not decode the rest
        process.stdout.close()
        code = process.wait()
        errors.seek(0)
        message = errors.read(4096).decode(errors="replace").strip().splitlines()
    if code != 0 and not enough:
        raise InvalidInput(f"ffmpeg could not decode it ({message[-1] if message else 'no message'})")
    del buffer[len(buffer) - len(buffer) % 4:]
    return np.frombuffer(buffer, dtype=np.float32).reshape(-1, 1)


def _count_samples(path: Path, offset: float, seconds: float | None) -> int:
    """Decode to count (nothing kept): the length when no container declares it."""
    window = ["-ss", f"{offset:.6f}"] if offset > 0 else []
    duration = ["-t", f"{seconds:.6f}"] if seconds is not None else []
    command = ["ffmpeg", "-nostdin", "-v", "error", *window, "-i", str(path), "-map", "0:a:0", "-vn", "-ac", "1",
               "-ar", str(SAMPLE_RATE), *duration, "-f", "f32le", "-"]
    total = 0
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as process:
        assert process.stdout is not None
        while block := process.stdout.read(_PIPE_BLOCK):
            total += len(block)
    return total // 4


def _read_ffmpeg(
    path: Path, start: float | None, end: float | None, max_seconds: float | None, crop: str
) -> tuple[np.ndarray, int, int, float, bool, bool]:
    """Everything libsndfile cannot read (AAC, M4A, MP4, WebM, ...), decoded only as far as used."""
    _need_ffmpeg()
    offset = start or 0.0
    segment = None if end is None else end - offset
    if max_seconds is None or (segment is not None and segment <= max_seconds):
        data = _ffmpeg_pcm(path, offset, segment, None)
        return data, SAMPLE_RATE, 0, len(data) / SAMPLE_RATE, False, True
    keep = int(max_seconds * SAMPLE_RATE)
    if crop == "center":  # the middle needs the length: declared, else counted (bounded memory)
        declared = probe_seconds(path)
        total = (int(max(0.0, declared - offset) * SAMPLE_RATE) if declared is not None
                 else _count_samples(path, offset, segment))
        if segment is not None:
            total = min(total, int(segment * SAMPLE_RATE))
        if total <= keep:
            data = _ffmpeg_pcm(path, offset, segment, keep)
            return data, SAMPLE_RATE, 0, len(data) / SAMPLE_RATE, False, True
        first = _crop_window(total, keep, crop)
        data = _ffmpeg_pcm(path, offset + first / SAMPLE_RATE, max_seconds, keep)
        return data, SAMPLE_RATE, 0, total / SAMPLE_RATE, True, declared is None
    _crop_window(1, 1, crop)  # refuses an unknown policy
    overrun = int(_OVERRUN_SECONDS * SAMPLE_RATE)
    data = _ffmpeg_pcm(path, offset, max_seconds + _OVERRUN_SECONDS, keep + overrun)
    if len(data) <= keep:
        return data, SAMPLE_RATE, 0, len(data) / SAMPLE_RATE, False, True
    declared = probe_seconds(path)
    seconds = max(declared - offset, max_seconds) if declared is not None else len(data) / SAMPLE_RATE
    if segment is not None:
        seconds = min(seconds, segment)
    return data[:keep], SAMPLE_RATE, 0, seconds, True, False


def load_audio(
    path: str | Path,
    *,
    key: str | None = None,
    start: float | None = None,
    end: float | None = None,
    max_seconds: float | None = None,
    crop: str = "start",
    silence_dbfs: float | None = SILENCE_DBFS,
) -> Clip:
    """Decode ``path`` (or its ``[start, end)`` segment in seconds) to mono 16 kHz.

    Clips longer than ``max_seconds`` are cut to that length by the ``crop``
    policy (``start`` keeps the beginning, ``center`` the middle); only the kept
    window is decoded, whatever the codec, so a several-hour recording costs no
    more memory than the window. Raises :class:`AudioError` for missing, empty,
    corrupt, non-audio, silent (peak below ``silence_dbfs``) or non-finite input.
    """
    path = Path(path)
    for name, value in (("start", start), ("end", end)):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise AudioError(path, f"'{name}' must be a finite, non-negative number of seconds, got {value!r}", key)
    if start is not None and end is not None and end <= start:
        raise AudioError(path, f"'end' ({end}) must be after 'start' ({start})", key)
    try:
        check_seconds(max_seconds, "max_seconds")
        peak = silence_peak(silence_dbfs)
    except ValueError as error:
        raise AudioError(path, str(error), key) from None
    if not path.is_file():
        raise AudioError(path, "file not found", key)
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)", key)
    known = True
    try:
        try:
            data, rate, channels, seconds, cropped = _read_soundfile(path, start, end, max_seconds, crop)
        except soundfile.LibsndfileError:
            data, rate, channels, seconds, cropped, known = _read_ffmpeg(path, start, end, max_seconds, crop)
    except (ValueError, RuntimeError, OSError, subprocess.SubprocessError) as error:
        reason = str(error)
        if "ffmpeg could not decode" in reason or "Invalid data" in reason:
            reason = f"corrupt or not an audio file ({reason})"
        raise AudioError(path, reason, key) from None
    if data.shape[0] == 0:
        raise AudioError(path, "no audio samples (empty stream)", key)
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(wave).all():
        raise AudioError(path, "contains NaN or infinite samples", key)
    loudest = float(np.abs(wave).max())
    if peak is not None and loudest < peak:
        level = "all samples are zero" if loudest == 0 else f"peak {20 * math.log10(loudest):.1f} dBFS"
        raise AudioError(path, f"silent clip ({level}, below the {silence_dbfs:g} dBFS silence threshold)", key)
    if rate != SAMPLE_RATE:
        wave = soxr.resample(wave, rate, SAMPLE_RATE, quality="HQ")
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    return Clip(wave, rate, channels or data.shape[1], seconds, cropped, known)


def iter_audio_blocks(path: str | Path, *, block_seconds: float = 30.0, start: float | None = None,
                      end: float | None = None, key: str | None = None) -> Iterator[np.ndarray]:
    """A whole file (or segment) as consecutive mono 16 kHz float32 blocks, for audio of any length.

    Memory holds one block at a time, so a frame timeline of a five-hour call needs no more
    than a 30-second clip. Raises :class:`AudioError` on the first problem.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise AudioError(path, "file not found" if not path.is_file() else "empty file (0 bytes)", key)
    block = max(1, int(block_seconds * SAMPLE_RATE))
    try:
        info = soundfile.info(str(path))
    except soundfile.LibsndfileError:
        info = None
    try:
        if info is not None:
            rate = info.samplerate
            first = int(round((start or 0.0) * rate))
            last = info.frames if end is None else min(info.frames, int(round(end * rate)))
            resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32") if rate != SAMPLE_RATE else None
            source_block = max(1, int(block_seconds * rate))
            for data in soundfile.blocks(str(path), blocksize=source_block, start=first, stop=last,
                                         dtype="float32", always_2d=True):
                wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
                if resampler is not None:
                    wave = resampler.resample_chunk(np.ascontiguousarray(wave), last=False)
                if len(wave):
                    yield _finite(np.ascontiguousarray(wave, dtype=np.float32), path, key)
            if resampler is not None:
                tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
                if len(tail):
                    yield _finite(tail.astype(np.float32), path, key)
            return
        _need_ffmpeg()
        offset = start or 0.0
        window = ["-ss", f"{offset:.6f}"] if offset > 0 else []
        duration = ["-t", f"{end - offset:.6f}"] if end is not None else []
        command = ["ffmpeg", "-nostdin", "-v", "error", *window, "-i", str(path), "-map", "0:a:0", "-vn",
                   "-ac", "1", "-ar", str(SAMPLE_RATE), *duration, "-f", "f32le", "-"]
        with tempfile.TemporaryFile() as errors, subprocess.Popen(command, stdout=subprocess.PIPE,
                                                                  stderr=errors) as process:
            assert process.stdout is not None
            pending = b""
            while data := process.stdout.read(4 * block - len(pending)):
                pending += data
                if len(pending) >= 4 * block:
                    yield _finite(np.frombuffer(pending, dtype=np.float32).copy(), path, key)
                    pending = b""
            if len(pending) >= 4:
                yield _finite(np.frombuffer(pending[: len(pending) - len(pending) % 4], np.float32).copy(), path, key)
            code = process.wait()
            errors.seek(0)
            message = errors.read(4096).decode(errors="replace").strip().splitlines()
        if code != 0:
            raise InvalidInput(f"ffmpeg could not decode it ({message[-1] if message else 'no message'})")
    except (ValueError, RuntimeError, OSError, subprocess.SubprocessError) as error:
        if isinstance(error, AudioError):
            raise
        raise AudioError(path, f"corrupt or not an audio file ({error})", key) from None


def _finite(wave: np.ndarray, path: Path, key: str | None) -> np.ndarray:
    if not np.isfinite(wave).all():
        raise AudioError(path, "contains NaN or infinite samples", key)
    return wave

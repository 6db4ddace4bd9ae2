"""Decoding video to RGB frames at a fixed sampling rate, only as far as used.

PyAV (FFmpeg's libraries, pinned in requirements) is the decoder: it reads every container and
codec FFmpeg does, seeks by timestamp, and hands frames over one at a time, so memory holds
only the sampled frames, each scaled down to ``max_side`` pixels. Decoding stops at the clip's
end or at ``max_seconds``, whatever the file's length; an hours-long upload costs what its first
``max_seconds`` cost. torchcodec was the other candidate: its 0.12 wheel is the one that does not
pull CUDA here, and it decodes whole streams into tensors, which is what this module avoids
(docs/decisions.md, "Video decoding").

Every failure is a :class:`VideoError` naming the file: not a video, no video stream, no
decodable frame in the window, an unknown codec, a corrupt stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmemo.errors import MediaError, MissingDependency

#: Frames kept per second of video unless a config says otherwise.
DEFAULT_FPS = 5.0
#: Longest side of a decoded frame (pixels): enough for face detection, bounded memory for 4K input.
DEFAULT_MAX_SIDE = 480


class VideoError(MediaError):
    """A video that cannot be used (:class:`~mmemo.errors.MediaError`, like bad audio)."""

    kind = "video"


@dataclass
class VideoClip:
    """Sampled frames of one clip: ``frames`` [T,H,W,3] uint8 RGB at ``times`` [T] seconds from the clip start."""

    frames: np.ndarray
    times: np.ndarray
    fps: float
    source_fps: float
    truncated: bool = False  # the clip went on past max_seconds


def _av():
    try:
        import av
    except ImportError as error:  # pragma: no cover - pinned in requirements
        raise MissingDependency("video needs PyAV: pip install av (pinned in requirements/base.txt)") from error
    return av


def _scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    # even sizes: some pixel formats need them
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def _moving_streams(container) -> list:
    """The container's video streams that are moving pictures: cover art in an .mp3 or .m4a is a
    one-picture "video" stream (disposition ``attached_pic``) and no face track."""
    cover = _av().stream.Disposition.attached_pic
    return [s for s in container.streams.video if s.codec_context is not None and not s.disposition & cover]


def read_video(path: str | Path, *, start: float | None = None, end: float | None = None, fps: float = DEFAULT_FPS,
               max_seconds: float | None = None, max_side: int = DEFAULT_MAX_SIDE, key: str | None = None) -> VideoClip:
    """Frames of ``path`` between ``start`` and ``end`` seconds, one per ``1/fps`` seconds.

    A frame is kept when its presentation time reaches the next sampling instant, so the
    sampled times do not depend on the source frame rate. ``max_seconds`` bounds the decoded
    span (``truncated`` says it was reached); zero frames in the window is an error.
    """
    path = Path(path)
    if not (fps > 0 and math.isfinite(fps)):
        raise VideoError(path, f"fps must be a positive finite number, got {fps}", key)
    offset = float(start or 0.0)
    stop = float(end) if end is not None else math.inf
    if max_seconds is not None:
        stop = min(stop, offset + float(max_seconds))
    if not path.is_file():
        raise VideoError(path, "no such file", key)
    av = _av()
    try:
        container = av.open(str(path), mode="r", timeout=30.0)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoError(path, f"not a readable media file ({type(error).__name__}: {error})", key) from None
    with container:
        streams = _moving_streams(container)
        if not streams:
            raise VideoError(path, "no video stream (an audio-only file, or one with only cover art?)", key)
        stream = streams[0]
        stream.thread_type = "AUTO"
        source_fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        if offset > 0 and stream.time_base is not None:
            try:
                container.seek(int(offset / stream.time_base), stream=stream, backward=True, any_frame=False)
            except av.error.FFmpegError:
                pass  # unseekable stream: decode from the start and skip
        frames, times = [], []
        truncated = False
        next_time = offset
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                t = float(frame.time)
                if t < offset - 1e-6:
                    continue
                if t >= stop:
                    truncated = max_seconds is not None and (end is None or t < float(end))
                    break
                if t + 1e-6 < next_time:
                    continue
                width, height = _scaled_size(frame.width, frame.height, max_side)
                frames.append(frame.to_ndarray(format="rgb24", width=width, height=height))
                times.append(t - offset)
                # the next instant after t (a long gap in the source skips instants, not frames)
                next_time = offset + (math.floor((t - offset) * fps + 1e-6) + 1) / fps
        except av.error.FFmpegError as error:
            if not frames:
                raise VideoError(path, f"corrupt or undecodable video stream ({error})", key) from None
            # a stream corrupt after some frames: keep what decoded (as players do), say so upstream
        if not frames:
            raise VideoError(path, "no decodable video frame in the requested window", key)
    return VideoClip(np.stack(frames), np.asarray(times, dtype=np.float32), fps, source_fps, truncated)


def video_seconds(path: str | Path) -> float | None:
    """The video stream's duration from the container header (None when the header does not say)."""
    av = _av()
    try:
        with av.open(str(path), mode="r", timeout=30.0) as container:
            streams = _moving_streams(container)
            if not streams:
                return None
            stream = streams[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / 1_000_000
    except (av.error.FFmpegError, OSError):
        return None
    return None


def has_video(path: str | Path) -> bool:
    """Whether ``path`` is a media file with a moving video stream (False for audio files, audio with
    cover art, and unreadable files)."""
    av = _av()
    try:
        with av.open(str(path), mode="r", timeout=30.0) as container:
            return bool(_moving_streams(container))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return False

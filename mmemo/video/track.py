"""A video file (or a window of it) to a face track: the one entry point the data side uses.

``VideoOptions`` are the data config's ``video`` group; they decide the track, so they are part
of the track's identity (:func:`track_identity`) and of every cache key derived from it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from mmemo.bounded import BoundedCache
from mmemo.errors import InvalidInput
from mmemo.video.decode import DEFAULT_FPS, DEFAULT_MAX_SIDE, read_video
from mmemo.video.faces import MESH_POINTS, FaceAligner, FaceTrack

#: Longest span of video decoded for one clip unless the data config says otherwise (seconds).
DEFAULT_MAX_VIDEO_SECONDS = 30.0


@dataclass(frozen=True)
class VideoOptions:
    """How video becomes a face track (``data.video``): sampling rate, crop size, detector, bounds."""

    fps: float = DEFAULT_FPS
    face_size: int = 112
    detector: str = "mediapipe"
    min_confidence: float = 0.5
    max_side: int = DEFAULT_MAX_SIDE
    max_seconds: float = DEFAULT_MAX_VIDEO_SECONDS

    def __post_init__(self):
        for name in ("fps", "max_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InvalidInput(f"video.{name} must be a positive finite number, got {value!r}")
        if not 32 <= int(self.max_side) <= 4096:
            raise InvalidInput(f"video.max_side must be between 32 and 4096 pixels, got {self.max_side}")
        FaceAligner(self.detector, self.face_size, self.min_confidence)  # validates the rest

    @classmethod
    def from_config(cls, options: dict | None) -> VideoOptions:
        options = dict(options or {})
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            known = sorted(cls.__dataclass_fields__)
            raise InvalidInput(f"unknown data.video option(s) {sorted(unknown)}; known: {known}")
        return cls(**options)


_ALIGNERS: BoundedCache[FaceAligner] = BoundedCache(4)


def aligner_for(options: VideoOptions) -> FaceAligner:
    """One aligner per option set and process (loading the face mesh graph takes ~0.1 s)."""
    key = (options.detector, options.face_size, options.min_confidence)
    aligner = _ALIGNERS.get(key)
    return aligner if aligner is not None else _ALIGNERS.put(key, FaceAligner(*key))


def face_track(path: str | Path, options: VideoOptions, *, start: float | None = None, end: float | None = None,
               key: str | None = None) -> FaceTrack:
    """Decode ``path`` between ``start`` and ``end`` (at most ``options.max_seconds``) and align its faces."""
    clip = read_video(path, start=start, end=end, fps=options.fps, max_seconds=options.max_seconds,
                      max_side=options.max_side, key=key)
    return aligner_for(options).track(clip.frames, clip.times, clip.fps)


def empty_track(options: VideoOptions) -> FaceTrack:
    """The track of a clip with no video: one masked step."""
    import numpy as np

    size = options.face_size
    return FaceTrack(np.zeros((1, size, size, 3), np.uint8), np.zeros(1, bool),
                     np.zeros((1, MESH_POINTS, 3), np.float32), np.zeros(1, np.float32), options.fps)


def track_identity(path: str | Path, start: float | None, end: float | None, options: VideoOptions) -> str:
    """What determines a clip's face track: the file (path, size, mtime), the window and the options."""
    path = Path(path)
    stat = path.stat()
    described = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                 "start": start, "end": end, "options": asdict(options)}
    return "video:" + hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:24]

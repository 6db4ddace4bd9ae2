"""A video file (or a window of it) to a face track: the one entry point the data side uses.

``VideoOptions`` are the data config's ``video`` group; they decide the track, so they are part
of the track's identity (:func:`track_identity`) and of every cache key derived from it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

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
    #: Where face tracks are kept once made (None: made again on every read). Not part of a
    #: track's identity: it says where a track is stored, not what it is.
    cache_dir: str | None = None

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
    """Decode ``path`` between ``start`` and ``end`` (at most ``options.max_seconds``) and align its faces.

    With ``options.cache_dir`` a track is made once and read back afterwards (``<identity>.npz``,
    written to a temporary name and renamed, read without pickle): a video encoder that trains
    reads every clip each epoch, and face detection is most of a track's cost.
    """
    stored = Path(options.cache_dir) / f"{track_identity(path, start, end, options)[6:]}.npz" \
        if options.cache_dir else None
    if stored is not None and stored.is_file():
        try:
            with np.load(stored, allow_pickle=False) as data:
                return FaceTrack(data["crops"], data["mask"], data["landmarks"], data["times"], options.fps)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file: make the track again
    clip = read_video(path, start=start, end=end, fps=options.fps, max_seconds=options.max_seconds,
                      max_side=options.max_side, key=key)
    track = aligner_for(options).track(clip.frames, clip.times, clip.fps)
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        partial = stored.with_name(f"{stored.stem}.{os.getpid()}.partial.npz")
        np.savez(partial, crops=track.crops, mask=track.mask, landmarks=track.landmarks, times=track.times)
        os.replace(partial, stored)
    return track


def empty_track(options: VideoOptions) -> FaceTrack:
    """The track of a clip with no video: one masked step."""
    size = options.face_size
    return FaceTrack(np.zeros((1, size, size, 3), np.uint8), np.zeros(1, bool),
                     np.zeros((1, MESH_POINTS, 3), np.float32), np.zeros(1, np.float32), options.fps)


def track_identity(path: str | Path, start: float | None, end: float | None, options: VideoOptions) -> str:
    """What determines a clip's face track: the file (path, size, mtime), the window and the options."""
    path = Path(path)
    stat = path.stat()
    made = {k: v for k, v in asdict(options).items() if k != "cache_dir"}
    described = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                 "start": start, "end": end, "options": made}
    return "video:" + hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:24]

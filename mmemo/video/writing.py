"""Writing a video file (frames, and optionally a mono audio track) with PyAV.

The demo corpus's face track, the benchmarks' long files and the tests' clips are all written
here. Frames may come from a generator, so a long file is never held in memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: int, *, codec: str = "mpeg4",
                bit_rate: int | None = None, audio: np.ndarray | None = None, sample_rate: int = 16_000) -> Path:
    """Write [H,W,3] uint8 RGB frames at ``fps`` (and ``audio``, float mono in [-1, 1], as AAC) to ``path``."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = iter(frames)
    first = next(frames)
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps)
        video.height, video.width = first.shape[:2]
        video.pix_fmt = "yuv420p"
        if bit_rate:
            video.bit_rate = bit_rate
        sound = container.add_stream("aac", rate=sample_rate) if audio is not None else None
        for image in itertools.chain([first], frames):
            for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            samples = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = sample_rate
            for packet in [*sound.encode(frame), *sound.encode()]:
                container.mux(packet)
    return path

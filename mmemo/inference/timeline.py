"""Frame timelines: frame timestamps, windows of frames, and merged label segments.

A frame's score is the classifier head applied to a *window* of the clip's encoder
frames centred on it (``smooth`` frames; 1 = the frame alone). Windows are cut at the
clip's edges, so the first and last frames see shorter windows. Because every head
pools (or attends over) the frames it is given, a window covering the whole clip gives
exactly the utterance score: frame and utterance output are one computation at two
window sizes. For heads that are linear after mean pooling (emotion2vec+'s ``proj``,
mmemo's ``linear``), the utterance logits also equal the mean of the per-frame logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mmemo.errors import InvalidInput


@dataclass
class Segment:
    """A run of consecutive frames with the same top label; ``score`` is that label's mean probability."""

    start: float
    end: float
    label: str
    score: float

    def __str__(self) -> str:
        return f"{self.start:.1f}–{self.end:.1f} s {self.label} ({self.score:.2f})"

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "label": self.label,
                "score": round(self.score, 5)}


@dataclass
class Timeline:
    """times: [T] seconds (frame centres); scores: [T,C] probabilities over ``classes``; logits: [T,C];
    ``values``: [T,D] of ``dimensions`` (normalised [0, 1]) for a model that predicts dimensions."""

    times: np.ndarray
    scores: np.ndarray
    segments: list[Segment] = field(default_factory=list)
    logits: np.ndarray | None = None
    classes: list[str] = field(default_factory=list)
    frame_rate: float | None = None
    smooth: int = 1
    values: np.ndarray | None = None
    dimensions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = {"frame_rate": self.frame_rate, "smooth": self.smooth, "classes": list(self.classes),
               "times": [round(float(t), 4) for t in self.times],
               "scores": np.round(self.scores.astype(np.float64), 5).tolist(),
               "segments": [segment.to_dict() for segment in self.segments]}
        if self.values is not None and self.dimensions:
            out["dimensions"] = {name: np.round(self.values[:, d].astype(np.float64), 5).tolist()
                                 for d, name in enumerate(self.dimensions)}
        return out


def frame_times(count: int, frame_rate: float, first: int = 0) -> np.ndarray:
    """Centres in seconds of frames ``first .. first+count-1`` at ``frame_rate`` Hz: ``(i + 0.5) / rate``."""
    return (np.arange(first, first + count, dtype=np.float64) + 0.5) / frame_rate


def window_bounds(count: int, smooth: int) -> tuple[np.ndarray, np.ndarray]:
    """[start, stop) frame indices of the ``smooth``-frame window centred on each of ``count`` frames.

    The window holds ``(smooth - 1) // 2`` frames before the centre and ``smooth // 2``
    after it, cut at the clip's edges.
    """
    if smooth < 1:
        raise InvalidInput(f"smooth must be a window of at least 1 frame, got {smooth}")
    index = np.arange(count)
    return np.maximum(index - (smooth - 1) // 2, 0), np.minimum(index + smooth // 2 + 1, count)


def window_means(frames: torch.Tensor, smooth: int) -> torch.Tensor:
    """Mean of each frame's window: frames [T,D] -> [T,D] (a moving average, cut at the edges).

    Computed from float64 cumulative sums, so long clips lose no precision.
    """
    if smooth == 1:
        return frames
    starts, stops = window_bounds(frames.shape[0], smooth)
    cumulative = torch.cat([frames.new_zeros(1, frames.shape[1], dtype=torch.float64),
                            frames.double().cumsum(0)])
    starts_t, stops_t = torch.from_numpy(starts).to(frames.device), torch.from_numpy(stops).to(frames.device)
    sums = cumulative[stops_t] - cumulative[starts_t]
    return (sums / (stops_t - starts_t).to(torch.float64)[:, None]).to(frames.dtype)


def window_moments(frames: torch.Tensor, smooth: int) -> torch.Tensor:
    """Each frame's window as the moments a pooling head reads: [T,D] -> [T,2,D] (mean, mean of squares)."""
    return torch.stack([window_means(frames, smooth), window_means(frames.float() ** 2, smooth).to(frames.dtype)], 1)


def window_sequences(frames: torch.Tensor, smooth: int, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows of frames ``rows`` as padded sequences: [R,smooth,D] and a mask [R,smooth].

    For heads that look at individual frames (attention pooling, cross-attention); the
    padding is masked, so each window is encoded as the head would see it alone.
    """
    count = frames.shape[0]
    starts, stops = window_bounds(count, smooth)
    starts, stops = starts[rows], stops[rows]
    index = torch.from_numpy(starts)[:, None] + torch.arange(smooth)[None, :]
    mask = index < torch.from_numpy(stops)[:, None]
    gathered = frames[index.clamp(max=count - 1).to(frames.device)]
    return gathered * mask.to(frames.device, frames.dtype)[..., None], mask.to(frames.device)


def merge_segments(times: np.ndarray, scores: np.ndarray, classes: list[str], frame_rate: float,
                   duration: float | None = None) -> list[Segment]:
    """Consecutive frames with the same top label as one segment, ``0.0–1.2 s neutral (0.90)``.

    A frame spans half a frame period either side of its centre; the first segment
    starts at 0 and the last ends at ``duration`` when it is given.
    """
    if len(times) == 0:
        return []
    top = scores.argmax(1)
    half = 0.5 / frame_rate
    changes = np.flatnonzero(np.diff(top)) + 1
    bounds = np.concatenate([[0], changes, [len(top)]])
    segments = []
    for begin, end in zip(bounds[:-1], bounds[1:]):
        label = int(top[begin])
        start = 0.0 if begin == 0 else float(times[begin] - half)
        stop = float(times[end - 1] + half)
        if end == len(top) and duration is not None:
            stop = float(duration)
        segments.append(Segment(round(start, 4), round(stop, 4), classes[label],
                                float(scores[begin:end, label].mean())))
    return segments


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax that tolerates ``-inf`` logits (labels a model never predicts)."""
    shifted = logits - logits.max(-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(-1, keepdims=True)

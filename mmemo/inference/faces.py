"""Video at prediction time: the face track of an input, its encoding, and the face timeline.

A model with a video branch reads, for each input, its face track: the manifest line's
``video`` (in its own window, ``video_start``/``video_end``, else ``start``/``end``), or the
input file itself when it has a video stream (an ``.mp4`` with its audio). An input without
video is scored with the video missing, as in training. The track is made with the options the
model was trained with (the checkpoint's ``data.video``), so a clip is seen as in training.

The face timeline scores each face frame's window (``smooth`` frames) with the head alone, the
other modalities missing: the face's own reading over time, next to the speech timeline.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from mmemo.encoders.base import EncoderOutput
from mmemo.inference.timeline import Timeline, merge_segments, softmax
from mmemo.video.decode import has_video
from mmemo.video.faces import FaceTrack
from mmemo.video.track import VideoOptions, empty_track, face_track


def trained_video_options(classifier) -> VideoOptions:
    """The ``data.video`` options a checkpoint was trained with (defaults where it says nothing); the
    training machine's face-track cache folder is not used here."""
    data = (getattr(classifier, "run_config", None) or {}).get("data") or {}
    return replace(VideoOptions.from_config(data.get("video")), cache_dir=None)


def input_track(item, options: VideoOptions) -> FaceTrack | None:
    """The face track of a prediction input (an :class:`~mmemo.inference.inputs.InputItem`), or None."""
    if item.video is not None:
        path, start, end = item.video, item.video_start, item.video_end
        if start is None and end is None:
            start, end = item.start, item.end
    elif item.path is not None and has_video(item.path):
        path, start, end = item.path, item.start, item.end
    else:
        return None
    return face_track(Path(path), options, start=start, end=end, key=None if item.audio_id == str(path) else
                      item.audio_id)


def encode_tracks(encoder, tracks: list[FaceTrack | None], options: VideoOptions,
                  device: torch.device) -> EncoderOutput:
    """The video encoder's output for a batch of tracks (None = no video: a masked step)."""
    from mmemo.data.datasets import pad_first_axis

    filled = [t if t is not None else empty_track(options) for t in tracks]
    faces, _ = pad_first_axis([t.crops for t in filled])
    mask, _ = pad_first_axis([t.mask for t in filled])
    landmarks, _ = pad_first_axis([t.landmarks for t in filled])
    return encoder(faces.to(device), mask.to(device), landmarks.to(device))


def face_timeline(model, video: EncoderOutput, row: int, smooth: int, classes: list[str],
                  frame_rate: float) -> Timeline | None:
    """Scores [T,C] of each face frame's window of clip ``row`` by the head on the face alone."""
    valid = video.mask[row]
    if not bool(valid.any()):
        return None
    steps = int(valid.nonzero().max()) + 1
    frames, mask = video.frames[row, :steps], valid[:steps]
    half = smooth // 2
    windows, window_mask = [], []
    for t in range(steps):  # a window of frames centred on t (masked frames stay masked)
        low, high = max(0, t - half), min(steps, t - half + smooth)
        windows.append(frames[low:high])
        window_mask.append(mask[low:high] & mask[t])
    width = max(w.shape[0] for w in windows)
    padded = torch.zeros(steps, width, frames.shape[-1], dtype=frames.dtype, device=frames.device)
    padded_mask = torch.zeros(steps, width, dtype=torch.bool, device=frames.device)
    for t, (w, m) in enumerate(zip(windows, window_mask)):
        padded[t, : w.shape[0]], padded_mask[t, : m.shape[0]] = w, m
    keep = padded_mask.any(1)
    logits = np.full((steps, len(classes)), np.nan, np.float32)
    if bool(keep.any()):
        scored = model.logits({"video": EncoderOutput(padded[keep], padded_mask[keep])}).float().cpu().numpy()
        logits[keep.cpu().numpy()] = scored[:, : len(classes)]   # class logits (dimensions follow them)
    times = (np.arange(steps) + 0.5) / frame_rate
    present = ~np.isnan(logits).any(1)
    times, logits = times[present], logits[present]  # frames without a face have no face reading
    scores = softmax(logits)
    return Timeline(times, scores, merge_segments(times, scores, classes, frame_rate, steps / frame_rate),
                    logits=logits, classes=list(classes), frame_rate=frame_rate, smooth=smooth)

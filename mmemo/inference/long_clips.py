"""Frame timelines of clips longer than one encoder pass, encoded in overlapping windows.

A clip longer than the predictor's ``max_seconds`` is scored utterance-wise on its first
``max_seconds``; its frame timeline is encoded as a stream would see it (windows of
``max_seconds`` with 2 s of context each side), and a file is decoded block by block, so memory
does not grow with the file's length.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mmemo.data.audio import AudioError, iter_audio_blocks
from mmemo.inference.predictions import NON_FINITE, Prediction
from mmemo.inference.stream import StreamSession

if TYPE_CHECKING:
    from mmemo.inference.inputs import InputItem
    from mmemo.inference.predictor import Predictor


def long_session(predictor: Predictor, smooth: int, text: str | None) -> StreamSession:
    """Overlapping windows of ``max_seconds`` (2 s of context each side) for clips longer than one pass."""
    context = min(2.0, predictor.max_seconds / 4)
    return StreamSession(predictor, hop_seconds=predictor.max_seconds - 2 * context, context_seconds=context,
                         lookahead_seconds=context, smooth=smooth, text=text)


def long_frame_logits(predictor: Predictor, wave: np.ndarray, smooth: int,
                      text: str | None) -> tuple[np.ndarray, np.ndarray]:
    """A clip longer than ``max_seconds``: overlapping windows, exactly as a stream would see it."""
    session = long_session(predictor, smooth, text)
    parts = [session.push_logits(wave), session.finish_logits()]
    times = np.concatenate([p[0] for p in parts])
    return times, np.concatenate([p[1] for p in parts])


def stream_file_timeline(predictor: Predictor, item: InputItem, prediction: Prediction, smooth: int,
                         text: str | None) -> Prediction:
    """The frame timeline of a file longer than ``max_seconds``, decoded and encoded block by block."""
    session = long_session(predictor, smooth, text)
    parts, samples = [], 0
    path = None if item.path is None else str(item.path)
    try:
        key = None if item.audio_id == str(item.path) else item.audio_id
        for block in iter_audio_blocks(item.path, block_seconds=predictor.max_seconds, start=item.start,
                                       end=item.end, key=key):
            samples += len(block)
            parts.append(session.push_logits(block))
    except AudioError as error:
        return Prediction.failed(item.audio_id, str(error), path)
    parts.append(session.finish_logits())
    times = np.concatenate([p[0] for p in parts])
    logits = np.concatenate([p[1] for p in parts])
    if not np.isfinite(logits).all():
        return Prediction.failed(item.audio_id, f"{item.audio_id}: {NON_FINITE}", path)
    prediction.timeline = predictor._timeline(times, logits, smooth, samples)
    prediction.duration = samples / predictor.sample_rate
    return prediction

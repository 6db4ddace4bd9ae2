"""Concurrent analyze requests folded into batched model calls.

Requests wait on a future while one worker thread takes whatever is queued (up to
``max_batch`` clips, waiting at most ``max_wait`` seconds for company) and makes one
``Predictor.predict_waveforms`` call. The model thus runs on one thread at a time - no
oversubscribed cores - and in batches, which is what the Predictor is built for.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class _Request:
    waveform: np.ndarray
    audio_id: str
    track: object = None  # the clip's face track (video models), or None
    future: Future = field(default_factory=Future)


class PredictionBatcher:
    def __init__(self, predictor, *, max_batch: int = 8, max_wait: float = 0.005, embeddings: bool = False,
                 smooth: int = 1, granularity: str = "frame", lock: threading.Lock | None = None):
        self.predictor = predictor
        self.max_batch, self.max_wait = max(1, max_batch), max_wait
        self.embeddings, self.smooth, self.granularity = embeddings, smooth, granularity
        self.model_lock = lock or threading.Lock()  # shared with stream sessions
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mmemo-batcher", daemon=True)
        self._thread.start()
        self.batches = 0

    def predict(self, waveform: np.ndarray, audio_id: str, timeout: float | None = None, track=None):
        """One clip's :class:`Prediction` (frame granularity), computed in some batch; ``track``: its face
        track for a model with a video branch."""
        request = _Request(waveform, audio_id, track)
        self._queue.put(request)
        return request.future.result(timeout)

    def _take_batch(self) -> list[_Request] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while (batch := self._take_batch()) is not None:
            try:
                with self.model_lock:
                    predictions = self.predictor.predict_waveforms(
                        [r.waveform for r in batch], [r.audio_id for r in batch], granularity=self.granularity,
                        embeddings=self.embeddings, smooth=self.smooth,
                        **({"tracks": [r.track for r in batch]} if any(r.track is not None for r in batch) else {}))
                self.batches += 1
            except Exception as error:  # the batch fails together; each caller gets the error
                log.exception("prediction batch of %d failed", len(batch))
                for request in batch:
                    request.future.set_exception(error)
                continue
            for request, prediction in zip(batch, predictions):
                request.future.set_result(prediction)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

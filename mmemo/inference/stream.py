"""``StreamSession``: frame-level emotion scores from 16 kHz PCM arriving in chunks.

Audio is cut into fixed segments on the encoder's frame grid, independent of how the
chunks arrive (so the output does not depend on chunk sizes). Every ``hop_seconds`` of
new audio, one segment is encoded:

    [ context_seconds | hop_seconds (frames emitted now) | lookahead_seconds ]

The hop's frames are final once emitted. ``context_seconds`` of past audio and
``lookahead_seconds`` of future audio give those frames the surroundings an offline pass
has, so away from the stream's start and end the scores approach the offline frame
scores of the whole recording (exactly equal only when a segment spans the whole
recording: encoders attend over, and normalise across, the whole clip they are given).

Latency: a frame is emitted at most ``hop_seconds + lookahead_seconds`` after its audio
arrived, plus the compute time of one segment. Compute per second of audio is
``(context + hop + lookahead) / hop`` times an offline pass; with the defaults (1 s, 1 s,
0.5 s) that is 2.5x.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mmemo.errors import InvalidInput
from mmemo.inference.predictions import NON_FINITE
from mmemo.inference.timeline import frame_times, softmax

if TYPE_CHECKING:  # the predictor builds sessions for long clips: no import at run time
    from mmemo.inference.predictor import Predictor

ENCODINGS = ("pcm_s16le", "f32le")


class NonFiniteScores(RuntimeError):
    """The model's scores for a segment are not numbers (NaN or infinity): nothing to emit."""


class StreamSession:
    """Push raw 16 kHz mono PCM chunks, get the new frames' times and probabilities back.

    ``encoding`` says how ``bytes`` chunks are read: ``pcm_s16le`` (16-bit little-endian
    integers, the default) or ``f32le`` (32-bit floats in [-1, 1]). numpy chunks are read
    by dtype (int16 or float). A malformed chunk raises ValueError and leaves the session
    as it was, so the caller may close the stream or carry on.
    """

    def __init__(self, predictor: Predictor, *, hop_seconds: float = 1.0, context_seconds: float = 1.0,
                 lookahead_seconds: float = 0.5, smooth: int = 1, encoding: str = "pcm_s16le",
                 text: str | None = None):
        if encoding not in ENCODINGS:
            raise InvalidInput(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        if hop_seconds <= 0 or context_seconds < 0 or lookahead_seconds < 0:
            raise InvalidInput(f"hop_seconds must be > 0 and context/lookahead >= 0, got {hop_seconds}, "
                             f"{context_seconds}, {lookahead_seconds}")
        if smooth < 1:
            raise InvalidInput(f"smooth must be >= 1 frame, got {smooth}")
        if not predictor.supports_frames:
            raise NotImplementedError(f"{predictor.model_id} cannot score frames, so it cannot stream")
        self.predictor = predictor
        self.encoding = encoding
        self.smooth = int(smooth)
        self.text = text
        rate = predictor.sample_rate
        self.frame_step = predictor.samples_per_frame
        self.hop_frames = max(1, int(round(hop_seconds * rate / self.frame_step)))
        self.context_samples = int(round(context_seconds * rate / self.frame_step)) * self.frame_step
        self.lookahead_samples = int(round(lookahead_seconds * rate))
        self._buffer = np.zeros(0, np.float32)
        self._buffer_start = 0  # absolute index of the buffer's first sample
        self._received = 0
        self._emitted = 0  # frames emitted so far
        self._finished = False
        #: Dimension values [N,D] of the frames the last push/finish returned (None: the model has none).
        self.last_values: np.ndarray | None = None

    # -- what the monitor reads ------------------------------------------------------------
    @property
    def seconds(self) -> float:
        """Audio received so far, in seconds."""
        return self._received / self.predictor.sample_rate

    @property
    def frames_emitted(self) -> int:
        return self._emitted

    @property
    def latency_seconds(self) -> float:
        """Longest wait between a frame's audio arriving and its score (compute time not included)."""
        return (self.hop_frames * self.frame_step + self.lookahead_samples) / self.predictor.sample_rate

    @property
    def classes(self) -> list[str]:
        return self.predictor.classes

    # -- pushing audio ---------------------------------------------------------------------
    def push(self, chunk: bytes | bytearray | memoryview | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add a chunk; return the frames completed by it: times [N] (s from stream start), probabilities [N,C]."""
        times, logits = self.push_logits(chunk)
        return times, self._scores(logits)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """End of stream: score every remaining frame (no lookahead is left to wait for)."""
        times, logits = self.finish_logits()
        return times, self._scores(logits)

    def _scores(self, outputs: np.ndarray) -> np.ndarray:
        """Class probabilities of the frames just scored; their dimension values go to :attr:`last_values`."""
        logits, self.last_values = self.predictor.split(outputs)
        return softmax(logits)

    def push_logits(self, chunk) -> tuple[np.ndarray, np.ndarray]:
        if self._finished:
            raise InvalidInput("the stream is finished; start a new StreamSession")
        samples = decode_chunk(chunk, self.encoding)
        self._buffer = np.concatenate([self._buffer, samples])
        self._received += len(samples)
        out = []
        while self._received >= self._segment_end():
            out.append(self._emit(self._segment_end(), self._emitted + self.hop_frames))
        return self._join(out)

    def finish_logits(self) -> tuple[np.ndarray, np.ndarray]:
        if self._finished:
            raise InvalidInput("the stream is already finished")
        self._finished = True
        out = [self._emit(self._received, None)] if self._received > self._emitted * self.frame_step else []
        return self._join(out)

    # -- internals -------------------------------------------------------------------------
    def _segment_end(self) -> int:
        return (self._emitted + self.hop_frames) * self.frame_step + self.lookahead_samples

    def _emit(self, end: int, last_frame: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Encode ``[context start, end)`` and return frames ``emitted .. last_frame - 1`` (all when None)."""
        start = max(0, self._emitted * self.frame_step - self.context_samples)
        segment = self._buffer[start - self._buffer_start: end - self._buffer_start]
        logits = self.predictor.segment_frame_logits(segment, self.smooth, self.text)
        if not np.isfinite(logits).all():
            raise NonFiniteScores(NON_FINITE)
        first = start // self.frame_step
        begin = self._emitted - first
        stop = len(logits) if last_frame is None else min(len(logits), last_frame - first)
        if last_frame is not None and stop <= begin:
            raise InvalidInput(f"hop_seconds + lookahead_seconds ({self.latency_seconds:.3f} s) is shorter than "
                             "one frame of this encoder; use a longer hop or lookahead")
        new = logits[max(begin, 0): max(stop, begin)]
        times = frame_times(len(new), self.predictor.frame_rate, first=self._emitted)
        self._emitted += len(new)
        keep_from = max(0, self._emitted * self.frame_step - self.context_samples)
        self._buffer = self._buffer[keep_from - self._buffer_start:]
        self._buffer_start = keep_from
        return times, new

    def _join(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        if not parts:
            width = len(self.predictor.classes) + len(self.predictor.dimensions)
            return np.zeros(0), np.zeros((0, width), np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def decode_chunk(chunk, encoding: str = "pcm_s16le") -> np.ndarray:
    """Raw PCM (bytes) or a 1-D numpy array -> float32 samples in [-1, 1]; ValueError when malformed."""
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        data = bytes(chunk)
        width = 2 if encoding == "pcm_s16le" else 4
        if len(data) % width:
            kind = "odd byte count" if width == 2 else "byte count not a multiple of 4"
            raise InvalidInput(f"malformed {encoding} chunk: {kind} ({len(data)} bytes); "
                             f"each sample is {width} bytes")
        samples = np.frombuffer(data, dtype="<i2" if width == 2 else "<f4")
    elif isinstance(chunk, np.ndarray):
        samples = chunk
        if samples.ndim != 1:
            raise InvalidInput(f"malformed chunk: expected mono samples [N], got shape {samples.shape}")
    else:
        raise InvalidInput(f"malformed chunk: expected bytes or a numpy array, got {type(chunk).__name__}")
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    if not np.issubdtype(samples.dtype, np.floating):
        raise InvalidInput(f"malformed chunk: samples must be int16 or float, got {samples.dtype}")
    samples = samples.astype(np.float32)
    if not np.isfinite(samples).all():
        raise InvalidInput("malformed chunk: contains NaN or infinite samples")
    return samples

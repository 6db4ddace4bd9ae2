"""Live streams: PCM chunks in, frame scores and alerts out as they arrive, a record at the end.

With ``--segments vad`` a causal segmenter closes speech segments as the stream goes; each is
transcribed (``--asr``) and scored with its text at once, and stored with the stream's record.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from mmemo.data.audio import SAMPLE_RATE
from mmemo.monitor.failures import AnalysisError

if TYPE_CHECKING:
    from mmemo.monitor.analysis import Monitor

log = logging.getLogger("mmemo.monitor.analysis")  # the logger these messages always had


SAMPLE_FORMATS = {"s16le": 2, "f32le": 4}


class LiveStream:
    """One live audio stream: PCM chunks in, new frame scores and alerts out, a record at the end."""

    def __init__(self, monitor: Monitor, channel: str, audio_id: str, sample_format: str):
        if sample_format not in SAMPLE_FORMATS:
            raise AnalysisError(f"format must be one of {', '.join(SAMPLE_FORMATS)}; got {sample_format!r}")
        self.monitor, self.channel, self.audio_id, self.format = monitor, channel, audio_id, sample_format
        self.session = monitor._stream_factory(sample_format)
        self.rules = monitor.engine.session(channel, audio_id, monitor.frame_period, start_time=monitor.clock())
        self.times: list[np.ndarray] = []
        self.probs: list[np.ndarray] = []
        self.alert_ids: list[int] = []
        self.samples = 0
        self.finished = False
        self.segments: list[dict] = []
        self.segmenter = None
        if monitor.longform is not None:  # --segments vad: segments transcribed and scored as they close
            from mmemo.longform.vad import StreamSegmenter

            self.segmenter = StreamSegmenter(monitor.longform.vad.options)
        with monitor._streams_lock:
            monitor.live_streams += 1

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    def push(self, chunk: bytes) -> dict:
        """Raises ValueError for a malformed chunk (the caller closes the stream)."""
        width = SAMPLE_FORMATS[self.format]
        limit = self.monitor.settings.max_stream_s
        if (self.samples + len(chunk) // width) / SAMPLE_RATE > limit:
            raise OverflowError(f"stream longer than the {limit:g} s limit (--max-stream)")
        with self.monitor.batcher.model_lock:
            times, probs = self.session.push(chunk)  # ValueError when malformed
        self.samples += len(chunk) // width
        update = self._frames(times, probs)
        if self.segmenter is not None:
            samples = (np.frombuffer(chunk, "<i2").astype(np.float32) / 32768.0 if self.format == "s16le"
                       else np.frombuffer(chunk, "<f4").astype(np.float32))
            update["segments"] = self._segments(self.segmenter.push(samples))
        return update

    def _segments(self, closed) -> list[dict]:
        """Transcribe (``--asr``) and score each closed speech segment; they join the record at the end."""
        monitor = self.monitor
        pipeline = monitor.longform
        out = []
        for start, end, wave in closed:
            with monitor.batcher.model_lock:
                found = pipeline.transcriber.transcribe(wave, start) if pipeline.transcriber else {"text": None,
                                                                                                     "words": []}
                text_branch = getattr(monitor.predictor.model, "text", None) is not None
                [prediction] = monitor.predictor.predict_waveforms(
                    [wave], [f"{start:.3f}-{end:.3f}"], texts=[found["text"] or ""] if text_branch else None)
            segment = {"start": start, "end": end, "speaker": None, "text": found["text"], "words": found["words"],
                       "label": None, "confidence": None, "scores": {}}
            if prediction.ok:
                scores, label, confidence = monitor.rules_file.ruleset.restrict(monitor.classes, prediction.scores)
                segment.update(label=label, confidence=round(confidence, 5), scores=scores)
            else:
                segment["error"] = prediction.error
            self.segments.append(segment)
            out.append(segment)
        return out

    def _frames(self, times, probs) -> dict:
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        probs = np.asarray(probs, dtype=np.float64).reshape(len(times), len(self.monitor.classes))
        mask = self.monitor.rules_file.ruleset.mask(self.monitor.classes)
        if mask is not None:
            probs = mask(probs)
        values = getattr(self.session, "last_values", None) if self.monitor.dimensions else None
        alerts = self.monitor._raise_alerts(self.rules.feed(times, probs, values)) if len(times) else []
        self.alert_ids += [a["id"] for a in alerts]
        if len(times):
            self.times.append(times)
            self.probs.append(probs)
        update = {"type": "frames", "times": np.round(times, 4).tolist(), "scores": np.round(probs, 5).tolist(),
                  "seconds": round(self.seconds, 3), "alerts": alerts}
        if values is not None:  # a model with dimensions: [T, D] in monitor.dimensions' order
            update["dimensions"] = {d: np.round(values[:, i], 5).tolist()
                                    for i, d in enumerate(self.monitor.dimensions)}
        return update

    def finish(self) -> dict:
        """Flush the last frames and store the stream's record (mean frame scores)."""
        if self.finished:
            raise RuntimeError("stream already finished")
        self.finished = True
        with self.monitor._streams_lock:
            self.monitor.live_streams -= 1
        last = None
        with self.monitor.batcher.model_lock:
            tail = self.session.finish()
        if isinstance(tail, tuple) and len(tail) == 2:
            last = self._frames(*tail)
        if self.segmenter is not None:
            closing = self._segments(self.segmenter.finish())
            if last is not None:
                last["segments"] = closing
        times = np.concatenate(self.times) if self.times else np.zeros(0)
        probs = np.concatenate(self.probs) if self.probs else np.zeros((0, len(self.monitor.classes)))
        if len(times):
            mean = probs.mean(axis=0)
            scores = {c: float(p) for c, p in zip(self.monitor.classes, mean)}
            label, confidence = self.monitor.classes[int(mean.argmax())], float(mean.max())
        else:
            scores, label, confidence = {}, None, None
        record = self.monitor.store.add_record(
            audio_id=self.audio_id, channel=self.channel, source="stream", model_id=self.monitor.model_id,
            granularity="frame", label=label, confidence=confidence, scores=scores, duration=self.seconds,
            timeline=(times, probs) if len(times) else None, classes=self.monitor.classes,
            alert_ids=self.alert_ids, error=None if len(times) else "no frames: the stream was too short",
            segments=self.segments if self.segmenter is not None else None)
        return {"type": "summary", "record": record, "last": last}

    def abort(self) -> None:
        """The client vanished: keep what was analysed."""
        if not self.finished:
            try:
                self.finish()
            except Exception:
                log.exception("could not store the record of an interrupted stream")

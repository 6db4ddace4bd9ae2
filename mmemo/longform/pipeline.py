"""Long recordings end to end: speech segments -> speakers -> transcripts -> emotions per segment.

One :class:`LongFormPipeline` serves ``mmemo predict --segments vad`` and the benchmarks. Each
stage reads the file by segment (never the whole recording), so memory is bounded by the longest
segment (``max_segment``), and each stage's wall time is recorded for the real-time factor.
A segment that cannot be scored is reported with its error; the others go on.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmemo.data.audio import load_audio
from mmemo.errors import MediaError
from mmemo.longform.vad import SileroVad, VadOptions, segments_of

log = logging.getLogger(__name__)
#: Segments decoded, transcribed and scored together: memory holds at most this many segments.
CHUNK = 16


@dataclass
class LongFormOptions:
    vad: VadOptions = field(default_factory=VadOptions)
    diarize: bool = False
    num_speakers: int | None = None
    asr: str | None = None
    asr_language: str | None = "en"
    asr_cache: str | None = "cache/transcripts"
    granularity: str = "frame"   # frame timelines inside each segment when the model has them
    smooth: int = 1


@dataclass
class SegmentResult:
    start: float
    end: float
    speaker: str | None = None
    text: str | None = None
    words: list[dict] = field(default_factory=list)
    label: str | None = None
    confidence: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    timeline: dict | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        out = {"start": self.start, "end": self.end, "speaker": self.speaker, "text": self.text, "words": self.words,
               "label": self.label, "confidence": self.confidence, "scores": self.scores}
        if self.timeline is not None:
            out["timeline"] = self.timeline
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class LongFormResult:
    audio_id: str
    path: str
    duration: float
    classes: list[str]
    segments: list[SegmentResult]
    seconds: dict[str, float]      # wall time per stage
    models: dict[str, str]

    @property
    def speakers(self) -> dict[str, dict]:
        """Per speaker: talk time, segments, the duration-weighted emotion distribution, top emotion."""
        talk: dict[str, float] = defaultdict(float)
        mass: dict[str, np.ndarray] = {}
        count: dict[str, int] = defaultdict(int)
        for s in self.segments:
            name = s.speaker or "SPEAKER_00"
            talk[name] += s.end - s.start
            count[name] += 1
            if s.scores:
                vector = np.array([s.scores[c] for c in self.classes]) * (s.end - s.start)
                mass[name] = mass.get(name, 0) + vector
        out = {}
        for name in talk:
            distribution = mass.get(name)
            if distribution is not None and distribution.sum() > 0:
                distribution = distribution / distribution.sum()
                shares = {c: round(float(p), 5) for c, p in zip(self.classes, distribution)}
                top = self.classes[int(np.argmax(distribution))]
            else:
                shares, top = {}, None
            out[name] = {"seconds": round(talk[name], 3), "segments": count[name], "emotions": shares, "label": top,
                         "timeline": [{"start": s.start, "end": s.end, "label": s.label}
                                      for s in self.segments if (s.speaker or "SPEAKER_00") == name]}
        return out

    def real_time_factors(self) -> dict[str, float]:
        return {stage: round(seconds / self.duration, 5) if self.duration else float("nan")
                for stage, seconds in self.seconds.items()}

    def to_dict(self) -> dict:
        return {"audio_id": self.audio_id, "path": self.path, "duration": round(self.duration, 3),
                "classes": self.classes, "models": self.models, "stage_seconds": self.seconds,
                "real_time_factor": self.real_time_factors(), "speakers": self.speakers,
                "segments": [s.to_dict() for s in self.segments]}


class LongFormPipeline:
    def __init__(self, predictor, options: LongFormOptions | None = None, *, vad=None, diarizer=None,
                 transcriber=None):
        self.predictor = predictor
        self.options = options or LongFormOptions()
        self.vad = vad or SileroVad(self.options.vad)
        if diarizer is None and self.options.diarize:
            from mmemo.longform.speakers import EmbeddingDiarizer

            diarizer = EmbeddingDiarizer()
        self.diarizer = diarizer
        if transcriber is None and self.options.asr:
            from mmemo.longform.transcripts import SegmentTranscriber

            transcriber = SegmentTranscriber(self.options.asr, language=self.options.asr_language,
                                             cache_dir=self.options.asr_cache)
        self.transcriber = transcriber

    def run(self, path: str | Path, audio_id: str | None = None, *, progress: bool = False) -> LongFormResult:
        from tqdm.auto import tqdm

        path = Path(path)
        audio_id = audio_id or str(path)
        seconds: dict[str, float] = {}
        clock = time.perf_counter()
        activity = self.vad.activity(path, key=audio_id)
        spans = segments_of(activity, self.vad.options)
        seconds["vad"] = time.perf_counter() - clock
        def wave_of(start: float, end: float) -> np.ndarray:
            return load_audio(path, key=audio_id, start=start, end=end, silence_dbfs=None).wave

        if self.diarizer is not None and spans:
            clock = time.perf_counter()
            turns = self.diarizer.diarize(wave_of, spans, self.options.num_speakers)
            seconds["diarization"] = time.perf_counter() - clock
            pieces = [(t.start, t.end, t.speaker) for t in turns]
        else:
            pieces = [(s, e, None) for s, e in spans]
        segments = [SegmentResult(start, end, speaker) for start, end, speaker in pieces if end - start >= 0.05]
        seconds["asr"], seconds["emotion"] = 0.0, 0.0
        bar = tqdm(total=len(segments), desc="segments", unit="seg", disable=not progress)
        for begin in range(0, len(segments), CHUNK):  # a few segments in memory at a time, whatever the length
            chunk = segments[begin: begin + CHUNK]
            waves: dict[int, np.ndarray] = {}
            for index, segment in enumerate(chunk):
                try:
                    waves[index] = wave_of(segment.start, segment.end)
                except MediaError as error:
                    segment.error = str(error)
            if self.transcriber is not None:
                clock = time.perf_counter()
                for index, wave in waves.items():
                    found = self.transcriber.transcribe(wave, chunk[index].start)
                    chunk[index].text, chunk[index].words = found["text"], found["words"]
                seconds["asr"] += time.perf_counter() - clock
            clock = time.perf_counter()
            self._score(chunk, waves)
            seconds["emotion"] += time.perf_counter() - clock
            bar.update(len(chunk))
        bar.close()
        if self.transcriber is None:
            del seconds["asr"]
        models = {"vad": getattr(self.vad, "name", "vad"), "emotion": self.predictor.model_id}
        if self.diarizer is not None:
            models["diarization"] = self.diarizer.name
        if self.transcriber is not None:
            models["asr"] = self.transcriber.path
        return LongFormResult(audio_id, str(path), activity.seconds, list(self.predictor.classes), segments,
                              {k: round(v, 4) for k, v in seconds.items()}, models)

    def _score(self, segments: list[SegmentResult], waves: dict[int, np.ndarray]) -> None:
        usable = [s for i, s in enumerate(segments) if i in waves]
        if not usable:
            return
        frames = self.options.granularity == "frame" and self.predictor.supports_frames
        texts = [s.text or "" for s in usable] if getattr(self.predictor.model, "text", None) is not None else None
        scored = self.predictor.predict_waveforms([waves[i] for i in sorted(waves)],
                                                  [f"{s.start:.3f}-{s.end:.3f}" for s in usable],
                                                  granularity="frame" if frames else "utterance",
                                                  smooth=self.options.smooth, texts=texts)
        for segment, prediction in zip(usable, scored):
            if prediction.error:
                segment.error = prediction.error
                continue
            segment.label, segment.confidence = prediction.label, prediction.confidence
            segment.scores = {k: round(float(v), 5) for k, v in prediction.scores.items()}
            if prediction.timeline is not None:
                timeline = prediction.timeline.to_dict()
                timeline["times"] = [round(t + segment.start, 4) for t in timeline["times"]]
                timeline.pop("segments", None)
                segment.timeline = timeline

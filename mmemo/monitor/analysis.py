"""The monitor's core: audio (and video) in, prediction + alerts + stored record out.

Every entry point - upload, WebSocket, chunked HTTP, watch folder - goes through a
:class:`Monitor`, so they all share one Predictor (the same class ``mmemo predict`` uses),
one alert engine with its cooldowns, one store and one webhook queue.

For a model with a video branch, an uploaded or watched file with a video stream gives the face
track too (made with the options the model was trained with, as in ``mmemo predict``); the
record then stores the face timeline next to the audio's. Rules run over the audio's timeline.
Live streams carry PCM audio only, so a video model scores them with the face missing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mmemo.data.audio import AudioError, load_audio
from mmemo.errors import InvalidInput, MediaError
from mmemo.monitor.batching import PredictionBatcher
from mmemo.monitor.delivery import AlertDispatcher, Transport
from mmemo.monitor.engine import Alert, AlertEngine
from mmemo.monitor.failures import AnalysisError
from mmemo.monitor.live import LiveStream
from mmemo.monitor.rules import default_rules_path
from mmemo.monitor.rules_file import RulesFile, RulesPoller
from mmemo.monitor.settings import MonitorSettings
from mmemo.monitor.store import ResultStore

log = logging.getLogger(__name__)


def load_predictor(settings: MonitorSettings):
    """The shared Predictor for ``--model`` (mmemo checkpoint, FunASR dir or hub id)."""
    from mmemo.inference.predictor import Predictor

    if not settings.model:
        raise InvalidInput("--model is required: an mmemo .ckpt, a FunASR emotion2vec(+) folder or a hub id")
    options = {"compute_dtype": settings.compute_dtype} if settings.compute_dtype else {}
    return Predictor.from_source(settings.model, device=settings.device, **options)


def _mailer(settings: MonitorSettings):
    """The SMTP sender of e-mail actions, or None without --smtp-host (such deliveries dead-letter)."""
    if not settings.smtp_host:
        return None
    import os

    from mmemo.monitor.delivery import smtp_mailer
    from mmemo.monitor.settings import SMTP_PASSWORD_ENV

    return smtp_mailer(settings.smtp_host, settings.smtp_port, settings.smtp_from, user=settings.smtp_user,
                       password=os.environ.get(SMTP_PASSWORD_ENV), starttls=settings.smtp_starttls)


def _long_form_pipeline(predictor, settings: MonitorSettings):
    """VAD (+ speakers, + ASR) for ``--segments vad``; None otherwise."""
    if settings.segments != "vad":
        return None
    from mmemo.longform.pipeline import LongFormOptions, LongFormPipeline
    from mmemo.longform.vad import VadOptions

    language = None if (settings.asr_language or "").lower() == "auto" else settings.asr_language
    vad = VadOptions(padding=settings.vad_padding, padding_after=settings.vad_padding_after)
    return LongFormPipeline(predictor, LongFormOptions(
        vad=vad, diarize=settings.diarize, num_speakers=settings.num_speakers, asr=settings.asr, asr_language=language,
        asr_cache=str(Path(settings.data_dir) / "transcripts"), granularity="frame", smooth=settings.smooth))


def _explainer(settings: MonitorSettings):
    """``--explain``: the LM that writes each upload's reason (None: off, the default)."""
    if not settings.explain:
        return None
    if settings.segments == "vad":
        raise InvalidInput("--explain writes one reason per upload; with --segments vad it is not built yet")
    from mmemo.llm.rationales import Explainer

    return Explainer(settings.explain_model)


def _default_stream_factory(predictor, settings: MonitorSettings):
    """``factory(sample_format)`` -> a StreamSession reading that PCM format."""
    from mmemo.inference.stream import StreamSession

    encodings = {"s16le": "pcm_s16le", "f32le": "f32le"}
    return lambda sample_format: StreamSession(
        predictor, smooth=settings.smooth, encoding=encodings[sample_format], hop_seconds=settings.stream_hop_s,
        context_seconds=settings.stream_context_s, lookahead_seconds=settings.stream_lookahead_s)


class Monitor:
    def __init__(self, settings: MonitorSettings, predictor, *, transport: Transport | None = None,
                 stream_factory: Callable[[str], object] | None = None, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.predictor = predictor
        self.classes = list(predictor.classes)
        #: Dimensions the model predicts (arousal, valence, ...): ``type: dimensions`` rules watch them.
        self.dimensions = list(getattr(predictor, "dimensions", []) or [])
        self.model_id = str(getattr(predictor, "model_id", settings.model or "unknown"))
        self.frame_period = 1.0 / float(predictor.frame_rate)
        self.clock = clock
        self.started = clock()
        # a user's rules file is strict; the built-in default skips rules that do not fit the model
        self.rules_file = RulesFile(settings.rules or default_rules_path(), self.classes,
                                    strict=settings.rules is not None, allowed_hosts=settings.webhook_allow_hosts,
                                    dimensions=self.dimensions)
        self.store = ResultStore(settings.db_url, hash_ids=settings.hash_ids, salt=settings.salt or "",
                                 retention_days=settings.retention_days)
        self.engine = AlertEngine(lambda: self.rules_file.ruleset, self.classes, self.store.last_firings(),
                                  dimensions=self.dimensions)
        self.dispatcher = AlertDispatcher(self.store, transport, clock=clock,
                                          backoff_scale=settings.webhook_backoff_scale,
                                          allowed_hosts=settings.webhook_allow_hosts, mailer=_mailer(settings))
        #: At most this many uploads are decoded at once: the decode peak stays bounded under load.
        self._decoding = threading.BoundedSemaphore(settings.max_concurrent_decodes)
        self.batcher = PredictionBatcher(predictor, max_batch=settings.batch_size,
                                         max_wait=settings.batch_wait_ms / 1000, embeddings=settings.embeddings,
                                         smooth=settings.smooth,
                                         granularity="frame" if getattr(predictor, "supports_frames", True)
                                         else "utterance")
        self._stream_factory = stream_factory or _default_stream_factory(predictor, settings)
        self.longform = _long_form_pipeline(predictor, settings)
        self.explainer = _explainer(settings)
        self._explaining = threading.Lock()
        self._poller = RulesPoller(self.rules_file, settings.rules_poll_seconds)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.live_streams = 0
        self._streams_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.store.purge_expired()
        self.dispatcher.start()
        if self.settings.rules_poll_seconds > 0:
            self._poller.start()
        if self.settings.retention_days:
            self._spawn(self._purge_loop, "mmemo-retention")
        if self.settings.watch is not None:
            from mmemo.monitor.watch import WatchFolder

            watcher = WatchFolder(self, Path(self.settings.watch), self.settings.watch_poll_seconds,
                                  self.settings.watch_channel)
            self._spawn(lambda: watcher.run(self._stop), "mmemo-watch")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _purge_loop(self) -> None:
        while not self._stop.wait(3600):
            self.store.purge_expired()

    def close(self) -> None:
        self._stop.set()
        self._poller.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        self.batcher.close()
        self.dispatcher.join(timeout=5)
        self.dispatcher.stop()
        self.store.close()

    # -- audio -----------------------------------------------------------------------------------
    def decode(self, path: Path) -> np.ndarray:
        """Decode an uploaded file to mono 16 kHz, refusing clips over ``max_duration_s``.

        Decoding stops just past the limit whatever the codec, and at most
        ``max_concurrent_decodes`` files are decoded at once.
        """
        limit = self.settings.max_duration_s
        with self._decoding:
            try:
                clip = load_audio(path, max_seconds=limit, silence_dbfs=self.settings.silence_dbfs)
            except AudioError as error:
                raise AnalysisError(f"cannot decode the upload: {error.reason}") from None
        if clip.cropped:  # not decoded past the limit: the length is the header's, when it has one
            if clip.duration_known:
                problem = f"audio is {clip.source_seconds:.1f} s long; the limit is {limit:g} s"
            else:
                about = f" (about {clip.source_seconds:.0f} s by its header)" if clip.source_seconds > limit + 1 else ""
                problem = f"audio is longer than the {limit:g} s limit{about}"
            raise AnalysisError(f"{problem} (--max-duration)", status=413)
        return clip.wave

    def face_track(self, path: Path):
        """The upload's face track for a model with a video branch (None: no such model, or no video
        stream in the file: the face is then missing, as in training). Bounded like training's
        decoding (the model's ``data.video.max_seconds``) and by the same decode semaphore."""
        options = getattr(self.predictor, "video_options", None)
        if options is None:
            return None
        from mmemo.video.decode import has_video
        from mmemo.video.track import face_track

        with self._decoding:
            if not has_video(path):
                return None
            try:
                return face_track(path, options)
            except MediaError as error:
                raise AnalysisError(f"cannot decode the upload's video: {error.reason}") from None

    def read(self, path: Path) -> tuple[np.ndarray, object]:
        """An uploaded or watched file as (waveform, face track or None)."""
        return self.decode(path), self.face_track(path)

    def analyze_file(self, path: Path, *, audio_id: str | None = None, channel: str = "default",
                     source: str = "upload") -> dict:
        """An uploaded or watched file: whole (as :meth:`analyze`), or in speech segments with
        ``--segments vad`` (speakers, transcripts and emotions per segment)."""
        if self.longform is None:
            waveform, track = self.read(path)
            return self.analyze(waveform, audio_id=audio_id, channel=channel, source=source, track=track)
        self.decode(path)  # the same limits as a whole upload (--max-duration, silence, bad files)
        return self.analyze_segments(path, audio_id=audio_id, channel=channel, source=source)

    def analyze_segments(self, path: Path, *, audio_id: str | None, channel: str, source: str) -> dict:
        audio_id = audio_id or uuid.uuid4().hex
        received = self.clock()
        try:
            with self._decoding, self.batcher.model_lock:
                result = self.longform.run(path, audio_id)
        except MediaError as error:
            raise AnalysisError(f"cannot decode the upload: {error.reason}") from None
        mask = self.rules_file.ruleset.mask(self.classes)
        times, probs, alerts = [], [], []
        for segment in result.segments:
            if segment.timeline is not None:
                seg_times = np.asarray(segment.timeline["times"], float)
                seg_probs = np.asarray(segment.timeline["scores"], float)
                period = self.frame_period
            elif segment.scores:  # a model without frame scores: one frame per segment
                period = max(segment.end - segment.start, 1e-3)
                seg_times = np.array([(segment.start + segment.end) / 2])
                seg_probs = np.array([[segment.scores[c] for c in self.classes]])
            else:
                continue
            if mask is not None:
                seg_probs = mask(seg_probs)
                segment.scores, segment.label, segment.confidence = self.rules_file.ruleset.restrict(
                    self.classes, segment.scores)
            # one rule session per segment: a window never spans the silence between two segments
            session = self.engine.session(channel, audio_id, period, start_time=received)
            alerts += self._raise_alerts(session.feed(seg_times, seg_probs))
            times.append(seg_times)
            probs.append(seg_probs)
        weights = np.array([s.end - s.start for s in result.segments if s.scores])
        if len(weights):
            vectors = np.array([[s.scores[c] for c in self.classes] for s in result.segments if s.scores])
            mean = (vectors * weights[:, None]).sum(0) / weights.sum()
            scores = {c: float(v) for c, v in zip(self.classes, mean)}
            label, confidence = self.classes[int(mean.argmax())], float(mean.max())
        else:
            scores, label, confidence = {}, None, None
        segments = [{k: v for k, v in s.to_dict().items() if k != "timeline"} for s in result.segments]
        timeline = (np.concatenate(times), np.concatenate(probs)) if times else None
        record = self.store.add_record(
            audio_id=audio_id, channel=channel, source=source, model_id=self.model_id, granularity="segment",
            label=label, confidence=confidence, scores=scores, duration=result.duration, timeline=timeline,
            classes=self.classes, alert_ids=[a["id"] for a in alerts], segments=segments,
            error=None if segments else "no speech found")
        prediction = {"audio_id": audio_id, "label": label, "confidence": confidence, "scores": scores,
                      "duration": round(result.duration, 3), "segments": segments, "speakers": result.speakers,
                      "real_time_factor": result.real_time_factors(), "error": None}
        return {"record": record, "prediction": prediction, "alerts": alerts}

    # -- analysis --------------------------------------------------------------------------------
    def analyze(self, waveform: np.ndarray, *, audio_id: str | None = None, channel: str = "default",
                source: str = "upload", track=None) -> dict:
        """Predict one clip (with its face ``track``, if any), run the rules over its audio frames, store
        everything; the API's answer."""
        audio_id = audio_id or uuid.uuid4().hex
        received = self.clock()
        prediction = self.batcher.predict(waveform, audio_id, track=track)
        if prediction.error:
            raise AnalysisError(f"the model could not analyse {audio_id!r}: {prediction.error}")
        timeline = prediction.timeline
        values = None
        if timeline is not None and len(timeline.times):
            times, probs, period = np.asarray(timeline.times), np.asarray(timeline.scores), self.frame_period
            values = timeline.values
        else:  # a model without frame scores: the utterance score as one frame spanning the clip
            period = max(prediction.duration, 1e-3)
            times = np.array([period / 2])
            probs = np.array([[prediction.scores[c] for c in self.classes]])
            if prediction.dimensions:
                values = np.array([[prediction.dimensions[d] for d in self.dimensions]])
        mask = self.rules_file.ruleset.mask(self.classes)
        if mask is not None:  # the rules file watches a subset of the model's classes
            probs = mask(probs)
            prediction.scores, prediction.label, prediction.confidence = self.rules_file.ruleset.restrict(
                self.classes, prediction.scores)
            if timeline is not None:
                timeline.scores = probs
        session = self.engine.session(channel, audio_id, period, start_time=received)
        alerts = self._raise_alerts(session.feed(times, probs, values if self.dimensions else None))
        face = getattr(prediction, "face_timeline", None)
        if self.explainer is not None:  # uploads and watched files (live streams store frames, not reasons)
            with self._explaining:  # one generation at a time; the model's lock stays free for streams
                prediction.rationale = self.explainer.explain(prediction.label, prediction.confidence, None,
                                                              waveform).to_dict()
        record = self.store.add_record(
            audio_id=audio_id, channel=channel, source=source, model_id=self.model_id,
            granularity=self.batcher.granularity,
            label=prediction.label, confidence=prediction.confidence, scores=prediction.scores,
            duration=prediction.duration, embedding_path=self._save_embedding(prediction.embedding),
            timeline=(times, probs) if timeline is not None else None, classes=self.classes,
            alert_ids=[a["id"] for a in alerts],
            modality_timelines={"face": (face.times, face.scores)} if face is not None else None,
            rationale=prediction.rationale)
        result = prediction.to_dict()
        result.pop("embedding", None)
        return {"record": record, "prediction": result, "alerts": alerts}

    def _raise_alerts(self, alerts: list[Alert]) -> list[dict]:
        """Store each firing and hand it to delivery; returns the alerts as stored (with ids)."""
        out = []
        for alert in alerts:
            data = alert.to_dict()
            data["audio_id"] = self.store.stored_id(alert.audio_id)  # never leak a hashed id's original
            alert_id = self.store.add_alert(alert)
            self.dispatcher.dispatch(data, alert_id, alert.actions)
            out.append({"id": alert_id, **data})
        return out

    def _save_embedding(self, embedding) -> str | None:
        if embedding is None or not self.settings.embeddings:
            return None
        folder = self.settings.data_dir / "embeddings"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uuid.uuid4().hex}.npy"  # not the audio id: ids may be personal data
        np.save(path, np.asarray(embedding, dtype=np.float32))
        return str(path.resolve())

    def open_stream(self, *, channel: str = "default", audio_id: str | None = None,
                    sample_format: str = "s16le") -> LiveStream:
        return LiveStream(self, channel, audio_id or uuid.uuid4().hex, sample_format)

    def health(self) -> dict:
        rules = self.rules_file.ruleset.rules
        return {"status": "degraded" if self.rules_file.last_error else "ok", "model_id": self.model_id,
                "classes": self.classes,
                "frame_rate": 1.0 / self.frame_period, "uptime_s": round(self.clock() - self.started, 1),
                "rules": {"count": len(rules), "version": self.rules_file.version, "file": self.rules_file.path.name,
                          "error": self.rules_file.last_error},
                "live_streams": self.live_streams, "journal_mode": self.store.journal_mode(),
                "webhooks": {"delivered": self.dispatcher.delivered, "dead_lettered": self.dispatcher.dead,
                             "pending": self.store.pending_deliveries()}}

"""``Predictor``: the one class that scores audio, for ``mmemo predict``, the monitor and the UI.

It loads any mmemo checkpoint or a FunASR emotion2vec(+) model (directory or hub id),
encodes clips in length-sorted padded batches, and gives per clip

* utterance output: the top label, its confidence and every class's probability;
* frame output (``granularity="frame"``): a :class:`Timeline` of per-frame probabilities,
  with timestamps, optional smoothing and merged :class:`Segment` s;
* optionally the pooled utterance embedding (masked mean of the speech encoder's frames).

Frame semantics (see :mod:`mmemo.inference.timeline`): frame *t*'s score is the head
applied to the window of ``smooth`` encoder frames centred on *t*. A window covering the
whole clip gives the utterance score, so the two granularities agree by construction.

A bad input (corrupt file, NaN samples, empty clip) gives a :class:`Prediction` with
``error`` set; it never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mmemo.data.audio import (
    SAMPLE_RATE,
    SILENCE_DBFS,
    check_seconds,
    load_audio,
    silence_peak,
)
from mmemo.data.batching import length_sorted_batches
from mmemo.encoders.base import EncoderOutput
from mmemo.errors import InvalidInput, MediaError
from mmemo.fusion.base import masked_mean
from mmemo.inference.faces import encode_tracks, face_timeline, input_track, trained_video_options
from mmemo.inference.inputs import InputItem, collect_inputs
from mmemo.inference.long_clips import long_frame_logits, stream_file_timeline
from mmemo.inference.models import ClassifierModel, ScoringModel, load_scoring_model
from mmemo.inference.predictions import NON_FINITE, Prediction, check_waveform
from mmemo.inference.timeline import (
    Segment,
    Timeline,
    frame_times,
    merge_segments,
    softmax,
    window_moments,
    window_sequences,
)

__all__ = ["GRANULARITIES", "Predictor", "Segment", "Timeline"]

log = logging.getLogger(__name__)

GRANULARITIES = ("utterance", "frame")
#: Predictor options (the rest of ``from_source``'s options go to the model loader).
#: Defaults of the predictor's batching, also those of ``mmemo predict``.
BATCH_SIZE, BATCH_SECONDS, MAX_SECONDS = 16, 32.0, 30.0
PREDICTOR_OPTIONS = ("batch_seconds", "batch_size", "max_seconds", "window_rows", "silence_dbfs")
class Predictor:
    """Batched, length-bucketed scoring of 16 kHz waveforms with one loaded model.

    ``batch_seconds``: padded audio per batch (memory bound); ``batch_size``: clips per batch;
    ``max_seconds``: longest audio encoded in one pass. Longer clips are cropped to their
    first ``max_seconds`` for utterance output (``Prediction.cropped``); their frame
    timeline still covers the whole clip, encoded in overlapping windows like a stream and,
    for files, decoded block by block (memory does not grow with the file's length).
    ``silence_dbfs``: files whose peak is below this level are reported as silent.
    """

    sample_rate: int = SAMPLE_RATE

    def __init__(self, model: ScoringModel, device: str | torch.device = "cpu", *, batch_seconds: float = BATCH_SECONDS,
                 batch_size: int = BATCH_SIZE, max_seconds: float = MAX_SECONDS, window_rows: int = 512,
                 silence_dbfs: float | None = SILENCE_DBFS):
        if model.speech is None:
            raise InvalidInput(f"{model.model_id} has no speech encoder (a text-only model): "
                             "prediction classifies audio")
        if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
            raise InvalidInput(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        check_seconds(batch_seconds, "batch_seconds")
        check_seconds(max_seconds, "max_seconds")
        silence_peak(silence_dbfs)
        self.silence_dbfs = silence_dbfs
        self.model = model
        self.device = torch.device(device)
        self.batch_seconds = float(batch_seconds)
        self.batch_size = int(batch_size)
        self.max_seconds = float(max_seconds)
        self.window_rows = int(window_rows)
        self.classes: list[str] = list(model.classes)
        #: Dimensions (arousal, valence, ...) the model predicts; its outputs are [classes | dimensions].
        self.dimensions: list[str] = list(model.dimensions)
        self.model_id: str = model.model_id
        self.frame_rate: float = float(model.speech.frame_rate)
        #: Face tracks are made as the model was trained (its data.video options), for video models.
        self.video_options = trained_video_options(model.classifier) if model.video is not None else None

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_source(cls, source: str | Path, device: str = "cpu", **options) -> Predictor:
        """An mmemo checkpoint (.ckpt), a FunASR emotion2vec(+) directory, or a hub id.

        Options named in :data:`PREDICTOR_OPTIONS` configure the predictor; the others go to
        the FunASR encoder (e.g. ``compute_dtype="bfloat16"``).
        """
        own = {k: options.pop(k) for k in list(options) if k in PREDICTOR_OPTIONS}
        return cls(load_scoring_model(source, device, **options), device, **own)

    @classmethod
    def from_classifier(cls, classifier: torch.nn.Module, model_id: str = "in-memory", device: str = "cpu",
                        **options) -> Predictor:
        """An EmotionClassifier already in memory (tests, notebooks, just after training)."""
        return cls(ClassifierModel(classifier, model_id).to(device), device, **options)

    @property
    def samples_per_frame(self) -> int:
        """Audio samples per encoder frame (the encoders' total stride)."""
        return int(round(self.sample_rate / self.frame_rate))

    @property
    def supports_frames(self) -> bool:
        return self.model.supports_frames

    # -- public API ----------------------------------------------------------------------
    def predict_waveforms(self, waveforms: list[np.ndarray], ids: list[str], granularity: str = "utterance",
                          embeddings: bool = False, smooth: int = 1, texts: list[str] | None = None,
                          durations: list[float] | None = None, paths: list[str | None] | None = None,
                          on_batch: Callable[[int], None] | None = None, tracks: list | None = None
                          ) -> list[Prediction]:
        """Score 16 kHz mono float waveforms ([S] each). A bad waveform gives an error Prediction.

        ``texts``: transcripts for a model with a text branch ("" or None = no transcript;
        without any, the head uses its missing-modality path). ``durations`` (seconds) override
        ``len / 16000`` when the waveforms are crops of longer files. ``on_batch(n)`` is called
        after each batch of ``n`` clips (progress bars). ``tracks``: each clip's face track (None:
        no video) for a model with a video branch.
        """
        self._check_request(granularity, smooth)
        if len(ids) != len(waveforms) or (texts is not None and len(texts) != len(waveforms)):
            raise InvalidInput(f"got {len(waveforms)} waveforms, {len(ids)} ids"
                             + ("" if texts is None else f" and {len(texts)} texts"))
        results: list[Prediction | None] = [None] * len(waveforms)
        waves: dict[int, np.ndarray] = {}
        for index, wave in enumerate(waveforms):
            path = paths[index] if paths else None
            try:
                waves[index] = check_waveform(wave)
            except ValueError as error:
                results[index] = Prediction.failed(ids[index], f"{ids[index]}: {error}", path)
        order = list(waves)
        one_pass = {i: waves[i][: int(self.max_seconds * self.sample_rate)] for i in order}
        batches = length_sorted_batches([len(one_pass[i]) for i in order],
                                        int(self.batch_seconds * self.sample_rate), self.batch_size)
        for batch in batches:
            members = [order[j] for j in batch]
            for index, prediction in zip(members, self._predict_batch(
                    [one_pass[i] for i in members], [waves[i] for i in members], [ids[i] for i in members],
                    [texts[i] if texts else None for i in members], granularity, embeddings, smooth,
                    [tracks[i] if tracks else None for i in members])):
                prediction.path = paths[index] if paths else None
                if durations is not None:
                    prediction.duration = float(durations[index])
                results[index] = prediction
            if on_batch is not None:
                on_batch(len(members))
        return [r for r in results if r is not None]

    def predict_files(self, paths: list[str | Path], granularity: str = "utterance", embeddings: bool = False,
                      smooth: int = 1, progress: bool = True, audio_root: str | Path | None = None,
                      use_text: bool = True, chunk: int = 128) -> list[Prediction]:
        """Files, folders (recursive) or jsonl manifests; one Prediction per clip, errors per clip.

        Clips are decoded ``chunk`` at a time (bounded memory), each chunk scored in
        length-sorted batches. Manifest transcripts feed a text branch when ``use_text``.
        """
        return self.predict_items(collect_inputs(paths, audio_root), granularity, embeddings, smooth,
                                  progress, use_text, chunk)

    def predict_items(self, items: list[InputItem], granularity: str = "utterance", embeddings: bool = False,
                      smooth: int = 1, progress: bool = True, use_text: bool = True, chunk: int = 128
                      ) -> list[Prediction]:
        from tqdm.auto import tqdm

        self._check_request(granularity, smooth)
        results: list[Prediction] = []
        bar = tqdm(total=len(items), unit="clip", desc="predict", disable=not progress or len(items) < 10)
        try:
            for begin in range(0, len(items), chunk):
                part = items[begin: begin + chunk]
                loaded: list[tuple[int, np.ndarray, float]] = []
                done: dict[int, Prediction] = {}
                tracks: dict[int, object] = {}
                for index, item in enumerate(part):
                    if item.error is not None:
                        done[index] = Prediction.failed(item.audio_id, item.error, _str(item.path))
                        continue
                    try:
                        # never more than max_seconds in memory: a longer clip's frames are streamed below
                        clip = load_audio(item.path, key=self._error_key(item), start=item.start, end=item.end,
                                          max_seconds=self.max_seconds, silence_dbfs=self.silence_dbfs)
                        track = input_track(item, self.video_options) if self.video_options else None
                    except MediaError as error:
                        done[index] = Prediction.failed(item.audio_id, str(error), _str(item.path))
                        continue
                    tracks[index] = track
                    loaded.append((index, clip.wave, clip.source_seconds if not clip.cropped else
                                   max(clip.source_seconds, self.max_seconds + 1e-3)))
                bar.update(len(done))
                if loaded:
                    texts = [part[i].text or "" for i, _, _ in loaded] if use_text and self.model.text else None
                    scored = self.predict_waveforms([w for _, w, _ in loaded], [part[i].audio_id for i, _, _ in loaded],
                                                    granularity, embeddings, smooth, texts,
                                                    durations=[d for _, _, d in loaded],
                                                    paths=[_str(part[i].path) for i, _, _ in loaded],
                                                    on_batch=bar.update, tracks=[tracks[i] for i, _, _ in loaded])
                    for (index, _, seconds), prediction in zip(loaded, scored):
                        prediction.cropped = prediction.cropped or seconds > self.max_seconds + 1e-6
                        if prediction.cropped and granularity == "frame" and prediction.ok:
                            prediction = stream_file_timeline(self, part[index], prediction, smooth,
                                                                    part[index].text if texts else None)
                        done[index] = prediction
                results += [done[i] for i in range(len(part))]
        finally:
            bar.close()
        failed = [r for r in results if r.error]
        if failed:
            log.warning("%d of %d inputs failed (reported per input)", len(failed), len(results))
        return results

    @staticmethod
    def _error_key(item: InputItem) -> str | None:
        return None if item.audio_id == str(item.path) else item.audio_id  # no id twice in errors

    def frame_scores(self, waveform: np.ndarray, smooth: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Frame times [T] (s, frame centres) and probabilities [T,C] for one waveform."""
        times, logits = self.frame_logits(waveform, smooth)
        return times, softmax(self.split(logits)[0])

    def split(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The model's outputs [..., C+D] as class logits [..., C] and dimension values [..., D] (None: no
        dimensions)."""
        count = len(self.classes)
        return outputs[..., :count], (outputs[..., count:] if self.dimensions else None)

    def frame_logits(self, waveform: np.ndarray, smooth: int = 1, text: str | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Frame times [T] and outputs [T,C(+D)] (:meth:`split`); audio beyond ``max_seconds`` is encoded in
        overlapping windows."""
        self._check_request("frame", smooth)
        wave = check_waveform(waveform)
        if len(wave) > self.max_seconds * self.sample_rate:
            return long_frame_logits(self, wave, smooth, text)
        with torch.inference_mode():
            feats, _ = self._encode([wave], [text])
            logits = self._window_logits(feats, 0, smooth)
        return frame_times(len(logits), self.frame_rate), logits

    def segment_frame_logits(self, samples: np.ndarray, smooth: int = 1, text: str | None = None) -> np.ndarray:
        """Logits [T,C] of every frame of ``samples`` encoded as one clip (the stream's building block)."""
        with torch.inference_mode():
            feats, _ = self._encode([check_waveform(samples)], [text])
            return self._window_logits(feats, 0, smooth)

    def utterance_logits_of_frames(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """The head's logits [C] for one clip's speech frames [T,D] given as a sequence (no text)."""
        frames = torch.as_tensor(np.asarray(frames), dtype=torch.float32, device=self.device)[None]
        mask = torch.ones(frames.shape[:2], dtype=torch.bool, device=self.device)
        with torch.inference_mode():
            return self.model.logits({"speech": EncoderOutput(frames, mask)})[0].float().cpu().numpy()

    def speech_frames(self, waveform: np.ndarray) -> np.ndarray:
        """The speech encoder's valid frames [T,D] for one waveform (what heads and embeddings see)."""
        with torch.inference_mode():
            feats, _ = self._encode([check_waveform(waveform)], [None])
        speech = feats["speech"]
        return speech.frames[0][speech.mask[0]].float().cpu().numpy()

    # -- internals -----------------------------------------------------------------------
    def _check_request(self, granularity: str, smooth: int) -> None:
        if granularity not in GRANULARITIES:
            raise InvalidInput(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        if not isinstance(smooth, (int, np.integer)) or smooth < 1:
            raise InvalidInput(f"smooth must be a whole number of frames >= 1, got {smooth!r}")
        if granularity == "frame" and not self.model.supports_frames:
            raise NotImplementedError(f"{self.model_id} has no head that scores frames "
                                      f"({type(getattr(self.model, 'classifier', self.model)).__name__}); "
                                      "use granularity=utterance")

    def _encode(self, waves: list[np.ndarray], texts: list[str | None],
                tracks: list | None = None) -> tuple[dict[str, EncoderOutput], dict]:
        """Padded batch -> {"speech", "text", "video"} (text only with a transcript, video only with a track)."""
        lengths = torch.tensor([len(w) for w in waves])
        audio = torch.zeros(len(waves), int(lengths.max()), dtype=torch.float32)
        for row, wave in enumerate(waves):
            audio[row, : len(wave)] = torch.from_numpy(wave)
        audio_mask = torch.arange(audio.shape[1])[None, :] < lengths[:, None]
        batch = {"audio": audio.to(self.device), "audio_mask": audio_mask.to(self.device)}
        feats = {"speech": self.model.speech(batch["audio"], batch["audio_mask"])}
        if self.model.text is not None and any(t and str(t).strip() for t in texts):
            batch["text"] = [str(t or "") for t in texts]
            text = self.model.text(batch["text"])
            present = torch.tensor([bool(t.strip()) for t in batch["text"]], device=text.mask.device)
            feats["text"] = EncoderOutput(text.frames, text.mask & present[:, None])
        if self.model.video is not None and tracks and any(t is not None for t in tracks):
            feats["video"] = encode_tracks(self.model.video, tracks, self.video_options, self.device)
        return feats, batch

    def _predict_batch(self, waves: list[np.ndarray], full: list[np.ndarray], ids: list[str],
                       texts: list[str | None], granularity: str, embeddings: bool, smooth: int,
                       tracks: list | None = None) -> list[Prediction]:
        tracks = tracks or [None] * len(waves)
        try:
            return self._score_batch(waves, full, ids, texts, granularity, embeddings, smooth, tracks)
        except (RuntimeError, ValueError) as error:
            if len(waves) == 1:
                return [Prediction.failed(ids[0], f"{ids[0]}: model failed on this clip "
                                                  f"({type(error).__name__}: {error})")]
            log.warning("a batch of %d clips failed (%s); scoring them one by one", len(waves), error)
            return [p for i in range(len(waves)) for p in self._predict_batch(
                waves[i:i + 1], full[i:i + 1], ids[i:i + 1], texts[i:i + 1], granularity, embeddings, smooth,
                tracks[i:i + 1])]

    def _score_batch(self, waves: list[np.ndarray], full: list[np.ndarray], ids: list[str],
                     texts: list[str | None], granularity: str, embeddings: bool, smooth: int,
                     tracks: list) -> list[Prediction]:
        with torch.inference_mode():
            feats, batch = self._encode(waves, texts, tracks)
            logits = self.model.logits(feats, batch).float()
            pooled = masked_mean(feats["speech"].frames, feats["speech"].mask).float().cpu().numpy() \
                if embeddings else None
            out = []
            for row, wave in enumerate(waves):
                row_outputs = logits[row].cpu().numpy()
                row_logits, row_values = self.split(row_outputs)
                if not np.isfinite(row_outputs).all():
                    out.append(Prediction.failed(ids[row], f"{ids[row]}: {NON_FINITE}",
                                                 duration=len(full[row]) / self.sample_rate))
                    continue
                probs = softmax(row_logits[None])[0]
                top = int(probs.argmax())
                prediction = Prediction(ids[row], self.classes[top], float(probs[top]),
                                        {c: float(p) for c, p in zip(self.classes, probs)},
                                        len(full[row]) / self.sample_rate, logits=row_logits,
                                        cropped=len(full[row]) > len(wave))
                if row_values is not None:
                    prediction.dimensions = {d: float(v) for d, v in zip(self.dimensions, row_values)}
                if pooled is not None:
                    prediction.embedding = pooled[row]
                if granularity == "frame":
                    if len(full[row]) > len(wave):
                        times, frame_logits = long_frame_logits(self, full[row], smooth, texts[row])
                    else:
                        frame_logits = self._window_logits(feats, row, smooth)
                        times = frame_times(len(frame_logits), self.frame_rate)
                    if not np.isfinite(frame_logits).all():
                        out.append(Prediction.failed(ids[row], f"{ids[row]}: {NON_FINITE}",
                                                     duration=prediction.duration))
                        continue
                    prediction.timeline = self._timeline(times, frame_logits, smooth, len(full[row]))
                    if "video" in feats:
                        prediction.face_timeline = face_timeline(self.model, feats["video"], row, smooth,
                                                                 self.classes, self.model.video.frame_rate)
                out.append(prediction)
        return out

    def _timeline(self, times: np.ndarray, outputs: np.ndarray, smooth: int, samples: int) -> Timeline:
        logits, values = self.split(outputs)
        scores = softmax(logits)
        return Timeline(times, scores, merge_segments(times, scores, self.classes, self.frame_rate,
                                                      samples / self.sample_rate),
                        logits=logits, classes=list(self.classes), frame_rate=self.frame_rate, smooth=smooth,
                        values=values, dimensions=list(self.dimensions))

    def _window_logits(self, feats: dict[str, EncoderOutput], row: int, smooth: int) -> np.ndarray:
        """Logits [T,C] of each frame's window of clip ``row`` (text, if any, is the whole transcript)."""
        speech = feats["speech"]
        frames = speech.frames[row][speech.mask[row]]  # [T,D]
        count = frames.shape[0]
        text = feats.get("text")
        chunks = []
        rows_per_chunk = max(1, self.window_rows if not self.model.needs_frames
                             else self.window_rows * 32 // max(smooth, 32))
        summaries = None if self.model.needs_frames else window_moments(frames, smooth)
        for begin in range(0, count, rows_per_chunk):
            rows = slice(begin, min(count, begin + rows_per_chunk))
            if summaries is not None:  # a pooling head reads only each window's moments
                window = summaries[rows]
                mask = torch.ones(window.shape[:2], dtype=torch.bool, device=window.device)
                window_feats = {"speech": EncoderOutput(window, mask, moments=True)}
            else:
                window, mask = window_sequences(frames, smooth, rows)
                window_feats = {"speech": EncoderOutput(window, mask)}
            if text is not None:
                size = window.shape[0]
                window_feats["text"] = EncoderOutput(text.frames[row: row + 1].expand(size, -1, -1),
                                                     text.mask[row: row + 1].expand(size, -1))
            chunks.append(self.model.logits(window_feats).float().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.classes) + len(self.dimensions)),
                                                              np.float32)

def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)

"""``mmemo predict`` as a plain function: load a model, score the inputs, write the results."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from mmemo.arguments import option, optional_dbfs
from mmemo.data.audio import SILENCE_DBFS
from mmemo.errors import InvalidInput, MediaError
from mmemo.inference.outputs import render_predictions, save_embeddings, write_text
from mmemo.inference.predictions import Prediction
from mmemo.inference.predictor import BATCH_SECONDS, BATCH_SIZE, MAX_SECONDS, Predictor

log = logging.getLogger(__name__)

#: The model used when ``--model`` is not given.
DEFAULT_MODEL = "iic/emotion2vec_plus_base"


@dataclass
class PredictSummary:
    predictions: list[Prediction]
    output: Path | None
    embeddings_index: Path | None

    @property
    def failed(self) -> list[Prediction]:
        return [p for p in self.predictions if p.error]

    def render(self) -> str:
        """One line per failed input, then a count (what the command prints to stderr)."""
        lines = [f"error: {p.error}" for p in self.failed]
        lines.append(f"{len(self.predictions) - len(self.failed)} of {len(self.predictions)} inputs predicted"
                     + (f", written to {self.output}" if self.output else "")
                     + (f"; embeddings indexed in {self.embeddings_index}" if self.embeddings_index else ""))
        return "\n".join(lines)


@dataclass
class PredictOptions:
    """What ``mmemo predict`` can be told (its command line is derived from these fields)."""

    model: str = option(DEFAULT_MODEL, help="mmemo checkpoint (.ckpt), FunASR emotion2vec(+) folder or hub id")
    granularity: str = option("utterance", choices=("utterance", "frame"),
                              help="one score per clip, or a frame timeline")
    embeddings_dir: Path | None = option(None, flag="--embeddings", metavar="DIR",
                                         help="save pooled embeddings (.npy + index.jsonl)")
    fmt: str = option("json", flag="--format", choices=("json", "jsonl", "csv"), help="output format")
    out: Path | None = option(None, help="result file (default: stdout)")
    batch_size: int = option(BATCH_SIZE, help="clips per batch")
    batch_seconds: float = option(BATCH_SECONDS, help="padded audio per batch, seconds")
    smooth: int = option(1, help="frame window N (frames) the head scores; 1 = none")
    max_seconds: float = option(MAX_SECONDS, help="longest audio encoded at once; utterance scores use the "
                                                  "first MAX_SECONDS")
    audio_root: Path | None = option(None, help="where a manifest's relative wav paths point (default: as in "
                                                "training: the corpus.json audio root, else the corpus root)")
    silence_dbfs: float | None = option(SILENCE_DBFS, parse=optional_dbfs,
                                        help="files whose peak is below this level (dBFS) are reported as silent; "
                                             "none: no check")
    device: str = option("cpu", help="torch device")
    use_text: bool = option(True, flag="--no-text", help="ignore manifest transcripts")
    progress: bool = option(True, help="no progress bar")
    # generated reasons (docs/llm.md): off by default, a language model generation per clip
    explain: bool = option(False, help="add a short reason per clip written by a language model (marked as "
                                       "generated; slow); utterance granularity, not with --segments vad")
    explain_model: str = option("smollm2", metavar="LM", help="the explaining LM: smollm2 (packaged), a .gguf "
                                                              "file, a transformers folder or a hub id")
    explain_tokens: int = option(64, help="longest generated reason, tokens")
    # long recordings (docs/long_recordings.md)
    segments: str = option("none", choices=("none", "vad"),
                           help="vad: cut each input into speech segments and score each (long recordings)")
    diarize: bool = option(False, help="with --segments vad: find who speaks when (speaker turns, RTTM)")
    num_speakers: int | None = option(None, help="with --diarize: the number of speakers (default: estimated)")
    asr: str | None = option(None, metavar="WHISPER", help="transcribe each input (each segment with --segments "
                                                           "vad) with this Whisper model (name, .pt, HF or "
                                                           "CTranslate2 folder); the transcript feeds a text branch")
    asr_language: str | None = option("en", help="the ASR language (multilingual models; 'auto': detect)")
    asr_cache: Path = option(Path("cache/transcripts"), help="segment transcripts cached here by model fingerprint")
    vad_threshold: float = option(0.5, help="speech probability threshold")
    min_speech: float = option(0.25, help="shortest speech segment kept, seconds")
    min_silence: float = option(0.3, help="shortest pause that ends a segment, seconds")
    vad_padding: float = option(0.1, help="seconds added on each side of a segment")
    vad_padding_after: float | None = option(None, help="seconds added after a segment, when it differs from "
                                                        "--vad-padding (e.g. the training clips' trailing silence)")
    max_segment: float = option(20.0, help="longer segments are split at their quietest point, seconds")


def predict(paths: list[str | Path], options: PredictOptions | None = None, **changes) -> PredictSummary:
    """Score files, folders or manifests and write the results (``out``, or stdout when None).

    ``options`` (default :class:`PredictOptions`), with any field replaced by ``changes``.
    Bad inputs are reported in the results (``error``) and in the summary; they never stop
    the others. Embeddings are written to ``embeddings_dir`` when given.
    """
    o = replace(options or PredictOptions(), **changes)
    if not paths:
        raise InvalidInput("nothing to predict: give audio files, folders or manifests")
    predictor = Predictor.from_source(o.model, o.device, batch_size=o.batch_size, batch_seconds=o.batch_seconds,
                                      max_seconds=o.max_seconds, silence_dbfs=o.silence_dbfs)
    if o.segments == "vad":
        if o.explain:
            raise InvalidInput("--explain gives one reason per clip; with --segments vad it is not built yet "
                               "(predict the segments' clips, or drop --explain)")
        return predict_long(paths, o, predictor)
    if o.diarize:
        raise InvalidInput("--diarize works on speech segments: add --segments vad")
    explainer = None
    if o.explain:
        if o.granularity != "utterance":
            raise InvalidInput("--explain gives one reason per clip: use --granularity utterance")
        from mmemo.llm.rationales import Explainer

        explainer = Explainer(o.explain_model, max_tokens=o.explain_tokens)
    from mmemo.inference.inputs import collect_inputs

    items = transcribed_inputs(paths, o) if o.asr else collect_inputs(paths, o.audio_root)
    predictions = predictor.predict_items(items, granularity=o.granularity, embeddings=o.embeddings_dir is not None,
                                          smooth=o.smooth, progress=o.progress, use_text=o.use_text or bool(o.asr))
    if explainer is not None:
        explain_predictions(explainer, items, predictions, o)
    text = render_predictions(predictions, o.fmt, predictor.classes, predictor.dimensions)
    if o.out is None:
        sys.stdout.write(text)
        output = None
    else:
        output = write_text(text, o.out)
    index = save_embeddings(predictions, o.embeddings_dir, predictor.model_id) if o.embeddings_dir else None
    return PredictSummary(predictions, output, index)


def explain_predictions(explainer, items: list, predictions: list[Prediction], o: PredictOptions) -> None:
    """Attach a generated reason to every clip that was predicted (its audio read again, cropped as scored)."""
    from tqdm.auto import tqdm

    from mmemo.data.audio import load_audio

    for item, prediction in tqdm(list(zip(items, predictions)), desc="explain", unit="clip",
                                 disable=not o.progress or len(items) < 2):
        if not prediction.ok or item.path is None:
            continue
        try:
            wave = load_audio(item.path, start=item.start, end=item.end, max_seconds=o.max_seconds).wave
        except MediaError:
            wave = None
        text = item.text if (o.use_text or o.asr) else None
        prediction.rationale = explainer.explain(prediction.label, prediction.confidence, text, wave).to_dict()


def predict_long(paths: list[str | Path], o: PredictOptions, predictor: Predictor) -> PredictSummary:
    """``--segments vad``: each input file through VAD (+ diarization, + ASR) and the model per segment.

    With ``--out DIR``, each input writes ``<stem>.json``, ``<stem>.segments.csv`` and ``<stem>.rttm``
    there; without it, one JSON document per input goes to stdout. A failing input is reported and
    the others go on.
    """
    import json

    from mmemo.inference.inputs import collect_inputs
    from mmemo.longform.outputs import write_long_form
    from mmemo.longform.pipeline import LongFormOptions, LongFormPipeline
    from mmemo.longform.vad import VadOptions

    vad = VadOptions(threshold=o.vad_threshold, min_speech=o.min_speech, min_silence=o.min_silence,
                     padding=o.vad_padding, padding_after=o.vad_padding_after,
                     max_segment=min(o.max_segment, o.max_seconds))
    pipeline = LongFormPipeline(predictor, LongFormOptions(
        vad=vad, diarize=o.diarize, num_speakers=o.num_speakers, asr=o.asr,
        asr_language=None if (o.asr_language or "").lower() == "auto" else o.asr_language,
        asr_cache=str(o.asr_cache), granularity=o.granularity, smooth=o.smooth))
    predictions: list[Prediction] = []
    for item in collect_inputs(paths, o.audio_root):
        if item.error is not None or item.path is None:
            predictions.append(Prediction.failed(item.audio_id, item.error or "no file", None))
            continue
        try:
            result = pipeline.run(item.path, item.audio_id, progress=o.progress)
        except (InvalidInput, MediaError) as error:
            predictions.append(Prediction.failed(item.audio_id, str(error), str(item.path)))
            continue
        if o.out is None:
            sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        else:
            write_long_form(result, o.out)
        predictions.append(Prediction(item.audio_id, None, None, {}, result.duration,
                                      path=str(item.path)))
    return PredictSummary(predictions, o.out, None)


def transcribed_inputs(paths: list[str | Path], o: PredictOptions) -> list:
    """Inputs whose text is Whisper's transcript of their first 30 s (``--asr`` without segments)."""
    import dataclasses

    from mmemo.data.audio import load_audio
    from mmemo.inference.inputs import collect_inputs
    from mmemo.longform.transcripts import SegmentTranscriber

    transcriber = SegmentTranscriber(o.asr, language=None if (o.asr_language or "").lower() == "auto"
                                     else o.asr_language, cache_dir=o.asr_cache)
    items = []
    for item in collect_inputs(paths, o.audio_root):
        if item.error is None and item.path is not None:
            try:
                wave = load_audio(item.path, start=item.start, end=item.end, max_seconds=30.0).wave
            except MediaError:
                items.append(item)  # the predictor reports the file's problem
                continue
            item = dataclasses.replace(item, text=transcriber.transcribe(wave, item.start or 0.0)["text"])
        items.append(item)
    return items

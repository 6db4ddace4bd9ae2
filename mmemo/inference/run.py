"""``mmemo predict`` as a plain function: load a model, score the inputs, write the results."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from mmemo.arguments import option, optional_dbfs
from mmemo.data.audio import SILENCE_DBFS
from mmemo.errors import InvalidInput
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
    predictions = predictor.predict_files(paths, granularity=o.granularity, embeddings=o.embeddings_dir is not None,
                                          smooth=o.smooth, progress=o.progress, audio_root=o.audio_root,
                                          use_text=o.use_text)
    text = render_predictions(predictions, o.fmt, predictor.classes)
    if o.out is None:
        sys.stdout.write(text)
        output = None
    else:
        output = write_text(text, o.out)
    index = save_embeddings(predictions, o.embeddings_dir, predictor.model_id) if o.embeddings_dir else None
    return PredictSummary(predictions, output, index)

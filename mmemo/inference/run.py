"""``mmemo predict`` as a plain function: load a model, score the inputs, write the results."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from mmemo.data.audio import SILENCE_DBFS
from mmemo.inference.outputs import render_predictions, save_embeddings, write_text
from mmemo.inference.predictor import Prediction, Predictor

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


def predict(paths: list[str | Path], model: str | Path = DEFAULT_MODEL, *, granularity: str = "utterance",
            embeddings_dir: str | Path | None = None, fmt: str = "json", out: str | Path | None = None,
            batch_size: int = 16, batch_seconds: float = 32.0, smooth: int = 1, max_seconds: float = 30.0,
            audio_root: str | Path | None = None, device: str = "cpu", progress: bool = True,
            use_text: bool = True, silence_dbfs: float | None = SILENCE_DBFS) -> PredictSummary:
    """Score files, folders or manifests and write the results (``out``, or stdout when None).

    Bad inputs are reported in the results (``error``) and in the summary; they never stop
    the others. Embeddings are written to ``embeddings_dir`` when given.
    """
    if not paths:
        raise ValueError("nothing to predict: give audio files, folders or manifests")
    predictor = Predictor.from_source(model, device, batch_size=batch_size, batch_seconds=batch_seconds,
                                      max_seconds=max_seconds, silence_dbfs=silence_dbfs)
    predictions = predictor.predict_files(paths, granularity=granularity, embeddings=embeddings_dir is not None,
                                          smooth=smooth, progress=progress, audio_root=audio_root,
                                          use_text=use_text)
    text = render_predictions(predictions, fmt, predictor.classes)
    if out is None:
        sys.stdout.write(text)
        output = None
    else:
        output = write_text(text, out)
    index = save_embeddings(predictions, embeddings_dir, predictor.model_id) if embeddings_dir else None
    return PredictSummary(predictions, output, index)

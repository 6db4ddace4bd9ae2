"""What a prediction gives back: :class:`Prediction` per clip, and the checks every input passes.

Kept apart from :mod:`~mmemo.inference.predictor` so streaming (which the predictor uses for
long clips) can build results without importing the predictor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmemo.errors import InvalidInput
from mmemo.inference.timeline import Timeline

#: Why a clip's result is refused when the model's scores are not numbers.
NON_FINITE = "the model produced non-finite scores (NaN or infinity) for this clip"


@dataclass
class Prediction:
    """One clip's result. On failure ``error`` says why and the score fields are empty."""

    audio_id: str
    label: str | None
    confidence: float | None
    scores: dict[str, float]
    duration: float
    timeline: Timeline | None = None
    embedding: np.ndarray | None = None
    error: str | None = None
    #: Utterance scores were computed on the first ``max_seconds`` of a longer clip.
    cropped: bool = False
    path: str | None = None
    logits: np.ndarray | None = field(default=None, repr=False)
    #: A video model's face timeline (the head on each face frame window alone; mmemo.inference.faces).
    face_timeline: Timeline | None = None
    #: Predicted dimensions (arousal, valence, ...) on the normalised [0, 1] scale, for models that have them.
    dimensions: dict[str, float] | None = None
    #: ``--explain``: a language model's generated reason (mmemo.llm.rationales; marked ``generated``).
    rationale: dict | None = None

    @classmethod
    def failed(cls, audio_id: str, error: str, path: str | None = None, duration: float = 0.0) -> Prediction:
        return cls(audio_id, None, None, {}, duration, error=error, path=path)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self, embedding: bool = False) -> dict:
        """JSON-ready: floats rounded to 5 digits; the embedding only when asked (it is saved as .npy)."""
        out = {"audio_id": self.audio_id, "label": self.label,
               "confidence": None if self.confidence is None else round(self.confidence, 5),
               "scores": {k: round(v, 5) for k, v in self.scores.items()},
               "duration": round(self.duration, 3), "error": self.error}
        if self.path is not None:
            out["path"] = self.path
        if self.cropped:
            out["cropped"] = True
        if self.dimensions is not None:
            out["dimensions"] = {k: round(v, 5) for k, v in self.dimensions.items()}
        if self.timeline is not None:
            out["timeline"] = self.timeline.to_dict()
        if self.face_timeline is not None:
            out["face_timeline"] = self.face_timeline.to_dict()
        if self.rationale is not None:
            out["rationale"] = self.rationale
        if embedding and self.embedding is not None:
            out["embedding"] = [round(float(v), 6) for v in self.embedding]
        return out


def check_waveform(wave: np.ndarray) -> np.ndarray:
    """A 1-D finite float waveform as contiguous float32, or ValueError saying what is wrong."""
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise InvalidInput(f"expected a mono waveform [samples], got shape {wave.shape}")
    if wave.size == 0:
        raise InvalidInput("empty waveform (0 samples)")
    if not np.issubdtype(wave.dtype, np.floating):
        raise InvalidInput(f"expected float samples in [-1, 1], got dtype {wave.dtype}")
    if not np.isfinite(wave).all():
        raise InvalidInput("waveform contains NaN or infinite samples")
    return np.ascontiguousarray(wave, dtype=np.float32)

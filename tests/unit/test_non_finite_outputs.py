"""A model that outputs NaN or infinity: refused per clip in prediction, never written as invalid JSON,
never averaged into test metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mmemo.inference import Predictor, StreamSession
from mmemo.inference.outputs import render_predictions
from mmemo.inference.predictions import NON_FINITE
from mmemo.inference.stream import NonFiniteScores
from mmemo.training.errors import NonFiniteScoresError
from mmemo.training.module import EmotionClassifier

SPECTRAL = {"_target_": "mmemo.encoders.spectral.SpectralEncoder", "dim": 16, "ff_dim": 32, "heads": 2,
            "transformer_layers": 1, "dropout": 0.0}
CLASSES = ["angry", "happy", "neutral", "sad"]


def broken(value: float) -> EmotionClassifier:
    """A classifier whose head's bias is ``value`` (NaN or infinity): every score is non-finite."""
    torch.manual_seed(0)
    model = EmotionClassifier(CLASSES, speech=dict(SPECTRAL), fusion={"name": "linear"}).eval()
    with torch.no_grad():
        bias = [p for name, p in model.head.named_parameters() if name.endswith("bias")][-1]
        bias[1] = value
    return model


def waves(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(8000 + 4000 * i)).astype(np.float32) for i in range(n)]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("granularity", ["utterance", "frame"])
def test_non_finite_scores_fail_the_clip_and_the_output_stays_valid_json(value, granularity):
    predictor = Predictor.from_classifier(broken(value))
    predictions = predictor.predict_waveforms(waves(), ["a", "b", "c"], granularity=granularity)
    assert [p.error for p in predictions] == [f"{i}: {NON_FINITE}" for i in "abc"]
    for fmt in ("json", "jsonl"):
        text = render_predictions(predictions, fmt, CLASSES)
        parsed = [json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in output"))
                  for line in ([text] if fmt == "json" else text.splitlines())]
        assert len(parsed) == 1 if fmt == "json" else len(parsed) == 3


def test_a_stream_with_non_finite_scores_raises_instead_of_emitting():
    session = StreamSession(Predictor.from_classifier(broken(float("nan"))), hop_seconds=0.5,
                            context_seconds=0.25, lookahead_seconds=0.1)
    with pytest.raises(NonFiniteScores, match="non-finite scores"):
        session.push(np.concatenate(waves(3)))


def test_test_metrics_are_never_computed_over_non_finite_scores():
    model = broken(float("nan"))
    wav = torch.from_numpy(np.stack([w[:8000] for w in waves(4)]))
    batch = {"audio": wav, "audio_mask": torch.ones_like(wav, dtype=torch.bool), "text": [""] * 4,
             "label": torch.tensor([0, 1, 2, 3]), "key": list("abcd"), "speaker": ["s"] * 4}
    model.log = lambda *args, **kwargs: None  # no trainer attached
    model.on_test_epoch_start()
    model.test_step(batch, 0)
    with pytest.raises(NonFiniteScoresError, match="4 of 4 test utterances got non-finite scores"):
        model._close_epoch("test")
    model.validation_step(batch, 0)  # validation logs the problem and goes on (training continues)
    model._close_epoch("val")
    assert model.results["val"]["nonfinite"] == 4 and not math.isnan(model.results["val"]["UA"])

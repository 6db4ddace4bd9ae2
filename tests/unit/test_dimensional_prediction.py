"""Prediction with a dimensional / multi-task model: dimensions per utterance and per frame, in every output."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch

from mmemo.inference import Predictor, StreamSession
from mmemo.inference.outputs import render_predictions
from mmemo.training.module import EmotionClassifier
from tests.unit.test_predictor import TINY_SPECTRAL, noise

CLASSES = ["angry", "happy", "neutral", "sad"]
DIMENSIONS = ["arousal", "valence"]


def dimensional_model(fusion: str, task: str = "multitask") -> EmotionClassifier:
    torch.manual_seed(0)
    return EmotionClassifier(CLASSES, speech=dict(TINY_SPECTRAL), fusion={"name": fusion, "dropout": 0.0},
                             task=task, dimensions=DIMENSIONS).eval()


@pytest.mark.parametrize("fusion", ["concat", "late", "cross_attention"])
def test_utterance_and_frame_dimensions_are_the_regression_head_on_the_clip_and_on_each_window(fusion):
    model = dimensional_model(fusion)
    predictor = Predictor.from_classifier(model, "tiny-multitask")
    assert predictor.dimensions == DIMENSIONS
    wave = noise(1.2, 3)
    (prediction,) = predictor.predict_waveforms([wave], ["x"], granularity="frame", smooth=3)
    frames = torch.from_numpy(predictor.speech_frames(wave))[None]
    from mmemo.encoders.base import EncoderOutput

    feats = {"speech": EncoderOutput(frames, torch.ones(frames.shape[:2], dtype=torch.bool))}
    with torch.no_grad():
        output = model.head(feats)
        expected = model.objective.regress(output)[0].numpy()
    assert list(prediction.dimensions) == DIMENSIONS
    np.testing.assert_allclose([prediction.dimensions[d] for d in DIMENSIONS], expected, atol=1e-5)
    np.testing.assert_allclose(prediction.logits, output.logits[0].numpy(), atol=1e-5)   # classes unchanged
    assert sum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-5)
    timeline = prediction.timeline
    assert timeline.values.shape == (len(timeline.times), 2) and timeline.scores.shape[1] == len(CLASSES)
    # a window covering the whole clip at every frame gives the utterance's dimensions
    whole = predictor.split(predictor.frame_logits(wave, smooth=2 * frames.shape[1])[1])[1]
    np.testing.assert_allclose(whole, np.repeat(expected[None], len(whole), 0), atol=1e-5)
    assert not np.allclose(timeline.values, timeline.values[:1])   # frames do differ
    record = prediction.to_dict()
    assert set(record["dimensions"]) == set(DIMENSIONS) and set(record["timeline"]["dimensions"]) == set(DIMENSIONS)
    assert len(record["timeline"]["dimensions"]["arousal"]) == len(timeline.times)


def test_csv_outputs_carry_a_column_per_dimension_and_categorical_models_none():
    predictor = Predictor.from_classifier(dimensional_model("concat", "dimensional"), "tiny-dim")
    waves = [noise(0.8, 1), noise(0.5, 2)]
    utterances = predictor.predict_waveforms(waves, ["a", "b"])
    rows = list(csv.DictReader(io.StringIO(render_predictions(utterances, "csv", CLASSES, DIMENSIONS))))
    assert [r["audio_id"] for r in rows] == ["a", "b"]
    assert [float(rows[0][d]) for d in DIMENSIONS] == pytest.approx([utterances[0].dimensions[d] for d in DIMENSIONS],
                                                                    abs=1e-5)
    framed = predictor.predict_waveforms(waves[:1], ["a"], granularity="frame")
    rows = list(csv.DictReader(io.StringIO(render_predictions(framed, "csv", CLASSES, DIMENSIONS))))
    assert len(rows) == len(framed[0].timeline.times)
    np.testing.assert_allclose([[float(r[d]) for d in DIMENSIONS] for r in rows], framed[0].timeline.values,
                               atol=1e-5)
    assert json.loads(render_predictions(framed, "json", CLASSES, DIMENSIONS))[0]["dimensions"].keys() == \
        set(DIMENSIONS)
    categorical = Predictor.from_classifier(EmotionClassifier(CLASSES, speech=dict(TINY_SPECTRAL)).eval(), "c")
    (plain,) = categorical.predict_waveforms(waves[:1], ["a"], granularity="frame")
    assert categorical.dimensions == [] and plain.dimensions is None and plain.timeline.values is None
    assert "dimensions" not in plain.to_dict()


def test_a_stream_reports_the_dimensions_of_the_frames_it_returns():
    predictor = Predictor.from_classifier(dimensional_model("concat"), "tiny")
    wave = noise(3.0, 4)
    session = StreamSession(predictor, hop_seconds=0.5, context_seconds=0.5, lookahead_seconds=0.2)
    seen = []
    for chunk in np.array_split(wave, 6):
        times, probs = session.push(chunk)
        assert probs.shape == (len(times), len(CLASSES))
        assert session.last_values.shape == (len(times), len(DIMENSIONS))
        seen.append(session.last_values)
    times, probs = session.finish()
    seen.append(session.last_values)
    values = np.concatenate(seen)
    assert len(values) == len(predictor.speech_frames(wave)) and np.isfinite(values).all()

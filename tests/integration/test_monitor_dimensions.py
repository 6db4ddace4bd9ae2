"""The monitor with a dimensional model: uploads and live streams report arousal/valence and fire
``type: dimensions`` rules; a rule on a dimension the model lacks is refused at start-up."""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient

from mmemo.inference.predictor import Predictor
from mmemo.monitor.rules import RulesError
from mmemo.monitor.service import create_app
from mmemo.training.module import EmotionClassifier
from tests.integration.test_monitor_service import make_settings, pcm16, stream, upload

CLASSES = ["angry", "happy", "neutral", "sad"]
TINY_SPECTRAL = {"_target_": "mmemo.encoders.spectral.SpectralEncoder", "dim": 32, "ff_dim": 64,
                 "transformer_layers": 1, "heads": 2, "dropout": 0.0}


@pytest.fixture(scope="module")
def agitated_model() -> Predictor:
    """A multi-task model whose regression head always says arousal 0.9, valence 0.1 (its last layer's bias)."""
    torch.manual_seed(0)
    model = EmotionClassifier(CLASSES, speech=dict(TINY_SPECTRAL), fusion={"name": "concat", "dropout": 0.0},
                              task="multitask", dimensions=["arousal", "valence"]).eval()
    last = [m for m in model.objective.regressor.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.9, 0.1]))
    return Predictor.from_classifier(model, "tiny-multitask")


def rules(tmp_path, when: str, duration: float = 0.5):
    path = tmp_path / "rules.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rules": [{"name": "agitated", "type": "dimensions", "when": when,
                                           "duration": duration, "cooldown": 0, "priority": "high"}]}))
    return path


def test_uploads_and_streams_carry_dimensions_and_fire_dimension_rules(tmp_path, agitated_model, db_url):
    settings = make_settings(tmp_path, db_url, rules=rules(tmp_path, "arousal >= 0.7 and valence <= 0.3"))
    with TestClient(create_app(settings, agitated_model)) as client:
        answer = upload(client).json()
        assert answer["prediction"]["dimensions"] == pytest.approx({"arousal": 0.9, "valence": 0.1}, abs=1e-5)
        timeline = answer["prediction"]["timeline"]["dimensions"]
        assert set(timeline) == {"arousal", "valence"} and min(timeline["arousal"]) == pytest.approx(0.9, abs=1e-5)
        fired = [a for a in answer["alerts"] if a["rule"] == "agitated"]
        assert fired and fired[0]["emotions"] == ["arousal", "valence"]
        assert fired[0]["end"] - fired[0]["start"] == pytest.approx(0.5, abs=0.03)
        with stream(client, "channel=line-2") as ws:
            assert ws.receive_json()["type"] == "ready"
            ws.send_bytes(pcm16(3.0))
            frames = ws.receive_json()
            while frames["type"] != "frames" or not frames["times"]:
                frames = ws.receive_json()
            assert len(frames["dimensions"]["arousal"]) == len(frames["times"])
    calm = make_settings(tmp_path / "calm", db_url, rules=rules(tmp_path / "calm", "arousal <= 0.5"))
    with TestClient(create_app(calm, agitated_model)) as client:
        assert upload(client).json()["alerts"] == []


def test_a_dimension_rule_for_a_model_without_dimensions_stops_the_service_with_the_rule_named(tmp_path, db_url):
    torch.manual_seed(0)
    categorical = Predictor.from_classifier(EmotionClassifier(CLASSES, speech=dict(TINY_SPECTRAL)).eval(), "c")
    settings = make_settings(tmp_path, db_url, rules=rules(tmp_path, "arousal >= 0.7"))
    with pytest.raises(RulesError, match=r"rule 'agitated' \(#1\), field 'when': 'arousal' is not a dimension of "
                                         r"the model \(dimensions: none\)"):
        with TestClient(create_app(settings, categorical)):
            pass

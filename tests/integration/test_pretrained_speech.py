"""`mmemo train` with pretrained speech encoders from tiny local checkpoints, frozen and fine-tuned."""

from __future__ import annotations

import json

import pytest

from mmemo.config import compose
from mmemo.recipes import run_config as train


def _train(overrides, tmp_path, name):
    cfg = compose("train", overrides, output_dir=str(tmp_path / name))
    return train(cfg), tmp_path / name


@pytest.mark.parametrize("trainable", ["frozen", "full"])
def test_whisper_checkpoint_file_trains_end_to_end(tiny_overrides, tiny_whisper_pt, tmp_path, trainable):
    overrides = [o for o in tiny_overrides if "model.speech." not in o]
    result, out = _train([*overrides, "model/speech=whisper_base", f"model.speech.path={tiny_whisper_pt}",
                          f"model.speech.trainable={trainable}", "trainer.max_epochs=1"], tmp_path, trainable)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["meta"]["config"]["model"]["speech"]["path"] == str(tiny_whisper_pt)
    stores = list((tmp_path / "cache" / "features").glob("whisper*/*/meta.json"))
    assert bool(stores) == (trainable == "frozen")  # only a frozen encoder is cached
    assert 0.0 <= result["test"]["UA"] <= 1.0


@pytest.mark.parametrize("trainable", ["frozen", "full"])
def test_emotion2vec_funasr_folder_trains_end_to_end(tiny_overrides, tiny_e2v_dir, tmp_path, trainable):
    overrides = [o for o in tiny_overrides if "model.speech." not in o]
    result, out = _train([*overrides, "model/speech=emotion2vec_base", f"model.speech.path={tiny_e2v_dir}",
                          f"model.speech.trainable={trainable}", "trainer.max_epochs=1"], tmp_path, trainable)
    stores = list((tmp_path / "cache" / "features").glob("emotion2vec*/*/meta.json"))
    assert bool(stores) == (trainable == "frozen")
    assert (out / "checkpoints" / "best.ckpt").is_file() and 0.0 <= result["test"]["UA"] <= 1.0

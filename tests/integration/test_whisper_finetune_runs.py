"""`mmemo train` for Whisper fine-tuning, generated labels and the ASR cascade, on the tiny fixtures."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from mmemo.config import compose
from mmemo.recipes import run_config as train
from mmemo.training.module import load_classifier


def _train(overrides, tmp_path, name):
    cfg = compose("train", overrides, output_dir=str(tmp_path / name))
    return train(cfg), tmp_path / name


def _speech_free(overrides):
    return [o for o in overrides if "model.speech." not in o]


def test_whisper_finetune_experiment_trains_lora_and_reloads_for_eval(tiny_base_overrides, tiny_whisper_pt, tmp_path):
    result, out = _train([*tiny_base_overrides, "experiment=whisper_finetune", f"model.speech.path={tiny_whisper_pt}",
                          "trainer.max_epochs=1", "logger=csv"], tmp_path, "lora")
    config = json.loads((out / "metrics.json").read_text())["meta"]["config"]
    assert config["model"]["speech"]["trainable"] == "lora" and config["model"]["fusion"]["name"] == "attentive"
    model = load_classifier(out / "checkpoints" / "best.ckpt")
    trained = {k for k in torch.load(out / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]}
    extra = {k for k in trained if not ("lora_" in k or k.startswith(("head.", "encoders.speech.mixer.")))}
    assert trained and not extra, sorted(extra)  # adapters, layer mix and head only
    assert model.encoders["speech"].trainable == "lora" and 0.0 <= result["test"]["UA"] <= 1.0


def test_label_generation_trains_and_the_checkpoint_predicts_the_same(tiny_base_overrides, tiny_whisper_pt, tmp_path):
    result, out = _train([*tiny_base_overrides, "model=whisper_label_generation",
                          f"model.speech.path={tiny_whisper_pt}", "trainer.max_epochs=1"], tmp_path, "generate")
    predictions = (out / "predictions.csv").read_text().splitlines()
    classes = json.loads((out / "metrics.json").read_text())["meta"]["classes"]
    assert len(predictions) > 1 and all(line.split(",")[3] in classes for line in predictions[1:])
    model = load_classifier(out / "checkpoints" / "best.ckpt")
    assert type(model).__name__ == "WhisperLabelClassifier" and model.classes == classes
    cfg = compose("eval", [f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}", "logger=csv"],
                  output_dir=str(tmp_path / "eval"))
    from mmemo.recipes import run_config as evaluate

    again = evaluate(cfg)
    assert again["test"]["UA"] == pytest.approx(result["test"]["UA"])


def test_asr_cascade_trains_from_audio_alone_and_reuses_its_transcripts(
        tiny_corpus, tiny_base_overrides, tiny_whisper_pt, tmp_path, monkeypatch):
    corpus = tmp_path / "no_text"
    shutil.copytree(tiny_corpus, corpus)
    for manifest in corpus.rglob("*.jsonl"):
        rows = [json.loads(line) for line in manifest.read_text().splitlines()]
        manifest.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "text"}) + "\n" for r in rows))
    overrides = [o if not o.startswith("data.root=") else f"data.root={corpus}" for o in tiny_base_overrides]
    overrides += ["++model.speech.dim=32", "++model.speech.ff_dim=64", "++model.speech.transformer_layers=1",
                  "++model.speech.heads=2", "trainer.max_epochs=1", "data.text_source=asr",
                  f"data.asr.path={tiny_whisper_pt}"]
    result, out = _train(overrides, tmp_path, "first")
    asr = json.loads((out / "metrics.json").read_text())["meta"]["asr"]
    total = sum(json.loads((out / "metrics.json").read_text())["meta"]["split_sizes"].values())
    assert asr["transcribed"] == total and asr["reused"] == 0 and asr["wer"] is None  # no references
    cache = tmp_path / "cache" / "transcripts"
    lines = list(cache.rglob("transcripts.jsonl"))[0].read_text().splitlines()
    assert len(lines) == total

    import mmemo.data.asr as asr_module

    def no_decoding(*args, **kwargs):
        raise AssertionError("the second run must not transcribe again")

    monkeypatch.setattr(asr_module, "_decode_batch", no_decoding)
    again, out2 = _train([*overrides, "data.fold=2"], tmp_path, "second")
    assert json.loads((out2 / "metrics.json").read_text())["meta"]["asr"]["reused"] == total


def test_asr_cascade_reports_wer_against_manifest_transcripts(tiny_corpus, tiny_whisper_pt, tmp_path):
    from mmemo.data.asr import score_asr, transcribe_utterances, with_asr_text
    from mmemo.data.manifest import read_manifest, resolve_audio_paths

    utterances = read_manifest(tiny_corpus / "manifest.jsonl")[:6]
    resolve_audio_paths(utterances, tiny_corpus)
    texts, report = transcribe_utterances(utterances, path=str(tiny_whisper_pt), cache_dir=tmp_path, progress=False)
    score_asr(utterances, texts, report)
    replaced = with_asr_text(utterances, texts)
    assert report.wer is not None and report.wer["utterances"] == 6 and report.wer["words"] > 0
    assert [u.text for u in replaced] == [texts[u.key] for u in utterances]
    assert [u.extra["reference_text"] for u in replaced] == [u.text for u in utterances]

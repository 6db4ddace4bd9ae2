"""End-to-end training on the tiny fixtures: result files, checkpoints, eval, determinism."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from mmemo.config import compose
from mmemo.recipes import run_config as evaluate
from mmemo.recipes import run_config as train


def run(overrides, tmp_path, name="run"):
    cfg = compose("train", overrides, output_dir=str(tmp_path / name))
    return train(cfg), tmp_path / name


def test_fused_run_writes_every_result_and_eval_reproduces_it(tiny_overrides, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    result, out = run([*tiny_overrides, "logger=default", "trainer.max_epochs=2"], tmp_path)
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("UA", "WA", "macro_F1", "weighted_F1", "per_class_recall", "confusion"):
        assert key in metrics["test"]
    assert metrics["test"]["classes"] == ["angry", "happy", "neutral", "sad"]
    meta = metrics["meta"]
    assert meta["data_fingerprint"] and meta["fold"] == 1 and meta["git"].keys() == {"commit", "dirty"}
    assert meta["config"]["model"]["fusion"]["name"] == "concat"
    assert "training speakers" in meta["valid_origin"]
    for name in ("confusion_matrix.png", "predictions.csv", "checkpoints/best.ckpt", "csv/metrics.csv"):
        assert (out / name).is_file(), name
    assert list((out / "wandb").glob("offline-run-*")), "an offline W&B run is written in the run folder"
    with open(out / "predictions.csv") as handle:
        assert len(list(csv.DictReader(handle))) == result["meta"]["split_sizes"]["test"]

    checkpoint = torch.load(out / "checkpoints/best.ckpt", map_location="cpu", weights_only=False)
    assert not any(k.startswith("encoders.text.model.") for k in checkpoint["state_dict"])
    assert checkpoint["mmemo_external_encoders"]["text"]["fingerprint"]

    evaluation = evaluate(compose("eval", [f"ckpt_path={out}/checkpoints/best.ckpt", "logger=csv"],
                                  output_dir=str(tmp_path / "eval")))
    assert evaluation["test"]["UA"] == pytest.approx(metrics["test"]["UA"])
    assert evaluation["test"]["confusion"] == metrics["test"]["confusion"]


def test_same_seed_gives_the_same_metrics(tiny_overrides, tmp_path):
    overrides = [*tiny_overrides, "model/text=none", "trainer.max_epochs=2"]
    first, out1 = run(overrides, tmp_path, "a")
    second, out2 = run(overrides, tmp_path, "b")
    assert first["test"] == second["test"] and first["valid"] == second["valid"]
    assert (out1 / "predictions.csv").read_text() == (out2 / "predictions.csv").read_text()
    other, out3 = run([*overrides, "seed=7"], tmp_path, "c")
    assert (out3 / "predictions.csv").read_text() != (out1 / "predictions.csv").read_text()


@pytest.fixture
def user_corpus(tiny_corpus, tmp_path):
    """A corpus given only as EmoBox fold files, audio under its own folder, paths relative to root."""
    root = tmp_path / "my_corpus"
    shutil.copytree(tiny_corpus / "wav", root / "audio")
    for fold_dir in tiny_corpus.glob("fold_*"):
        target = root / fold_dir.name
        target.mkdir(parents=True)
        for path in fold_dir.glob("*.jsonl"):
            text = path.read_text().replace('"wav": "wav/', '"wav": "audio/').replace("demo_", "mine_")
            (target / path.name.replace("demo_", "mine_")).write_text(text)
    return root


@pytest.mark.parametrize("modality", [[], ["model/text=none"], ["model/speech=none"]])
def test_any_emobox_layout_corpus_trains_with_data_manifest(user_corpus, tiny_overrides, tmp_path, modality):
    overrides = [o for o in tiny_overrides if not o.startswith(("data.root", "data.synthesize"))]
    result, out = run(["data=manifest", f"data.root={user_corpus}", "data.fold=2", *overrides, *modality,
                       "trainer.max_epochs=1"], tmp_path)
    assert result["meta"]["dataset"] == "my_corpus" and result["meta"]["fold"] == 2
    assert result["meta"]["config"]["data"]["name"] == "my_corpus"  # named after its folder, never None
    assert 0.0 <= result["test"]["UA"] <= 1.0 and (out / "metrics.json").is_file()


def test_a_run_records_which_files_it_used(user_corpus, tiny_overrides, tmp_path):
    import hashlib

    overrides = [o for o in tiny_overrides if not o.startswith(("data.root", "data.synthesize"))]
    base = ["data=manifest", f"data.root={user_corpus}", *overrides, "model/text=none", "trainer.max_epochs=1"]
    first, out = run(base, tmp_path, "first")
    data = json.loads((out / "metrics.json").read_text())["meta"]["data"]
    assert data["utterances"] == sum(first["meta"]["split_sizes"].values())
    assert len(data["manifest_sha256"]) == len(data["audio_sha256"]) == 64
    rows = [line.split("\t") for line in (out / "data_files.tsv").read_text().splitlines()[1:]]
    assert len(rows) == data["utterances"] and {r[0] for r in rows} == {"train", "valid", "test"}
    split, key, audio, _, _, digest = rows[0]
    assert digest == hashlib.sha1(open(audio, "rb").read()).hexdigest()
    again, out_again = run(base, tmp_path, "again")  # the same files: the same hashes
    assert json.loads((out_again / "metrics.json").read_text())["meta"]["data"]["audio_sha256"] == data["audio_sha256"]
    wav = next((user_corpus / "audio").rglob("*.wav"))  # one changed recording changes the audio hash only
    wav.write_bytes(wav.read_bytes()[:-2] + b"\x01\x02")
    changed, out_changed = run(base, tmp_path, "changed")
    changed_data = json.loads((out_changed / "metrics.json").read_text())["meta"]["data"]
    assert changed_data["audio_sha256"] != data["audio_sha256"]
    assert changed_data["manifest_sha256"] == data["manifest_sha256"]


def test_checkpoints_from_before_head_standardisation_load_as_trained(tiny_overrides, tmp_path):
    """A head-format-1 checkpoint (no normalisation, mean pooling) rebuilds exactly as it was trained."""
    from mmemo.training.module import load_classifier

    result, out = run([*tiny_overrides, "model/text=none", "trainer.max_epochs=1", "model.fusion.normalize=false",
                       "model.fusion.pooling=mean"], tmp_path)
    checkpoint = torch.load(out / "checkpoints/best.ckpt", map_location="cpu", weights_only=True)
    del checkpoint["mmemo_head_format"]
    for key in ("normalize", "pooling"):  # what an old config held
        del checkpoint["hyper_parameters"]["fusion"][key]
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    model, new = load_classifier(old), load_classifier(out / "checkpoints/best.ckpt")
    assert model.head.standardize is None and model.head.pooling == "mean"
    wav = torch.randn(2, 16000) * 0.1
    batch = {"audio": wav, "audio_mask": torch.ones_like(wav, dtype=torch.bool)}
    with torch.no_grad():
        torch.testing.assert_close(model(batch).logits, new(batch).logits)


def test_cli_train_runs_through_hydra(user_corpus, tiny_bert_dir, tmp_path):
    command = [sys.executable, "-m", "mmemo.cli", "train", "data=manifest", f"data.root={user_corpus}",
               "data.fold=1", f"model.text.path={tiny_bert_dir}", "model.speech.dim=32", "model.speech.ff_dim=64",
               "model.speech.heads=2", "trainer.max_epochs=1", "logger=csv", f"paths.root_dir={tmp_path}",
               "hydra.run.dir=" + str(tmp_path / "cli_run")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "cli_run" / "metrics.json").read_text())["meta"]["dataset"] == "my_corpus"
    assert (tmp_path / "cli_run" / "train.log").is_file()


def test_cli_reports_a_bad_manifest_without_a_traceback(user_corpus, tmp_path):
    bad = user_corpus / "fold_1" / "mine_test_fold_1.jsonl"
    lines = bad.read_text().splitlines()
    bad.write_text("\n".join(lines) + '\n{"key": "broken", "wav": "audio/x.wav"\n')
    command = [sys.executable, "-m", "mmemo.cli", "train", "data=manifest", f"data.root={user_corpus}",
               "data.fold=1", "model/text=none", "logger=none", f"paths.root_dir={tmp_path}"]
    # CI runners may export HYDRA_FULL_ERROR=1, which deliberately re-raises; the user-facing path is without it.
    env = {name: value for name, value in os.environ.items() if name != "HYDRA_FULL_ERROR"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{bad}:{len(lines) + 1}: bad JSON" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_bf16_mixed_precision_trains_on_cpu(tiny_overrides, tmp_path):
    result, out = run([*tiny_overrides, "trainer.precision=bf16-mixed", "trainer.max_epochs=1"], tmp_path)
    assert result["meta"]["config"]["trainer"]["precision"] == "bf16-mixed"
    assert 0.0 <= result["test"]["UA"] <= 1.0


def test_lora_checkpoint_stores_only_trained_weights_and_reloads_exactly(tiny_overrides, tmp_path):
    from mmemo.training.module import load_classifier

    result, out = run([*tiny_overrides, "model/speech=none", "model.text.trainable=lora", "trainer.max_epochs=1"],
                      tmp_path)
    checkpoint = torch.load(out / "checkpoints/best.ckpt", map_location="cpu", weights_only=False)
    text_keys = [k for k in checkpoint["state_dict"] if k.startswith("encoders.text.")]
    assert text_keys and all("lora_" in k or k.endswith("position_ids") for k in text_keys)
    model = load_classifier(out / "checkpoints/best.ckpt")
    batch = {"text": ["so angry today", "the report is on the desk"]}
    with torch.no_grad():
        first = model(batch).logits
        again = load_classifier(out / "checkpoints/best.ckpt")(batch).logits
    torch.testing.assert_close(first, again)
    evaluation = evaluate(compose("eval", [f"ckpt_path={out}/checkpoints/best.ckpt", "logger=csv"],
                                  output_dir=str(tmp_path / "eval")))
    assert evaluation["test"]["UA"] == pytest.approx(result["test"]["UA"])

"""Zero-/few-shot label scoring (model=llm_prompt) through both runtimes on the same GGUF file, and LoRA label
generation (model=llm_label_generation) through mmemo train / eval."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mmemo.config import compose
from mmemo.encoders.llm import load_causal_lm
from mmemo.evaluation.metrics import compute_metrics
from mmemo.llm.prompts import PromptTemplate, PromptTokens
from mmemo.llm.scoring import LlamaCppScorer, TransformersScorer, normalise
from mmemo.recipes import run_config as train

CLASSES = ["angry", "happy", "neutral", "sad"]
#: Measured on the tiny F32 file: max |delta| 0.005 nats on 4-token label sums near -100 (float32
#: accumulation order differs between ggml and torch). Four times that is the bound.
F32_TOLERANCE = 0.02


def test_both_runtimes_score_the_same_token_ids_alike(tiny_gguf):
    tokenizer, lm = load_causal_lm(str(tiny_gguf))
    tokens = PromptTokens(tokenizer, CLASSES, PromptTemplate())
    shots = [("What a lovely day.", "happy", None), ("Leave me alone!", "angry", "loud, fast")]
    prompts = [tokens.prompt(t, voice=v, examples=shots) for t, v in
               [("I told you twice already.", None), ("The meeting is at noon.", "low pitch, slow"), ("Fine.", None)]]
    ours = TransformersScorer(lm, batch_rows=5, pad_id=tokenizer.pad_token_id).score(prompts, tokens.candidates)
    theirs = LlamaCppScorer(tiny_gguf, threads=1).score(prompts, tokens.candidates)
    assert ours.shape == theirs.shape == (3, 4)
    assert np.abs(ours - theirs).max() < F32_TOLERANCE
    assert (ours.argmax(1) == theirs.argmax(1)).all()
    # the batch size does not change a score (right padding, masked)
    single = TransformersScorer(lm, batch_rows=1, pad_id=tokenizer.pad_token_id).score(prompts, tokens.candidates)
    np.testing.assert_allclose(single, ours, atol=1e-4)


def test_calibration_subtracts_the_content_free_scores():
    scores = np.array([[-3.0, -1.0], [-2.0, -4.0]])
    np.testing.assert_allclose(normalise(scores, [[1], [2, 3]], length_norm=True), [[-3.0, -0.5], [-2.0, -2.0]])
    np.testing.assert_allclose(normalise(scores, [[1], [2]], False, calibration=np.array([-1.0, -2.0])),
                               [[-2.0, 1.0], [-1.0, -2.0]])


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ","))


@pytest.mark.parametrize("runtime", ["transformers", "llama.cpp"])
def test_a_prompting_run_writes_the_usual_results_with_shots_from_training_only(runtime, tiny_base_overrides,
                                                                              tiny_gguf, tmp_path):
    out = tmp_path / "run"
    cfg = compose("train", [*tiny_base_overrides, "model=llm_prompt", f"model.path={tiny_gguf}", "model.shots=4",
                            f"model.runtime={runtime}", "model.calibrate=true"], output_dir=str(out))
    result = train(cfg)
    metrics = json.loads((out / "metrics.json").read_text())
    rows = read_rows(out / "predictions.csv")
    assert len(rows) == metrics["meta"]["split_sizes"]["test"] > 0
    recomputed = compute_metrics([CLASSES.index(r["prediction"]) for r in rows],
                                 [CLASSES.index(r["label"]) for r in rows], CLASSES)
    assert metrics["test"]["UA"] == pytest.approx(recomputed["UA"]) == pytest.approx(result["test"]["UA"])
    for row in rows:   # probabilities over the labels, and the prediction is their argmax
        probs = {c: float(row[f"p_{c}"]) for c in CLASSES}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-3)
        assert row["prediction"] == max(probs, key=probs.get)
    prompting = metrics["meta"]["prompting"]
    assert prompting["runtime"] == runtime and prompting["calibrated"] and len(prompting["shots"]) == 4
    split_of = {r["key"]: r["split"] for r in read_rows(out / "data_files.tsv")}
    assert {split_of[k] for k in prompting["shots"]} == {"train"}
    assert prompting["example_prompt"].count("Emotion:") == 5   # four solved examples and the query


def test_few_shot_from_a_scored_split_is_refused(tiny_base_overrides, tiny_gguf, tmp_path, monkeypatch):
    """The recipe checks its shots against the validation and test keys; feed it a leaking split."""
    import mmemo.recipes.llm_prompt as recipe

    real = recipe.training_pool

    def leaking(datamodule):
        pool = real(datamodule)
        return pool + [e.utterance for e in datamodule.datasets["test"].examples[:1]]

    monkeypatch.setattr(recipe, "training_pool", leaking)
    cfg = compose("train", [*tiny_base_overrides, "model=llm_prompt", f"model.path={tiny_gguf}", "model.shots=4"],
                  output_dir=str(tmp_path / "run"))
    with pytest.raises(ValueError, match="few-shot examples must come from the training split only"):
        train(cfg)


def test_a_speech_aware_prompt_describes_each_voice_with_prosody_and_a_speech_model(tiny_overrides, tiny_base_overrides,
                                                                                 tiny_gguf, tmp_path):
    speech = tmp_path / "speech"
    train(compose("train", [*tiny_overrides, "modalities=speech", "trainer.max_epochs=1"], output_dir=str(speech)))
    out = tmp_path / "run"
    cfg = compose("train", [*tiny_base_overrides, "model=llm_prompt", f"model.path={tiny_gguf}", "model.splits=[test]",
                            "model.voice.prosody=true", f"model.voice.checkpoint={speech}/checkpoints/best.ckpt"],
                  output_dir=str(out))
    result = train(cfg)
    prompting = result["meta"]["prompting"]
    assert prompting["voice"] == ["checkpoint", "prosody"] and result["valid"] is None
    voice = prompting["example_prompt"].split("Voice: ", 1)[1].split("\n", 1)[0].split("<|im_end|>")[0]
    assert voice.startswith("a speech emotion model hears ") and voice.endswith("(relative to this speaker)")
    for name in ("pitch", "pitch range", "loudness", "speaking rate", "pauses"):
        assert f"{name} " in voice
    assert json.loads((out / "metrics.json").read_text())["valid"] is None


def test_lora_label_generation_trains_saves_only_adapters_and_evaluates_the_same(tiny_base_overrides, tiny_gguf,
                                                                               tmp_path):
    from mmemo.training.module import load_classifier

    out = tmp_path / "lora"
    cfg = compose("train", [*tiny_base_overrides, "model=llm_label_generation", f"++model.text.path={tiny_gguf}",
                            "trainer.max_epochs=1"], output_dir=str(out))
    result = train(cfg)
    rows = read_rows(out / "predictions.csv")
    classes = json.loads((out / "metrics.json").read_text())["meta"]["classes"]
    assert rows and {r["prediction"] for r in rows} <= set(classes)
    checkpoint = out / "checkpoints" / "best.ckpt"
    from mmemo.training.checkpoints import read_checkpoint

    stored = read_checkpoint(checkpoint, "cpu")
    assert stored["state_dict"] and all("lora_" in k for k in stored["state_dict"])  # the LM stays at its path
    model = load_classifier(checkpoint)
    assert type(model).__name__ == "LMLabelClassifier" and model.classes == classes
    again = train(compose("eval", [f"ckpt_path={checkpoint}", "logger=csv"], output_dir=str(tmp_path / "eval")))
    assert again["test"]["UA"] == pytest.approx(result["test"]["UA"])
    assert result["test"]["UA"] == pytest.approx(
        compute_metrics([classes.index(r["prediction"]) for r in rows], [classes.index(r["label"]) for r in rows],
                        classes)["UA"])

"""Dimensional and multi-task runs end to end on the tiny demo corpus: files, selection, eval, table, predict."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mmemo.config import compose
from mmemo.evaluation.metrics import concordance
from mmemo.evaluation.tables import build_table, load_runs, run_key, to_markdown
from mmemo.recipes import run_config


def run(overrides, tmp_path, name):
    out = tmp_path / name
    return run_config(compose("train", overrides, output_dir=str(out))), out


def test_a_dimensional_run_selects_on_ccc_writes_its_files_and_eval_and_predict_reproduce_it(tiny_overrides,
                                                                                           tmp_path):
    result, out = run([*tiny_overrides, "task=dimensional", "trainer.max_epochs=3"], tmp_path, "dims")
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["test"]
    assert test["task"] == "dimensional" and test["dimensions"] == ["arousal", "valence"] and "UA" not in test
    assert metrics["meta"]["dimensions"] == {"arousal": [0.0, 1.0], "valence": [0.0, 1.0]}
    assert metrics["meta"]["config"]["callbacks"]["model_checkpoint"]["monitor"] == "val/CCC"
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == test["n_arousal"] == result["meta"]["split_sizes"]["test"]
    for name in ("arousal", "valence"):   # metrics.json is the CCC of the written predictions
        predicted = np.array([float(r[name]) for r in rows])
        rated = np.array([float(r[f"{name}_true"]) for r in rows])
        assert test[f"CCC_{name}"] == pytest.approx(concordance(predicted, rated), abs=1e-4)
    assert test["CCC"] == pytest.approx((test["CCC_arousal"] + test["CCC_valence"]) / 2)
    assert (out / "dimensions.png").is_file() and not (out / "confusion_matrix.png").exists()
    checkpoint = out / "checkpoints" / "best.ckpt"
    # the regressor's scale is the training split's target statistics (data_files.tsv lists that split)
    from mmemo.training.checkpoints import read_checkpoint

    stats = read_checkpoint(checkpoint)["hyper_parameters"]["dimension_stats"]
    root = metrics["meta"]["config"]["data"]["root"]
    lines = {json.loads(line)["key"]: json.loads(line) for line in open(f"{root}/manifest.jsonl")}
    train_keys = [r["key"] for r in csv.DictReader((out / "data_files.tsv").open(), delimiter="\t")
                  if r["split"] == "train"]
    for i, name in enumerate(("arousal", "valence")):
        values = np.array([lines[k][name] for k in train_keys], dtype=float)   # the demo rates on [0, 1]
        assert stats["mean"][i] == pytest.approx(values.mean(), abs=1e-5)
        assert stats["std"][i] == pytest.approx(values.std(), abs=1e-5)
    evaluation = run_config(compose("eval", [f"ckpt_path={checkpoint}", "logger=csv"],
                                    output_dir=str(tmp_path / "eval")))
    assert evaluation["test"]["CCC"] == pytest.approx(test["CCC"], abs=1e-5)
    from mmemo.inference import Predictor

    predictor = Predictor.from_source(checkpoint)
    assert predictor.dimensions == ["arousal", "valence"]
    chosen = [lines[r["key"]] for r in rows[:3]]
    manifest = tmp_path / "clips.jsonl"
    manifest.write_text("".join(json.dumps({"key": c["key"], "wav": f"{root}/{c['wav']}", "text": c["text"],
                                            "emo": c["emo"]}) + "\n" for c in chosen))
    predicted = predictor.predict_files([str(manifest)], progress=False)
    for prediction, row in zip(predicted, rows[:3]):   # mmemo predict gives the test loop's values
        assert prediction.dimensions == pytest.approx({"arousal": float(row["arousal"]),
                                                       "valence": float(row["valence"])}, abs=2e-4)


def test_multitask_and_ridge_probe_runs_land_in_one_table(tiny_overrides, tmp_path):
    result, _ = run([*tiny_overrides, "task=multitask", "model.loss.weighting=uncertainty", "trainer.max_epochs=2"],
                    tmp_path / "runs", "multitask")
    test = result["test"]
    assert {"UA", "CCC", "UA_CCC", "CCC_arousal"} <= set(test)
    assert test["UA_CCC"] == pytest.approx((test["UA"] + test["CCC"]) / 2)
    probe, _ = run([*tiny_overrides, "experiment=classical_baseline", "classical.classifier=ridge", "task=dimensional"],
                   tmp_path / "runs", "ridge")
    assert probe["test"]["task"] == "dimensional" and probe["meta"]["selected_params"]["alpha"] in (1, 10, 100, 1000)
    runs = load_runs([tmp_path / "runs"])
    table = build_table(runs, row=lambda r: r.folder.name, column=lambda r: run_key(r, "dataset"),
                        metrics=["CCC", "CCC_arousal"])
    text = to_markdown(table)
    assert "| multitask |" in text and "| ridge |" in text and "(fractions)" in text
    assert f"{test['CCC']:.3f} ± 0.000" in text
    with pytest.raises(ValueError, match="has no test 'UA'"):
        build_table(runs, row=lambda r: r.folder.name, column=lambda r: "x", metrics=["UA"])
    with pytest.raises(ValueError, match="classical.classifier=ridge regresses dimensions"):
        run([*tiny_overrides, "experiment=classical_baseline", "classical.classifier=ridge"], tmp_path, "bad")

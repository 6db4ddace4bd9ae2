"""The documented Optuna command end to end on the tiny fixtures (slow: pytest -m slow)."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
import yaml


@pytest.mark.slow
def test_optuna_fusion_sweep_runs_resumes_and_writes_results(tiny_base_overrides, tiny_whisper_pt, tmp_path):
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "mmemo.cli", "train", "-m", "hparams_search=fusion_optuna",
               *tiny_base_overrides, "logger=default", f"model.speech.path={tiny_whisper_pt}",
               "model.speech.layer=last",
               f"paths.runs_dir={runs}", "cross_validation.folds=[1,2]", "trainer.max_epochs=2",
               "hydra.sweeper.sampler.n_startup_trials=2"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    for n_trials in (2, 3):  # the second command resumes the stored study and adds one trial
        done = subprocess.run([*command, f"hydra.sweeper.n_trials={n_trials}"], env=env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-4000:]
    folder = runs / "optuna/fusion_demo"
    study = optuna.load_study(study_name="fusion_demo", storage=f"sqlite:///{folder}/study.db")
    assert len(study.trials) == 3
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best["best_value"] == pytest.approx(study.best_value)
    assert (folder / "history.png").is_file() and (folder / "best_config.yaml").is_file()
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert len(list((folder / f"trial_{trial.number}").glob("fold*/wandb/offline-run-*"))) == 2

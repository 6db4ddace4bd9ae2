"""Cluster launch paths on one machine: submitit's local executor (the SLURM code path without SLURM),
and k-fold cross-validation inside one job (what an Optuna trial runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mmemo.config import compose
from mmemo.recipes import run_config as train


def test_submitit_local_launcher_runs_two_jobs(tiny_overrides, tmp_path):
    sweep_dir = tmp_path / "sweep"
    overrides = [*tiny_overrides, "model/text=none", "trainer.max_epochs=1", "features.cache=off",
                 "hydra/launcher=submitit_local", "seed=1,2", f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "mmemo.cli", "train", "-m", *overrides], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    seeds = sorted(json.loads((sweep_dir / str(job) / "metrics.json").read_text())["meta"]["seed"] for job in (0, 1))
    assert seeds == [1, 2]
    submitted = list((sweep_dir / ".submitit").glob("*/*_result.pkl"))
    assert len(submitted) == 2, "each job went through submitit (pickled, run in its own process)"
    assert {p.parent.name for p in submitted} != {str(os.getpid())}


def test_cross_validation_trains_every_fold_and_returns_the_mean(tiny_overrides, tmp_path):
    cfg = compose("train", [*tiny_overrides, "model/text=none", "trainer.max_epochs=1", "test=false",
                            "recipe=crossval", "cross_validation.folds=[1,2]"], output_dir=str(tmp_path / "cv"))
    result = train(cfg)
    folds = json.loads((tmp_path / "cv/cv_results.json").read_text())["per_fold"]
    assert [f["fold"] for f in folds] == [1, 2] and all(f["test_UA"] is None for f in folds)
    assert result["valid"]["UA"] == pytest.approx((folds[0]["valid_UA"] + folds[1]["valid_UA"]) / 2)
    assert all((tmp_path / f"cv/fold{k}/checkpoints/best.ckpt").is_file() for k in (1, 2))
    assert not (tmp_path / "cv/fold1/metrics.json").exists(), "test=false: the test split is never evaluated"


def test_joblib_launcher_runs_jobs_in_parallel_workers(tiny_overrides, tmp_path):
    sweep_dir = tmp_path / "sweep"
    overrides = [*tiny_overrides, "model/text=none", "trainer.max_epochs=1", "features.cache=off",
                 "hydra/launcher=joblib", "seed=1,2,3", f"hydra.sweep.dir={sweep_dir}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "mmemo.cli", "train", "-m", *overrides], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Joblib.Parallel(n_jobs=2" in done.stdout + done.stderr  # our config, not the plugin's n_jobs=-1
    seeds = sorted(json.loads((sweep_dir / str(job) / "metrics.json").read_text())["meta"]["seed"] for job in (0, 1, 2))
    assert seeds == [1, 2, 3]

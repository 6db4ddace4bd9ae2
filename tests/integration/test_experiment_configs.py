"""Every configs/experiment/*.yaml composes and runs (one fast_dev_run step for neural ones)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmemo.config import compose, config_dir
from mmemo.training.run import train

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))


def test_every_experiment_has_a_study_folder():
    studies = Path(config_dir()).parent / "experiments"
    assert EXPERIMENTS, "no experiment configs found"
    for name in EXPERIMENTS:
        assert (studies / name / "README.md").is_file(), f"experiments/{name}/README.md is missing"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_one_step(experiment, tiny_overrides, tmp_path):
    cfg = compose("train", [f"experiment={experiment}", *tiny_overrides, "++trainer.fast_dev_run=true"],
                  output_dir=str(tmp_path / experiment))
    result = train(cfg)
    assert set(result) >= {"valid", "meta"}
    assert result["valid"]["n"] > 0

"""Every configs/experiment/*.yaml composes and runs (one fast_dev_run step for neural ones)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY_SPECTRAL

from mmemo.config import compose, config_dir
from mmemo.recipes import run_config as train

#: Top-level experiments and the arms of multi-arm studies (experiment/<study>/<arm>.yaml; common.yaml is shared).
EXPERIMENTS = sorted(p.relative_to(config_dir() / "experiment").with_suffix("").as_posix()
                     for p in (config_dir() / "experiment").rglob("*.yaml") if p.stem != "common")


def test_every_experiment_has_a_study_folder():
    studies = Path(config_dir()).parent / "experiments"
    assert EXPERIMENTS, "no experiment configs found"
    for name in EXPERIMENTS:
        study = name.split("/")[0]
        assert (studies / study / "README.md").is_file(), f"experiments/{study}/README.md is missing"


def speech_overrides(experiment: str, tiny_whisper_pt, tiny_e2v_dir) -> list[str]:
    """Tiny stand-ins for whatever speech encoder the experiment picks."""
    target = compose("train", [f"experiment={experiment}"]).model.speech.get("_target_", "")
    if target.endswith("SpectralEncoder"):
        return TINY_SPECTRAL
    if target.endswith("WhisperEncoder"):
        return [f"model.speech.path={tiny_whisper_pt}", "model.speech.layer=last"]
    if target.endswith("Emotion2vecEncoder"):
        return [f"model.speech.path={tiny_e2v_dir}"]
    return []


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_one_step(experiment, tiny_base_overrides, tiny_whisper_pt, tiny_e2v_dir, tmp_path):
    overrides = [f"experiment={experiment}", *tiny_base_overrides,
                 *speech_overrides(experiment, tiny_whisper_pt, tiny_e2v_dir),
                 "++trainer.fast_dev_run=true", "reuse_finished=false"]
    cfg = compose("train", overrides, output_dir=str(tmp_path / experiment))
    result = train(cfg)
    assert set(result) >= {"valid", "meta"}
    assert result["valid"]["n"] > 0

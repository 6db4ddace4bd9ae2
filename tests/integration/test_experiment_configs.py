"""Every configs/experiment/*.yaml composes and runs (one fast_dev_run step for neural ones)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY_SPECTRAL

from mmemo.config import compose, config_dir
from mmemo.recipes import run_config as train

#: Top-level experiments and the arms of multi-arm studies (experiment/<study>/<arm>.yaml; common.yaml is shared).
EXPERIMENTS = sorted(p.relative_to(config_dir() / "experiment").with_suffix("").as_posix()
                     for p in (config_dir() / "experiment").rglob("*.yaml") if not p.stem.endswith("common"))


def test_every_experiment_has_a_study_folder():
    studies = Path(config_dir()).parent / "experiments"
    assert EXPERIMENTS, "no experiment configs found"
    for name in EXPERIMENTS:
        study = name.split("/")[0]
        assert (studies / study / "README.md").is_file(), f"experiments/{study}/README.md is missing"


def llm_overrides(experiment: str, tiny_gguf) -> list[str]:
    """Tiny stand-ins for the causal LM a prompting or LLM-encoder experiment picks (and no speech model)."""
    cfg = compose("train", [f"experiment={experiment}"])
    model = cfg.model
    if str(cfg.recipe.get("_target_", "")).endswith("llm_prompt.run"):
        return [f"model.path={tiny_gguf}", "model.voice.checkpoint=null"]
    if str((model.get("text") or {}).get("_target_", "")).endswith("CausalLMTextEncoder"):
        return [f"model.text.path={tiny_gguf}"]
    return []


def speech_overrides(experiment: str, tiny_whisper_pt, tiny_e2v_dir) -> list[str]:
    """Tiny stand-ins for whatever speech encoder the experiment picks."""
    target = (compose("train", [f"experiment={experiment}"]).model.get("speech") or {}).get("_target_", "")
    if target.endswith("SpectralEncoder"):
        return TINY_SPECTRAL
    if target.endswith("WhisperEncoder"):
        return [f"model.speech.path={tiny_whisper_pt}", "model.speech.layer=last"]
    if target.endswith("Emotion2vecEncoder"):
        return [f"model.speech.path={tiny_e2v_dir}"]
    return []


#: Arms that run the same code path as another arm of their study (kept for pytest -m slow).
SAME_PATH_AS_ANOTHER = {"llm_comparison/prompt_k4", "llm_comparison/prompt_k16"}


@pytest.mark.parametrize("experiment", [pytest.param(e, marks=pytest.mark.slow) if e in SAME_PATH_AS_ANOTHER else e
                                        for e in EXPERIMENTS])
def test_experiment_runs_one_step(experiment, tiny_base_overrides, tiny_whisper_pt, tiny_e2v_dir, tiny_gguf,
                                  tmp_path):
    overrides = [f"experiment={experiment}", *tiny_base_overrides,
                 *speech_overrides(experiment, tiny_whisper_pt, tiny_e2v_dir), *llm_overrides(experiment, tiny_gguf),
                 "++trainer.fast_dev_run=true", "reuse_finished=false"]
    cfg = compose("train", overrides, output_dir=str(tmp_path / experiment))
    result = train(cfg)
    assert set(result) >= {"valid", "meta"}
    scored = result["valid"] or result["test"]     # prompting arms may score the test split only
    assert scored["n"] > 0

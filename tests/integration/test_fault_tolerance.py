"""Preemption and crashes: SIGTERM saves a checkpoint and exits cleanly; a run killed with
``kill -9`` mid-epoch and resumed with ``ckpt_path=last`` ends exactly like an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from mmemo.config import compose
from mmemo.recipes import run_config as train

HERE = Path(__file__).resolve().parent


def test_sigterm_saves_last_checkpoint_and_the_run_resumes(tiny_overrides, tmp_path):
    overrides = [*tiny_overrides, "model/text=none", "trainer.max_epochs=3", "+callbacks.interrupt._target_="
                 "interrupt_callbacks.InterruptAt", "+callbacks.interrupt.step=5"]
    cfg = compose("train", overrides, output_dir=str(tmp_path / "run"))
    with pytest.raises(SystemExit) as stopped:
        train(cfg)
    assert not stopped.value.code, "a SIGTERM stop is a clean exit (status 0)"
    last = tmp_path / "run/checkpoints/last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == 6  # the batch that was running when SIGTERM arrived finished first
    assert "mmemo_rng" in state and not (tmp_path / "run/metrics.json").exists()

    resumed = compose("train", [*overrides[:-2], "ckpt_path=last"], output_dir=str(tmp_path / "run"))
    result = train(resumed)
    assert result["test"] is not None and (tmp_path / "run/metrics.json").is_file()


@pytest.mark.parametrize("every", [None, 1, 3])
def test_last_checkpoint_holds_the_final_weights_after_a_clean_run(tiny_overrides, tmp_path, every):
    """One writer of last.ckpt: whatever every_n_train_steps is, a finished run's last.ckpt is its end."""
    overrides = [*tiny_overrides, "model/text=none", "trainer.max_epochs=2", "callbacks.early_stopping.patience=100",
                 f"callbacks.fault_tolerance.every_n_train_steps={'null' if every is None else every}"]
    cfg = compose("train", overrides, output_dir=str(tmp_path / "run"))
    captured = {}

    class Capture(L.Callback):  # the weights as training leaves them (train() then reloads best.ckpt)
        def on_fit_end(self, trainer, pl_module):
            captured.update(step=trainer.global_step, weights={k: v.clone() for k, v in pl_module.state_dict().items()})

    with _extra_callback(Capture()):
        train(cfg)
    last = torch.load(tmp_path / "run/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == captured["step"] > 0 and last["epoch"] == 1
    for name, tensor in last["state_dict"].items():
        assert torch.equal(tensor, captured["weights"][name]), name
    assert sorted(p.name for p in (tmp_path / "run/checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


class _extra_callback:
    """Add a callback to every Trainer built inside the block (train() builds its own)."""

    def __init__(self, callback):
        self.callback = callback

    def __enter__(self):
        import mmemo.recipes.train as run

        self.original = run.instantiate_all
        run.instantiate_all = lambda node: [*self.original(node), self.callback] if node is not None and any(
            "model_checkpoint" == k for k in node) else self.original(node)

    def __exit__(self, *exc):
        import mmemo.recipes.train as run

        run.instantiate_all = self.original


def _mmemo_train(overrides: list[str], run_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", "mmemo.cli", "train", *overrides, f"hydra.run.dir={run_dir}"],
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_matches_an_uninterrupted_run(tiny_overrides, tmp_path):
    """Run with: pytest -m slow tests/integration/test_fault_tolerance.py"""
    overrides = [*tiny_overrides, "trainer.max_epochs=3", "callbacks.fault_tolerance.every_n_train_steps=1",
                 "callbacks.early_stopping.patience=100", "model.fusion.dropout=0.3", "model.modality_dropout=0.2",
                 "data.batch_size=4"]
    reference = _mmemo_train(overrides, tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-3000:]

    killed = _mmemo_train([*overrides, "+callbacks.interrupt._target_=interrupt_callbacks.InterruptAt",
                           "+callbacks.interrupt.step=6", "+callbacks.interrupt.signal_name=SIGKILL"],
                          tmp_path / "resumed")
    assert killed.returncode == -9, "the run was killed, not finished"
    state = torch.load(tmp_path / "resumed/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    in_epoch = state["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"]
    per_epoch = state["global_step"] - in_epoch
    assert state["global_step"] == 6 and state["epoch"] == 1, "the last step checkpoint before the kill"
    assert 0 < in_epoch and per_epoch > 0, "killed mid-epoch"

    resumed = _mmemo_train([*overrides, "ckpt_path=last"], tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = json.loads((tmp_path / "reference/metrics.json").read_text())
    got = json.loads((tmp_path / "resumed/metrics.json").read_text())
    assert got["test"]["confusion"] == expected["test"]["confusion"]
    assert got["test"]["UA"] == pytest.approx(expected["test"]["UA"], abs=1e-7)
    assert got["valid"]["UA"] == pytest.approx(expected["valid"]["UA"], abs=1e-7)
    assert got["meta"]["best_epoch"] == expected["meta"]["best_epoch"]
    assert (tmp_path / "resumed/predictions.csv").read_text() == (tmp_path / "reference/predictions.csv").read_text()
    # The final weights too: the best checkpoint may predate the kill, the last one never does.
    final = [torch.load(tmp_path / run / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
             for run in ("reference", "resumed")]
    assert final[0]["global_step"] == final[1]["global_step"] > 6
    for name, tensor in final[0]["state_dict"].items():
        assert torch.equal(tensor, final[1]["state_dict"][name]), name

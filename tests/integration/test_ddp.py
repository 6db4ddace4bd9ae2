"""DDP with 2 CPU processes (gloo): sharded batches, metrics synced across processes, predictions gathered.

The DDP run trains, selects and tests its checkpoint with 2 processes; a single-process
``evaluate`` of the very same checkpoint must give the same test metrics. This holds only if
every test utterance is counted exactly once across the processes (no sampler padding).
About 20 s on an idle 2-core machine (two processes each import torch); the sampler-level
checks are also in tests/unit/test_distributed_batches.py.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from mmemo.config import compose
from mmemo.recipes import run_config as evaluate


def test_two_process_ddp_metrics_match_a_single_process_evaluation(tiny_overrides, tmp_path):
    run_dir = tmp_path / "ddp"
    overrides = [*tiny_overrides, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                 "trainer.precision=32-true", "trainer.max_epochs=2", "features.cache=off",
                 "data.batch_size=4", "data.eval_batch_size=5", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
                           "-m", "mmemo.cli", "train", *overrides], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "world_size: 2" in done.stderr + done.stdout or "MEMBER: 2/2" in done.stderr + done.stdout
    ddp = json.loads((run_dir / "metrics.json").read_text())
    with open(run_dir / "predictions.csv") as handle:
        keys = [row["key"] for row in csv.DictReader(handle)]
    size = ddp["meta"]["split_sizes"]["test"]
    assert ddp["test"]["n"] == size and len(keys) == size == len(set(keys)), "each utterance counted once"

    single = evaluate(compose("eval", [f"ckpt_path={ddp['meta']['best_checkpoint']}", "logger=csv",
                                       "trainer.accelerator=cpu", "trainer.devices=1"],
                              output_dir=str(tmp_path / "single")))["test"]
    assert single["confusion"] == ddp["test"]["confusion"]
    for metric in ("UA", "WA", "macro_F1", "weighted_F1"):
        assert single[metric] == pytest.approx(ddp["test"][metric], abs=1e-6), metric

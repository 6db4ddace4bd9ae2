""""One file + one config, zero edits": a new fusion head and a new corpus adapter, dropped into a
temporary copy of the package, are trained with / prepared by the CLI and collected by the contract tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import tone, write_wav

REPO = Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")

NEW_HEAD = '''
"""``mean_max``: each modality's mean and max over frames, concatenated, one linear layer (a plug-in test)."""

import torch
from torch import nn

from mmemo.fusion.base import FusionHead, FusionOutput, masked_mean, register


@register("mean_max")
class MeanMaxHead(FusionHead):
    needs_frames = True

    def __init__(self, input_dims, num_classes, *, normalize: bool = True, pooling: str = "mean"):
        super().__init__(input_dims, num_classes, normalize=normalize, pooling=pooling)
        self.missing_frames = nn.ParameterDict({m: nn.Parameter(torch.zeros(2 * d)) for m, d in input_dims.items()})
        self.classifier = nn.Linear(sum(2 * d for d in input_dims.values()), num_classes)

    def forward(self, feats, targets=None):
        present = self.presence(feats)
        feats = self.standardized(feats)
        batch = next(iter(present.values())).shape[0]
        parts = []
        for m in self.modalities:
            stand_in = self.missing_frames[m].expand(batch, -1)
            if m not in feats:
                parts.append(stand_in)
                continue
            out = feats[m]
            peak = out.frames.masked_fill(~out.mask[..., None], float("-inf")).amax(1)
            vector = torch.cat([masked_mean(out.frames, out.mask), torch.nan_to_num(peak, neginf=0.0)], -1)
            parts.append(torch.where(present[m][:, None], vector, stand_in))
        fused = torch.cat(parts, -1)
        return FusionOutput(self.classifier(fused), embeddings={"fused": fused})
'''

NEW_HEAD_CONFIG = '''
_target_: mmemo.fusion.mean_max.MeanMaxHead
_partial_: true
name: mean_max
normalize: true
'''

NEW_ADAPTER = '''
"""``toyspeech``: a folder per speaker of ``<speaker>_<emotion>_<n>.wav`` files (a plug-in test)."""

import re

from mmemo.data.corpora.base import Adapter
from mmemo.data.corpora.files import AudioIndex, audio_stem, measure
from mmemo.data.corpora.fold_rule import plan_folds
from mmemo.data.corpora.records import Collected, Failure, file_issue
from mmemo.data.manifest import Utterance, raise_if_issues

_NAME = re.compile(r"^(spk\\d+)_(happy|sad)_(\\d+)$")


class ToySpeechAdapter(Adapter):
    name = "toyspeech"
    title = "ToySpeech"
    obtain = "the plug-in test that writes it"
    licence = "none"
    layout = "ROOT/spkNN/spkNN_<happy|sad>_<n>.wav"

    def locate(self, root):
        if not any(p.is_dir() and p.name.startswith("spk") for p in root.iterdir()):
            raise self.layout_error(root, [f"{root}/spk01/ (folders of spkNN_<emotion>_<n>.wav)"])
        return root

    def collect(self, root, out, options):
        found, issues, index = [], [], AudioIndex()
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            for path in index.files(folder):
                match = _NAME.match(audio_stem(path.name))
                if not match:
                    issues.append(file_issue(path, "not a ToySpeech name"))
                    continue
                found.append(Utterance(key=path.stem, wav=str(path), emo=match.group(2), dataset=self.name,
                                       speaker=match.group(1)))
        raise_if_issues(issues)
        failures: list[Failure] = []
        utterances = measure(found, failures, desc="ToySpeech headers")
        label_map = {"happy": "happy", "sad": "sad"}
        plan = plan_folds(utterances, "speakers", lambda u: label_map[u.emo], {})
        return Collected(utterances, label_map, plan, audio="absolute paths", failures=failures)


ADAPTER = ToySpeechAdapter()
'''


@pytest.fixture
def package_copy(tmp_path) -> Path:
    """mmemo's package, configs and tests copied to a folder of their own (the checkout is not touched)."""
    copy = tmp_path / "checkout"
    for part in ("mmemo", "configs", "tests", "hydra_plugins", "pyproject.toml"):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, copy / part, ignore=IGNORE)
        elif source.exists():
            shutil.copy(source, copy / part)
    return copy


def _run(copy: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(copy), "MMEMO_CONFIG_DIR": str(copy / "configs"),
           "HYDRA_FULL_ERROR": "1", "WANDB_MODE": "disabled"}
    done = subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_copy_is_what_runs(package_copy):
    done = _run(package_copy, "-c", "import mmemo; print(mmemo.__file__)")
    assert done.stdout.strip().startswith(str(package_copy / "mmemo"))


def test_a_new_fusion_head_is_one_file_and_one_config(package_copy, tiny_overrides, tmp_path):
    (package_copy / "mmemo" / "fusion" / "mean_max.py").write_text(textwrap.dedent(NEW_HEAD))
    (package_copy / "configs" / "model" / "fusion" / "mean_max.yaml").write_text(NEW_HEAD_CONFIG.lstrip())
    run_dir = tmp_path / "run"
    _run(package_copy, "-m", "mmemo.cli", "train", "model/fusion=mean_max", *tiny_overrides,
         "trainer.max_epochs=1", "+trainer.limit_train_batches=1", "+trainer.limit_val_batches=1",
         f"hydra.run.dir={run_dir}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["meta"]["config"]["model"]["fusion"]["name"] == "mean_max"

    collected = _run(package_copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_fusion.py",
                     "-k", "mean_max")
    assert "passed" in collected.stdout and "failed" not in collected.stdout
    listed = _run(package_copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                  "tests/unit/test_fusion.py").stdout
    # every contract a built-in head gets, the new head gets too
    assert listed.count("[mean_max]") == listed.count("[linear]") >= 4


def test_a_new_corpus_adapter_is_one_file(package_copy, tmp_path):
    (package_copy / "mmemo" / "data" / "corpora" / "toyspeech.py").write_text(textwrap.dedent(NEW_ADAPTER))
    root = tmp_path / "toy"
    for s in range(1, 5):
        for emotion in ("happy", "sad"):
            for n in range(3):
                pitch = 150.0 + 40 * s + 10 * n + (5 if emotion == "sad" else 0)  # distinct audio (leakage check)
                write_wav(root / f"spk{s:02d}" / f"spk{s:02d}_{emotion}_{n}.wav", tone(freq=pitch))
    out = tmp_path / "prepared"
    _run(package_copy, "-m", "mmemo.cli", "data", "prepare", "toyspeech", "--root", str(root), "--out", str(out))
    corpus = json.loads((out / "corpus.json").read_text())
    assert corpus["corpus"] == "toyspeech" and corpus["counts"]["total"] == 24 and corpus["speaker_independent"]
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 24
    _run(package_copy, "-m", "mmemo.cli", "data", "check", str(out))
    listed = _run(package_copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                  "tests/unit/test_corpora.py", "-k", "toyspeech").stdout
    assert "[toyspeech" in listed  # the adapter contract tests include it

"""Untrusted checkpoints: nothing in a .ckpt runs code, and every bad file is one clear error (exit 2).

A pickle can run anything when loaded, and a stored config can name anything to instantiate;
both are attack paths through ``mmemo predict``, ``mmemo eval`` and ``mmemo monitor serve``.
"""

from __future__ import annotations

import builtins
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from mmemo.cli import main
from mmemo.config import compose
from mmemo.recipes import run_config as train
from mmemo.training.checkpoints import CheckpointError
from mmemo.training.module import load_classifier


@pytest.fixture(scope="module")
def good_checkpoint(tiny_corpus, tmp_path_factory) -> Path:
    """A real checkpoint written by mmemo train (tiny spectral speech model, one epoch)."""
    out = tmp_path_factory.mktemp("ckpt_run")
    cfg = compose("train", [f"data.root={tiny_corpus}", "data.synthesize_if_missing=false", "data.batch_size=8",
                            "model/text=none", "model/fusion=linear", "logger=csv", "trainer.max_epochs=1",
                            "callbacks.progress_bar.refresh_rate=0", f"paths.root_dir={out}",
                            "++model.speech.dim=16", "++model.speech.ff_dim=32",
                            "++model.speech.transformer_layers=1", "++model.speech.heads=2"],
                  output_dir=str(out / "run"))
    train(cfg)
    return out / "run" / "checkpoints" / "best.ckpt"


class _RunsCode:
    """What an attacker pickles: unpickling calls ``function(*arguments)``."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


def _payloads(marker: Path) -> dict:
    code = f"open({str(marker)!r}, 'w').write('owned')"
    return {
        "os.system": _RunsCode(os.system, f"touch {marker}"),
        "builtins.exec": _RunsCode(builtins.exec, code),
        "subprocess.call": _RunsCode(subprocess.call, ["touch", str(marker)]),
        "pathlib.Path.touch": _RunsCode(Path.touch, marker),
    }


@pytest.mark.parametrize("name", ["os.system", "builtins.exec", "subprocess.call", "pathlib.Path.touch"])
def test_a_pickle_that_runs_code_is_refused_and_runs_nothing(good_checkpoint, tmp_path, name):
    marker = tmp_path / "owned.txt"
    checkpoint = torch.load(good_checkpoint, weights_only=True)
    checkpoint["mmemo_classes"] = _payloads(marker)[name]  # hidden where a loader reads first
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)
    with pytest.raises(CheckpointError, match=r"crafted\.ckpt: refused: the file asks to build Python objects"):
        load_classifier(crafted)
    assert not marker.exists()


def _stored(good_checkpoint: Path, tmp_path: Path, change) -> Path:
    checkpoint = torch.load(good_checkpoint, weights_only=True)
    change(checkpoint)
    path = tmp_path / "stored.ckpt"
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize("change, problem", [
    (lambda c: c["hyper_parameters"]["speech"].update(_target_="os.system", command="touch {marker}"),
     "_target_ 'os.system' is not one of mmemo's classes"),
    (lambda c: c["hyper_parameters"]["speech"].update(_target_="mmemo.data.synthetic.synthesize_corpus",
                                                      out="{marker}"),
     "is not one of mmemo's classes"),  # mmemo code, but not an encoder
    (lambda c: c["hyper_parameters"]["speech"].update(_target_="mmemo.encoders.base.EncoderOutput"),
     "is not a subclass of Encoder"),
    (lambda c: c["hyper_parameters"].update(fusion={"_target_": "shutil.rmtree", "path": "{marker}"}),
     "is not one of mmemo's classes"),
    (lambda c: c["hyper_parameters"].update(fusion={"_target_": "mmemo.fusion.base.FusionOutput", "_partial_": True}),
     "is not a subclass of FusionHead"),  # mmemo's fusion module, but not a head
    (lambda c: c["hyper_parameters"].update(optim={"_target_": "os.system", "command": "touch {marker}"}),
     "names a class to build"),
    (lambda c: c["hyper_parameters"]["speech"].update(extra={"_target_": "os.system", "command": "touch {marker}"}),
     "a stored config may not build other objects"),
    (lambda c: c.update(mmemo_model_class="subprocess.Popen"), "not an mmemo class"),
    (lambda c: c["mmemo_run_config"].update(data={"_target_": "pathlib.Path.touch", "self": "{marker}"}),
     "is not one of mmemo's classes"),
    (lambda c: c["mmemo_run_config"]["data"].update(root="${oc.env:HOME}"), "holds an interpolation"),
])
def test_stored_configs_may_only_build_mmemo_classes(good_checkpoint, tmp_path, change, problem):
    marker = tmp_path / "owned.txt"

    def planted(checkpoint):
        change(checkpoint)
        for part in (checkpoint["hyper_parameters"], checkpoint.get("mmemo_run_config") or {}):
            for value in part.values():
                if isinstance(value, dict):
                    for key, text in list(value.items()):
                        if isinstance(text, str):
                            value[key] = text.replace("{marker}", str(marker))

    path = _stored(good_checkpoint, tmp_path, planted)
    with pytest.raises(CheckpointError, match=problem):
        load_classifier(path)
    assert not marker.exists()


def _bad_files(good_checkpoint: Path, folder: Path) -> dict[str, Path]:
    folder.mkdir(exist_ok=True)
    data = good_checkpoint.read_bytes()
    files = {
        "random": os.urandom(4096),
        "empty": b"",
        "text": b"model: best\nweights: see the wiki\n",
        "truncated": data[: len(data) // 2],
    }
    paths = {}
    for name, content in files.items():
        (folder / f"{name}.ckpt").write_bytes(content)
        paths[name] = folder / f"{name}.ckpt"
    checkpoint = torch.load(good_checkpoint, weights_only=True)
    first = next(k for k, v in checkpoint["state_dict"].items() if v.is_floating_point())
    checkpoint["state_dict"][first] = checkpoint["state_dict"][first].clone().fill_(float("nan"))
    torch.save(checkpoint, folder / "nan.ckpt")
    torch.save(checkpoint["state_dict"], folder / "bare_state_dict.ckpt")  # not an mmemo checkpoint
    torch.save([1, 2, 3], folder / "list.ckpt")
    paths |= {name: folder / f"{name}.ckpt" for name in ("nan", "bare_state_dict", "list")}
    paths["missing"] = folder / "missing.ckpt"
    return paths


EXPECTED = {"random": "not a readable PyTorch checkpoint", "empty": "empty file (0 bytes)",
            "text": "not a readable PyTorch checkpoint", "truncated": "not a readable PyTorch checkpoint",
            "nan": "NaN or infinite value", "bare_state_dict": "not an mmemo EmotionClassifier checkpoint",
            "list": "it holds a list", "missing": "checkpoint not found"}


def test_bad_checkpoint_files_are_one_clear_error_in_every_command(good_checkpoint, tmp_path, capsys, caplog,
                                                                  tiny_corpus, monkeypatch):
    monkeypatch.setenv("MMEMO_MONITOR_TOKEN", "a-good-token-0123456789")
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)  # the message path, not a traceback
    logging.getLogger("mmemo").addHandler(caplog.handler)  # the CLI's logger does not propagate
    for name, path in _bad_files(good_checkpoint, tmp_path / "bad").items():
        with pytest.raises(CheckpointError) as error:
            load_classifier(path)
        assert str(error.value).startswith(f"{path}: ") and EXPECTED[name] in str(error.value), name
        audio = sorted(tiny_corpus.rglob("*.wav"))[0]
        commands = {
            "predict": ["predict", str(audio), "--model", str(path), "--no-progress"],
            "monitor": ["monitor", "serve", "--model", str(path), "--data-dir", str(tmp_path / "mon")],
        }
        for command, argv in commands.items():
            with pytest.raises(SystemExit) as exit_info:
                main(argv)
            err = capsys.readouterr().err
            assert exit_info.value.code == 2, (name, command)
            if name == "missing":  # predict and the monitor also take FunASR folders and hub ids
                assert f"error: model not found: {path} (expected an mmemo checkpoint" in err, command
            else:
                assert f"error: {path}: " in err and EXPECTED[name] in err, (name, command)
            assert "Traceback" not in err
        caplog.clear()
        with pytest.raises(SystemExit) as exit_info:
            main(["eval", f"ckpt_path={path}", f"paths.root_dir={tmp_path / 'eval'}", "hydra/job_logging=none"])
        assert exit_info.value.code == 2, (name, "eval")
        assert any(f"{path}: " in r.getMessage() and EXPECTED[name] in r.getMessage() for r in caplog.records), name
    logging.getLogger("mmemo").removeHandler(caplog.handler)


def test_a_good_checkpoint_still_loads_and_a_copy_elsewhere_too(good_checkpoint, tmp_path):
    model = load_classifier(good_checkpoint)
    assert model.classes == ["angry", "happy", "neutral", "sad"]
    copy = tmp_path / "moved" / "model.ckpt"
    copy.parent.mkdir()
    shutil.copy(good_checkpoint, copy)
    again = load_classifier(copy)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name

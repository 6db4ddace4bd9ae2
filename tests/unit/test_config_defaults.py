"""One source of truth for each default: a config that restates a code default must restate it exactly.

Configs are what users read and override, so they spell defaults out; these tests keep them equal to
the code's (signature defaults and module constants), so changing one without the other fails here.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from hydra.utils import get_class

from mmemo.config import config_dir

HYDRA_KEYS = {"_target_", "_partial_", "defaults", "name"}


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _signature_defaults(cls) -> dict:
    return {name: p.default for name, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _check_against_class(config: dict, where: str, allow_unknown: bool = False) -> None:
    cls = get_class(config["_target_"])
    parameters = inspect.signature(cls).parameters
    defaults = _signature_defaults(cls)
    takes_extra = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for key, value in config.items():
        if key in HYDRA_KEYS:
            continue
        if key not in parameters:
            assert allow_unknown or takes_extra, f"{where}: {key!r} is not an option of {cls.__name__}"
            continue
        if isinstance(value, str) and "${" in value:
            continue  # an interpolation: the config ties it to another key on purpose
        if key in defaults and isinstance(value, (int, float, str, bool, type(None))):
            assert value == defaults[key], f"{where}: {key}={value!r} but {cls.__name__} defaults to {defaults[key]!r}"


@pytest.mark.parametrize("path", sorted((config_dir() / "model" / "fusion").glob("*.yaml")), ids=lambda p: p.stem)
def test_fusion_configs_restate_their_heads_defaults(path):
    config = _yaml(path)
    assert config["_partial_"] is True and config["name"] == path.stem
    _check_against_class(config, str(path))


def test_model_defaults_are_the_classifiers():
    from mmemo.training.module import LOSS_DEFAULTS, OPTIM_DEFAULTS, EmotionClassifier

    config = _yaml(config_dir() / "model" / "default.yaml")
    assert get_class(config["_target_"]) is EmotionClassifier
    assert config["optim"] == OPTIM_DEFAULTS and config["loss"] == LOSS_DEFAULTS
    assert config["modality_dropout"] == _signature_defaults(EmotionClassifier)["modality_dropout"]


@pytest.mark.parametrize("name", ["manifest", "demo"])
def test_data_configs_name_only_options_the_data_module_has(name):
    config = {k: v for k, v in _yaml(config_dir() / "data" / f"{name}.yaml").items() if not k.startswith("_")}
    target = _yaml(config_dir() / "data" / f"{name}.yaml").get("_target_")
    assert target, f"data/{name}.yaml names no data module class"
    _check_against_class({"_target_": target, **config}, f"data/{name}.yaml")


@pytest.mark.parametrize("path", sorted((config_dir() / "model" / "speech").glob("*.yaml"))
                         + sorted((config_dir() / "model" / "text").glob("*.yaml")), ids=lambda p: p.stem)
def test_encoder_configs_name_only_options_their_encoder_has(path):
    config = _yaml(path)
    for parent in [d for d in config.get("defaults", []) if isinstance(d, str) and d != "_self_"]:
        config = {**_yaml(path.parent / f"{parent}.yaml"), **config}  # a config that extends a sibling
    if not config.get("_target_"):
        assert set(config) <= HYDRA_KEYS, f"{path}: no encoder, but options {sorted(set(config) - HYDRA_KEYS)}"
        return
    cls = get_class(config["_target_"])
    parameters = inspect.signature(cls).parameters
    unknown = set(config) - HYDRA_KEYS - set(parameters)
    assert not unknown, f"{path}: {sorted(unknown)} are not options of {cls.__name__}"


def test_the_feature_cache_folder_is_named_once():
    """Only configs/features/default.yaml names it; commands read it from the composed config."""
    package = Path(__file__).resolve().parents[2] / "mmemo"
    assert _yaml(config_dir() / "features" / "default.yaml")["dir"] == "${paths.root_dir}/cache/features"
    assert not [p for p in package.rglob("*.py") if "cache/features" in p.read_text(encoding="utf-8")]


def test_predict_and_monitor_options_are_their_dataclasses():
    import argparse

    from mmemo.arguments import add_options, from_options
    from mmemo.inference.predictor import BATCH_SECONDS, BATCH_SIZE, MAX_SECONDS
    from mmemo.inference.run import PredictOptions
    from mmemo.monitor.settings import MonitorSettings

    for cls, argv, given in ((PredictOptions, [], {}), (MonitorSettings, ["--model", "m.ckpt"], {"model": "m.ckpt"})):
        parser = argparse.ArgumentParser()
        add_options(parser, cls)
        assert from_options(cls, parser.parse_args(argv)) == cls(**given), cls.__name__
    options = PredictOptions()
    assert (options.batch_size, options.batch_seconds, options.max_seconds) == (BATCH_SIZE, BATCH_SECONDS, MAX_SECONDS)

"""Where the Hydra configs live, the custom resolvers they use, and composing them from code.

The config tree is the top-level ``configs/`` folder of the checkout (the
setup installs mmemo in editable mode). ``MMEMO_CONFIG_DIR`` points elsewhere.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from mmemo.errors import MissingInput, UserError

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def config_dir() -> Path:
    path = Path(os.environ.get("MMEMO_CONFIG_DIR", REPO_DIR / "configs"))
    if not (path / "train.yaml").is_file():
        raise MissingInput(
            f"mmemo's Hydra configs were not found in {path}. Install mmemo from its checkout "
            "(`make setup`, an editable install) or set MMEMO_CONFIG_DIR to a copy of configs/."
        )
    return path


def register_resolvers() -> None:
    """Resolvers used in configs: ``${packaged_model:module,fallback}``, ``${cwd:}``,
    ``${folder_name:path}`` (the last component of a path: a corpus named after its folder) and
    ``${selection:task}`` (the validation metric a task selects checkpoints on)."""
    from mmemo.data.targets import selection_metric
    from mmemo.encoders.packaged import packaged_model_dir

    if not OmegaConf.has_resolver("packaged_model"):
        OmegaConf.register_new_resolver("packaged_model", packaged_model_dir)
    if not OmegaConf.has_resolver("cwd"):
        OmegaConf.register_new_resolver("cwd", os.getcwd)
    if not OmegaConf.has_resolver("folder_name"):
        OmegaConf.register_new_resolver("folder_name", folder_name)
    if not OmegaConf.has_resolver("selection"):
        OmegaConf.register_new_resolver("selection", selection_metric)


def folder_name(path) -> str:
    """``/data/corpora/ravdess/`` -> ``ravdess`` (``???`` and empty paths give ``corpus``)."""
    text = str(path or "").rstrip("/\\")
    return Path(text).name or "corpus"


def compose(config_name: str = "train", overrides: Sequence[str] = (), output_dir: str | None = None) -> DictConfig:
    """Compose a config as ``mmemo <command>`` would, for in-process runs (demo, tests).

    Sets Hydra's runtime state so ``${hydra:runtime.output_dir}`` resolves to
    ``output_dir`` (or a timestamped run folder).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = hydra_compose(config_name, overrides=list(overrides), return_hydra_config=True)
    run_dir = output_dir or cfg.hydra.run.dir
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(Path(run_dir).resolve())
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return cfg


class ConfigError(UserError, ValueError):
    """A config value that no mmemo option can take; the message names the key."""


def check_finite(cfg) -> None:
    """Refuse a config holding NaN or infinity anywhere (``data.max_seconds=nan``, ``model.optim.lr=inf``).

    Hydra parses ``nan``/``inf`` overrides as floats, and no mmemo option means anything by them.
    """
    container = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg
    for key, value in _leaves(container):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config key {key} is {value}: options must be finite numbers")


def _leaves(node, prefix: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, f"{prefix}[{index}]")
    else:
        yield prefix, node

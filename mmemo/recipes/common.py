"""What every recipe builds the same way: encoders, the model, the feature cache, loggers, run metadata.

Recipes (``mmemo/recipes/<name>.py``) are peers: each is selected by the config's ``recipe``
(``_target_``), uses these helpers, and never imports another recipe.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from mmemo.encoders.build import encoder_spec
from mmemo.errors import InvalidInput
from mmemo.evaluation.report import read_metrics
from mmemo.training.module import MODALITIES
from mmemo.training.provenance import environment, git_state

log = logging.getLogger(__name__)

#: ``modalities=`` choices: every non-empty subset of speech, text and video ("both" is speech + text).
MODALITY_SETS = {"both": ("speech", "text"), "speech": ("speech",), "text": ("text",), "video": ("video",),
                 "speech+text": ("speech", "text"), "speech+video": ("speech", "video"),
                 "text+video": ("text", "video"), "all": ("speech", "text", "video")}


def container(node) -> dict:
    """A config node as plain data ({} for None)."""
    if node is None:
        return {}
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


def selected_specs(cfg: DictConfig) -> dict[str, dict | None]:
    """The speech, text and video encoder configs this run uses (``modalities`` can switch some off)."""
    choice = str(cfg.get("modalities", "both"))
    if choice not in MODALITY_SETS:
        raise InvalidInput(f"modalities must be one of {list(MODALITY_SETS)}, got {choice!r}")
    specs = {m: encoder_spec(cfg.model.get(m)) if m in MODALITY_SETS[choice] else None for m in MODALITIES}
    if not any(specs.values()):
        raise InvalidInput(f"modalities={choice} with model/speech, model/text and model/video as configured "
                           "leaves no modality")
    wanted = [m for m in MODALITY_SETS[choice] if specs[m] is None]
    if wanted and choice != "both":
        raise InvalidInput(f"modalities={choice} needs model/{wanted[0]} (it is none)")
    return specs


def model_class(cfg: DictConfig):
    """The LightningModule class ``model._target_`` names."""
    target = cfg.model.get("_target_")
    if not target:
        raise InvalidInput("the model config has no _target_ (e.g. mmemo.training.module.EmotionClassifier)")
    return get_class(target)


def model_specs(cfg: DictConfig) -> dict[str, dict | None]:
    """The encoder configs the model class takes from the selected ones (a model may drop some)."""
    return model_class(cfg).encoder_specs(container(cfg.model), selected_specs(cfg))


def build_model(cfg: DictConfig, datamodule):
    """``model._target_`` with the data's classes and training class counts, and the run's config."""
    counts = Counter(e.label for e in datamodule.datasets["train"].examples)
    specs = model_specs(cfg)
    model_cfg = {k: v for k, v in container(cfg.model).items() if k not in (*MODALITIES, "_target_")}
    task = getattr(datamodule, "task", "categorical")
    if model_cfg.get("task", task) != task:
        raise InvalidInput(f"model.task={model_cfg['task']} but data.task={task}: set the top-level task= "
                           "(it sets both)")
    if task != "categorical":
        model_cfg |= {"task": task, "dimensions": [d.name for d in datamodule.dimensions]}
        if datamodule.dimensions:
            from mmemo.training.objectives import dimension_stats

            model_cfg["dimension_stats"] = dimension_stats([e.dimensions for e in datamodule.datasets["train"].examples
                                                            if e.dimensions is not None])
    model = model_class(cfg)(classes=list(datamodule.classes), **{m: specs.get(m) for m in MODALITIES},
                             class_counts=[counts.get(i, 0) for i in range(len(datamodule.classes))], **model_cfg)
    model.run_config = resolved_config(cfg)
    return model


def frozen_in_config(spec: dict | None) -> bool:
    """Whether an encoder config is frozen, read without building it (its class's default if unset)."""
    if not spec:
        return False
    if "trainable" in spec:
        return spec["trainable"] == "frozen"
    import inspect

    default = inspect.signature(get_class(spec["_target_"])).parameters.get("trainable")
    return default is not None and default.default == "frozen"


def served_from_cache(cfg: DictConfig, specs: dict[str, dict | None], modality: str) -> bool:
    """A modality read from the feature cache: the data module need not decode its audio (or video)."""
    return (cfg.get("features") or {}).get("cache") == "auto" and frozen_in_config(specs.get(modality))


def feature_cache(cfg: DictConfig, model):
    """The model's frozen encoders served from their feature stores (``features.*``)."""
    from mmemo.features.cached import FeatureCache

    encoders = dict(model.encoders.items())
    return FeatureCache(encoders, container(cfg.features), type(model).serving(container(cfg.model), encoders))


def instantiate_all(node) -> list:
    """Every ``_target_`` entry of a group such as ``logger`` or ``callbacks``."""
    return [instantiate(spec) for spec in (node or {}).values() if spec is not None and "_target_" in spec]


def resolved_config(cfg: DictConfig) -> dict:
    """The run's config as plain data, without Hydra's own section."""
    return {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "hydra"}


def run_metadata(cfg: DictConfig, datamodule, started: float) -> dict:
    splits = datamodule.splits
    return {
        "task_name": cfg.get("task_name"),
        "dataset": datamodule.name,
        "fold": datamodule.fold,
        "seed": cfg.get("seed"),
        "classes": list(datamodule.classes),
        "task": getattr(datamodule, "task", "categorical"),
        "dimensions": {d.name: [d.low, d.high] for d in getattr(datamodule, "dimensions", [])},
        "data_fingerprint": datamodule.fingerprint,
        "data": datamodule.provenance(),
        "split_sizes": {name: len(ds) for name, ds in datamodule.datasets.items()},
        "valid_origin": splits.valid_origin if splits else None,
        "skipped_audio": len(datamodule.skipped),
        "asr": datamodule.asr_report.to_json() if getattr(datamodule, "asr_report", None) else None,
        "git": git_state(),
        "environment": environment(),
        "output_dir": str(Path(cfg.paths.output_dir).resolve()),
        "duration_s": round(time.time() - started, 1),
        "config": resolved_config(cfg),
    }


def finished_run(output_dir: Path, cfg: DictConfig) -> dict | None:
    """The results of a run already finished in ``output_dir`` with this exact config, if any.

    Lets a rerun of a sweep skip the jobs it completed (``reuse_finished: true``);
    a job whose config changed since is trained again.
    """
    if not (output_dir / "metrics.json").is_file():
        return None
    stored = read_metrics(output_dir)
    current = json.loads(json.dumps(resolved_config(cfg), default=str))
    previous = stored.get("meta", {}).get("config") or {}
    if previous == current:
        log.info("reusing the finished run in %s (reuse_finished=true)", output_dir)
        return stored
    changed = sorted(differences(previous, current))
    log.warning("%s holds a run with a different config (%s); training again", output_dir,
                ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else ""))
    return None


def differences(a, b, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [prefix or "<root>"] if a != b else []
    found = []
    for key in set(a) | set(b):
        found += differences(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
    return found

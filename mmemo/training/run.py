"""``train`` and ``evaluate``: one configuration from config to result files.

Reads top to bottom like the recipe it is: data, model, loggers, trainer, fit,
select the best checkpoint on validation UA, test it once, write results.
``train`` returns the metrics so sweeps can optimise validation UA.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from mmemo.data.leakage import check_monitor, check_pretraining_overlap
from mmemo.evaluation.report import write_run_report
from mmemo.fusion.base import head_needs_frames
from mmemo.training.loggers import finish_wandb
from mmemo.training.module import EmotionClassifier, load_classifier
from mmemo.training.provenance import environment, git_state

log = logging.getLogger(__name__)


def encoder_spec(node) -> dict | None:
    """The encoder's config as a plain dict, or None for ``model/<modality>=none``."""
    if node is None:
        return None
    spec = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    return None if not spec or spec.get("none") else spec


MODALITY_SETS = {"both": ("speech", "text"), "speech": ("speech",), "text": ("text",)}


def selected_specs(cfg: DictConfig) -> dict[str, dict | None]:
    """The speech and text encoder configs this run uses (``modalities`` can switch one off)."""
    choice = str(cfg.get("modalities", "both"))
    if choice not in MODALITY_SETS:
        raise ValueError(f"modalities must be one of {list(MODALITY_SETS)}, got {choice!r}")
    specs = {m: encoder_spec(cfg.model.get(m)) if m in MODALITY_SETS[choice] else None for m in ("speech", "text")}
    if not any(specs.values()):
        raise ValueError(f"modalities={choice} with model/speech and model/text as configured leaves no modality")
    return specs


def _container(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def instantiate_all(node) -> list:
    return [instantiate(spec) for spec in (node or {}).values() if spec is not None and "_target_" in spec]


_SHARED_ENCODERS: dict[str, object] = {}


def build_encoder(spec: dict):
    """Instantiate an encoder; fully frozen ones are shared by the jobs of an in-process sweep.

    A frozen pretrained encoder is identical in every job of a Hydra multirun, so
    loading and fingerprinting it once (not once per job) saves seconds per job.
    Encoders with anything trainable are always built fresh.
    """
    key = json.dumps(spec, sort_keys=True, default=str)
    shared = _SHARED_ENCODERS.get(key)
    if shared is not None:
        return shared
    encoder = instantiate(spec, _convert_="all")
    if encoder.fully_frozen:
        while len(_SHARED_ENCODERS) >= 4:  # a sweep uses a few encoders; do not hoard memory
            _SHARED_ENCODERS.pop(next(iter(_SHARED_ENCODERS)))
        _SHARED_ENCODERS[key] = encoder
    return encoder


def attach_feature_cache(datamodule, encoders: dict, features_cfg, head: str | None = None,
                         frame_stride: dict | None = None, pooling: str = "mean") -> dict:
    """With ``features.cache=auto``, serve every frozen encoder from its feature store.

    When the fusion ``head`` pools each modality first, features are served as each
    utterance's moments (mean and mean of squares) instead of as frames (same result, much
    less work) - except for a learned layer mix with ``pooling=mean_std``, whose std needs the
    mixed frames; when the head first averages frames in windows (``frame_stride``), they are
    served in those windows.
    """
    import torch

    from mmemo.features.extract import FeatureSource, open_store

    options = {"cache": "auto", "dir": "cache/features", "storage": "frames", "dtype": "float32",
               "batch_size": 16, "device": "auto", **(_container(features_cfg) if features_cfg else {})}
    if options["cache"] not in ("auto", "off"):
        raise ValueError(f"features.cache must be 'auto' or 'off', got {options['cache']!r}")
    if options["cache"] == "off":
        return {}
    device = options["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    sources = {m: FeatureSource(m, encoder, open_store(encoder, options["dir"], options["storage"], options["dtype"]))
               for m, encoder in encoders.items() if encoder.frozen}
    mixed = any(getattr(e, "mixer", None) is not None for e in encoders.values())
    pooled = head is not None and not head_needs_frames(head) and not (mixed and pooling == "mean_std")
    datamodule.use_features(sources, batch_size=int(options["batch_size"]), device=device, pooled=pooled,
                            frame_stride=None if pooled else dict(frame_stride or {}))
    for modality, source in sources.items():
        log.info("%s features of %s are cached in %s", modality, source.encoder.name, source.store.folder)
    return sources


def resolved_config(cfg: DictConfig) -> dict:
    """The run's config as plain data, without Hydra's own section."""
    return {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "hydra"}


def run_metadata(cfg: DictConfig, datamodule, started: float) -> dict:
    config = resolved_config(cfg)
    splits = datamodule.splits
    return {
        "task_name": cfg.get("task_name"),
        "dataset": datamodule.name,
        "fold": datamodule.fold,
        "seed": cfg.get("seed"),
        "classes": list(datamodule.classes),
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
        "config": config,
    }


#: ``model.kind``: a classifier over encoder outputs, or Whisper generating the label as text.
MODEL_KINDS = ("classifier", "whisper_label_generation")


def train(cfg: DictConfig) -> dict:
    """Train one configuration, test its best-validation checkpoint, write the run's files."""
    if cfg.get("pipeline", "neural") == "classical":
        from mmemo.baselines.classical import run_classical

        return run_classical(cfg)
    from mmemo.sweeps.crossval import train_folds, wants_folds

    if wants_folds(cfg):  # cross_validation.folds=[...]: one job trains each fold, returns the mean
        return train_folds(cfg)
    started = time.time()
    output_dir = Path(cfg.paths.output_dir)
    if cfg.get("reuse_finished"):
        finished = finished_run(output_dir, cfg)
        if finished is not None:
            return finished
    L.seed_everything(cfg.seed, workers=True)
    specs = selected_specs(cfg)
    speech, text = specs["speech"], specs["text"]

    kind = cfg.model.get("kind", "classifier")
    if kind not in MODEL_KINDS:
        raise ValueError(f"model.kind must be one of {MODEL_KINDS}, got {kind!r}")
    generating = kind == "whisper_label_generation"
    if generating:
        text = None  # the decoder reads transcripts as targets (joint mode), not through a text encoder
    encoders = {m: build_encoder(spec) for m, spec in (("speech", speech), ("text", text)) if spec}
    needs_text = text is not None or (generating and bool(cfg.model.generation.get("joint_transcript")))
    datamodule = instantiate(cfg.data, use_audio=speech is not None, use_text=needs_text)
    head = None if generating else cfg.model.fusion.get("name", "concat")
    attach_feature_cache(datamodule, encoders, cfg.get("features"), head=head,
                         frame_stride=None if generating else cfg.model.fusion.get("frame_stride"),
                         pooling=cfg.model.fusion.get("pooling", "mean_std"))
    datamodule.setup("fit")
    train_counts = Counter(e.label for e in datamodule.datasets["train"].examples)
    common = dict(classes=list(datamodule.classes), speech=speech, optim=_container(cfg.model.get("optim")),
                  loss=_container(cfg.model.get("loss")), encoders=encoders,
                  class_counts=[train_counts.get(i, 0) for i in range(len(datamodule.classes))])
    if generating:
        from mmemo.training.whisper_labels import WhisperLabelClassifier

        model = WhisperLabelClassifier(**common, generation=_container(cfg.model.generation))
    else:
        model = EmotionClassifier(**common, text=text, fusion=_container(cfg.model.fusion),
                                  modality_dropout=float(cfg.model.get("modality_dropout", 0.0)))
    model.run_config = resolved_config(cfg)
    loggers = instantiate_all(cfg.get("logger"))
    callbacks = instantiate_all(cfg.get("callbacks"))
    for callback in callbacks:
        check_monitor(getattr(callback, "monitor", None))
    for spec in (speech, text):
        warning = check_pretraining_overlap(spec.get("path") if spec else None, datamodule.name)
        if warning:
            log.warning("%s", warning)
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks,
                                     default_root_dir=str(output_dir))
    for logger in loggers:
        logger.log_hyperparams(model.run_config)

    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
        best = next((c.best_model_path for c in callbacks if isinstance(c, ModelCheckpoint)), "") or None
        if best is None and not trainer.fast_dev_run:
            log.warning("no checkpoint was saved; testing the final weights")
        trainer.validate(model, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
        valid = model.results["val"]
        test = None
        if cfg.get("test", True):
            trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
            test = model.results["test"]
        meta = run_metadata(cfg, datamodule, started) | {"best_checkpoint": best,
                                                         "best_epoch": _epoch_of(best)}
        if test is not None and trainer.is_global_zero:  # under DDP every rank holds the same gathered results
            write_run_report(output_dir, test=test, valid=valid, meta=meta, predictions=model.test_predictions)
            datamodule.write_file_list(output_dir)
            _log_images(loggers, output_dir)
        log.info("%s fold %d: valid UA %.4f | test UA %s -> %s", datamodule.name, datamodule.fold,
                 valid["UA"], f"{test['UA']:.4f}" if test else "not run", output_dir)
        return {"test": test, "valid": valid, "meta": meta}
    finally:
        finish_wandb()


def finished_run(output_dir: Path, cfg: DictConfig) -> dict | None:
    """The results of a run already finished in ``output_dir`` with this exact config, if any.

    Lets a rerun of a sweep skip the jobs it completed (``reuse_finished: true``);
    a job whose config changed since is trained again.
    """
    path = output_dir / "metrics.json"
    if not path.is_file():
        return None
    stored = json.loads(path.read_text(encoding="utf-8"))
    current = json.loads(json.dumps(resolved_config(cfg), default=str))
    previous = stored.get("meta", {}).get("config") or {}
    if previous == current:
        log.info("reusing the finished run in %s (reuse_finished=true)", output_dir)
        return stored
    changed = sorted(_differences(previous, current))
    log.warning("%s holds a run with a different config (%s); training again", output_dir,
                ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else ""))
    return None


def _differences(a, b, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [prefix or "<root>"] if a != b else []
    found = []
    for key in set(a) | set(b):
        found += _differences(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
    return found


def _epoch_of(checkpoint: str | None) -> int | None:
    if not checkpoint:
        return None
    import torch

    return torch.load(checkpoint, map_location="cpu", weights_only=True).get("epoch")


def _log_images(loggers: list, output_dir: Path) -> None:
    for logger in loggers:
        if hasattr(logger, "log_image") and (output_dir / "confusion_matrix.png").is_file():
            logger.log_image("test/confusion_matrix", [str(output_dir / "confusion_matrix.png")])


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate a checkpoint on a split: its own run's data by default, or ``data=...``."""
    started = time.time()
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    model = load_classifier(cfg.ckpt_path)
    if cfg.get("data") is not None:
        data_cfg = cfg.data
    elif model.run_config.get("data"):
        data_cfg = OmegaConf.create(model.run_config["data"])
    else:
        raise ValueError("this checkpoint does not record its data config; pass data=... explicitly")
    datamodule = instantiate(data_cfg, use_audio="speech" in model.modalities, use_text=model.needs_text,
                             classes=model.classes, output_dir=str(output_dir), synthesize_if_missing=False)
    datamodule.setup("test")
    if tuple(datamodule.classes) != tuple(model.classes):
        raise ValueError(f"the data's classes {list(datamodule.classes)} differ from the model's {model.classes}")
    loggers = instantiate_all(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, default_root_dir=str(output_dir))
    split = cfg.get("split", "test")
    loader = {"test": datamodule.test_dataloader, "valid": datamodule.val_dataloader,
              "train": datamodule.train_dataloader}[split]
    trainer.test(model, dataloaders=loader(), verbose=False)
    result = model.results["test"]
    meta = run_metadata(cfg, datamodule, started) | {"checkpoint": str(Path(cfg.ckpt_path).resolve()),
                                                     "split": split}
    if trainer.is_global_zero:
        write_run_report(output_dir, test=result, meta=meta, predictions=model.test_predictions)
        datamodule.write_file_list(output_dir)
    log.info("eval %s on %s fold %d (%s): UA %.4f WA %.4f -> %s", cfg.ckpt_path, datamodule.name,
             datamodule.fold, split, result["UA"], result["WA"], output_dir)
    return {"test": result, "meta": meta}

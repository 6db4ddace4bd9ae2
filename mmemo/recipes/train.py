"""Neural training: data, model, feature cache, trainer; fit, select on validation, test once, write results.

Reads top to bottom like the recipe it is. Returns the metrics so sweeps can optimise the
task's validation metric (UA, or the mean CCC for dimensional runs).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from mmemo.data.leakage import check_monitor, check_pretraining_overlap
from mmemo.evaluation.breakdown import accuracy_by_field, field_values
from mmemo.evaluation.report import write_run_report
from mmemo.recipes.common import (
    build_model,
    container,
    feature_cache,
    finished_run,
    instantiate_all,
    model_class,
    model_specs,
    run_metadata,
    served_from_cache,
)
from mmemo.training.loggers import finish_wandb
from mmemo.training.objectives import headline

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Train one configuration, test its best-validation checkpoint, write the run's files."""
    started = time.time()
    output_dir = Path(cfg.paths.output_dir)
    if cfg.get("reuse_finished"):
        finished = finished_run(output_dir, cfg)
        if finished is not None:
            return finished
    L.seed_everything(cfg.seed, workers=True)
    specs = model_specs(cfg)
    needs_text = model_class(cfg).needs_transcripts(container(cfg.model), specs)
    video = {"use_video": True, "decode_video": not served_from_cache(cfg, specs, "video")} \
        if specs.get("video") is not None else {}
    datamodule = instantiate(cfg.data, use_audio=specs["speech"] is not None, use_text=needs_text,
                             decode_audio=not served_from_cache(cfg, specs, "speech"), **video)
    datamodule.setup("fit")
    model = build_model(cfg, datamodule)
    feature_cache(cfg, model).attach(datamodule)

    loggers = instantiate_all(cfg.get("logger"))
    callbacks = instantiate_all(cfg.get("callbacks"))
    for callback in callbacks:
        check_monitor(getattr(callback, "monitor", None))
    for spec in specs.values():
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
            cues = field_values(e.utterance for e in datamodule.datasets["test"].examples)
            if cues and "UA" in test:  # the demo corpora say which modality carries each label
                test = {**test, "accuracy_by_cue": accuracy_by_field(model.test_predictions, cues)}
        meta = run_metadata(cfg, datamodule, started) | {"best_checkpoint": best, "best_epoch": _epoch_of(best)}
        if test is not None and trainer.is_global_zero:  # under DDP every rank holds the same gathered results
            write_run_report(output_dir, test=test, valid=valid, meta=meta, predictions=model.test_predictions)
            datamodule.write_file_list(output_dir)
            _log_images(loggers, output_dir)
        log.info("%s fold %d: valid %s | test %s -> %s", datamodule.name, datamodule.fold,
                 headline(valid), headline(test) if test else "not run", output_dir)
        return {"test": test, "valid": valid, "meta": meta}
    finally:
        finish_wandb()


def _epoch_of(checkpoint: str | None) -> int | None:
    return torch.load(checkpoint, map_location="cpu", weights_only=True).get("epoch") if checkpoint else None


def _log_images(loggers: list, output_dir: Path) -> None:
    for logger in loggers:
        if hasattr(logger, "log_image") and (output_dir / "confusion_matrix.png").is_file():
            logger.log_image("test/confusion_matrix", [str(output_dir / "confusion_matrix.png")])

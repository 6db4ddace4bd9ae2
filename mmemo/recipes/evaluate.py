"""Test a checkpoint on a split (``mmemo eval ckpt_path=...``): its own run's data, or ``data=...``."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mmemo.errors import InvalidInput
from mmemo.evaluation.report import write_run_report
from mmemo.recipes.common import instantiate_all, run_metadata
from mmemo.training.module import load_classifier
from mmemo.training.objectives import headline

log = logging.getLogger(__name__)
SPLITS = ("test", "valid", "train")


def stored_data_config(model) -> DictConfig:
    """The data config a checkpoint's run used (runs before the demo corpus had its own class say so)."""
    data = dict(model.run_config.get("data") or {})
    if not data:
        raise InvalidInput("this checkpoint does not record its data config; pass data=... explicitly")
    if "synthesize_if_missing" in data and data.get("_target_", "").endswith(".EmotionDataModule"):
        data["_target_"] = "mmemo.data.demo_corpus.DemoDataModule"
    return OmegaConf.create(data)


def run(cfg: DictConfig) -> dict:
    started = time.time()
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    split = cfg.get("split", "test")
    if split not in SPLITS:
        raise InvalidInput(f"split must be one of {SPLITS}, got {split!r}")
    model = load_classifier(cfg.ckpt_path)
    data_cfg = cfg.data if cfg.get("data") is not None else stored_data_config(model)
    video = {"use_video": True} if "video" in model.modalities else {}
    datamodule = instantiate(data_cfg, use_audio="speech" in model.modalities, use_text=model.needs_text,
                             classes=model.classes, output_dir=str(output_dir), task=model.task, **video)
    datamodule.setup("test")
    if tuple(datamodule.classes) != tuple(model.classes):
        raise InvalidInput(f"the data's classes {list(datamodule.classes)} differ from the model's {model.classes}")
    if [d.name for d in datamodule.dimensions] != list(model.dimensions):
        raise InvalidInput(f"the data's dimensions {[d.name for d in datamodule.dimensions]} differ from the "
                           f"model's {model.dimensions}")
    loggers = instantiate_all(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, default_root_dir=str(output_dir))
    loader = {"test": datamodule.test_dataloader, "valid": datamodule.val_dataloader,
              "train": datamodule.train_dataloader}[split]
    trainer.test(model, dataloaders=loader(), verbose=False)
    result = model.results["test"]
    meta = run_metadata(cfg, datamodule, started) | {"checkpoint": str(Path(cfg.ckpt_path).resolve()), "split": split}
    if trainer.is_global_zero:
        write_run_report(output_dir, test=result, meta=meta, predictions=model.test_predictions)
        datamodule.write_file_list(output_dir)
    log.info("eval %s on %s fold %d (%s): %s -> %s", cfg.ckpt_path, datamodule.name,
             datamodule.fold, split, headline(result), output_dir)
    return {"test": result, "meta": meta}

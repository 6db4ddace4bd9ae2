"""The classical baseline on a fold (``recipe=classical``): utterance statistics + scikit-learn.

Statistics (``classical.features``): ``mfcc`` and ``egemaps_like`` from the audio
(:mod:`mmemo.baselines.classical`), or ``encoders``: the mean and std over frames of every
selected frozen encoder's cached features (the linear-probe baseline of SSL papers, on the same
features a fusion head reads). Hyper-parameters are chosen on the validation split (carved from
training speakers), never on test. The run writes the same files as a neural run, so both sit in
one table.
"""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mmemo.baselines.classical import FEATURES, make_classifier, statistics
from mmemo.errors import InvalidInput
from mmemo.evaluation.metrics import compute_metrics
from mmemo.evaluation.report import write_run_report
from mmemo.features.cached import FeatureCache, Serving
from mmemo.recipes.common import (
    container,
    instantiate_all,
    resolved_config,
    run_metadata,
    selected_specs,
)
from mmemo.training.loggers import finish_wandb

log = logging.getLogger(__name__)


def encoder_statistics(cfg: DictConfig):
    """Mean and std over frames of every selected frozen encoder's cached features, per utterance."""
    from mmemo.encoders.build import build_encoder

    specs = {m: spec for m, spec in selected_specs(cfg).items() if spec}
    encoders = {m: build_encoder(spec) for m, spec in specs.items()}
    trainable = [m for m, e in encoders.items() if not e.frozen]
    if trainable:
        raise InvalidInput(f"classical.features=encoders probes frozen features; model.{trainable[0]}.trainable is "
                           f"{encoders[trainable[0]].trainable!r}")
    options = container(cfg.features)
    if options.get("cache") != "auto":
        raise InvalidInput("classical.features=encoders reads the feature cache: set features.cache=auto")
    datamodule = instantiate(cfg.data, use_audio="speech" in encoders, use_text="text" in encoders,
                             decode_audio="speech" not in encoders)
    datamodule.setup("fit")
    FeatureCache(encoders, options, Serving(pooled=False)).attach(datamodule)
    data = {}
    for split, dataset in datamodule.datasets.items():
        rows = []
        for index in range(len(dataset)):
            item = dataset[index]
            parts = []
            for modality in encoders:
                frames = np.asarray(item[f"{modality}_features"], dtype=np.float64)
                frames = frames.reshape(frames.shape[0], -1)
                parts += [frames.mean(0), frames.std(0)]
            rows.append(np.concatenate(parts))
        data[split] = (np.vstack(rows), np.asarray([e.label for e in dataset.examples]))
    return datamodule, data


def run(cfg: DictConfig) -> dict:
    """Compute the statistics, pick hyper-parameters on validation UA, test once, write results."""
    started = time.time()
    options = OmegaConf.to_container(cfg.classical, resolve=True)
    if options["features"] not in FEATURES:
        raise InvalidInput(f"classical.features must be one of {FEATURES}, got {options['features']!r}")
    output_dir = Path(cfg.paths.output_dir)
    if options["features"] == "encoders":
        datamodule, data = encoder_statistics(cfg)
    else:
        datamodule = instantiate(cfg.data, use_audio=True, use_text=False)
        datamodule.setup("fit")
        data = {split: statistics(ds, options["features"], f"{options['features']} features ({split})")
                for split, ds in datamodule.datasets.items()}
    classes = list(datamodule.classes)
    grid = options.get("grid", {}).get(options["classifier"], {}) or {}
    candidates = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    if datamodule.task == "dimensional":
        return _regress(cfg, datamodule, data, options, candidates, started)
    if options["classifier"] == "ridge":
        raise InvalidInput("classical.classifier=ridge regresses dimensions: use it with task=dimensional")
    best = None
    for params in candidates:
        model = make_classifier(options["classifier"], params, cfg.seed).fit(*data["train"])
        valid = compute_metrics(model.predict(data["valid"][0]), data["valid"][1], classes)
        log.info("classical %s %s: valid UA %.4f", options["classifier"], params, valid["UA"])
        if best is None or valid["UA"] > best[1]["UA"]:
            best = (model, valid, params)
    model, valid, params = best
    predictions = model.predict(data["test"][0])
    test = compute_metrics(predictions, data["test"][1], classes)
    examples = datamodule.datasets["test"].examples
    rows = [{"key": e.utterance.key, "speaker": e.utterance.speaker or "", "label": classes[e.label],
             "prediction": classes[int(p)]} for e, p in zip(examples, predictions)]
    meta = run_metadata(cfg, datamodule, started) | {"classical": options, "selected_params": params}
    write_run_report(output_dir, test=test, valid=valid, meta=meta, predictions=rows,
                     title=f"{options['features']} + {options['classifier']}: test UA {100 * test['UA']:.1f}%")
    datamodule.write_file_list(output_dir)
    loggers = instantiate_all(cfg.get("logger"))
    try:
        for logger in loggers:
            logger.log_hyperparams(resolved_config(cfg))
            logger.log_metrics({f"{stage}/{name}": result[name] for stage, result in
                                (("val", valid), ("test", test)) for name in ("UA", "WA", "macro_F1", "weighted_F1")})
            logger.save()
    finally:
        finish_wandb()
    log.info("classical %s + %s fold %d: valid UA %.4f | test UA %.4f -> %s", options["features"],
             options["classifier"], datamodule.fold, valid["UA"], test["UA"], output_dir)
    return {"test": test, "valid": valid, "meta": meta}


def _regress(cfg: DictConfig, datamodule, data: dict, options: dict, candidates: list[dict], started: float) -> dict:
    """task=dimensional: ridge regression of every dimension, alpha chosen on validation mean CCC."""
    import torch
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mmemo.evaluation.dimensional import DimensionalMetrics

    if options["classifier"] != "ridge":
        raise InvalidInput(f"task=dimensional needs classical.classifier=ridge, got {options['classifier']!r}")
    names = [d.name for d in datamodule.dimensions]
    targets = {split: np.array([e.dimensions for e in ds.examples], dtype=np.float64)
               for split, ds in datamodule.datasets.items()}

    def scored(split: str, predicted: np.ndarray) -> dict:
        metric = DimensionalMetrics(names)
        known = ~np.isnan(targets[split])
        metric.update(torch.from_numpy(predicted), torch.from_numpy(np.nan_to_num(targets[split])),
                      torch.from_numpy(known))
        return {"task": "dimensional", **metric.summary(), "n": len(predicted)}

    complete = ~np.isnan(targets["train"]).any(1)   # ridge fits every dimension at once
    best = None
    for params in candidates:
        model = make_pipeline(StandardScaler(), Ridge(**params)).fit(data["train"][0][complete],
                                                                      targets["train"][complete])
        valid = scored("valid", model.predict(data["valid"][0]))
        log.info("classical ridge %s: valid CCC %.4f", params, valid["CCC"])
        if best is None or valid["CCC"] > best[1]["CCC"]:
            best = (model, valid, params)
    model, valid, params = best
    predicted = model.predict(data["test"][0])
    test = scored("test", predicted)
    rows = [{"key": e.utterance.key, "speaker": e.utterance.speaker or "",
             **{k: v for d, name in enumerate(names) for k, v in
                ((name, round(float(predicted[i, d]), 5)),
                 (f"{name}_true", "" if np.isnan(targets["test"][i, d]) else round(float(targets["test"][i, d]), 5)))}}
            for i, e in enumerate(datamodule.datasets["test"].examples)]
    meta = run_metadata(cfg, datamodule, started) | {"classical": options, "selected_params": params}
    output_dir = Path(cfg.paths.output_dir)
    write_run_report(output_dir, test=test, valid=valid, meta=meta, predictions=rows)
    datamodule.write_file_list(output_dir)
    log.info("classical %s + ridge fold %d: valid CCC %.4f | test CCC %.4f -> %s", options["features"],
             datamodule.fold, valid["CCC"], test["CCC"], output_dir)
    return {"test": test, "valid": valid, "meta": meta}

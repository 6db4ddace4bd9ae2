"""The classical baseline SER tutorials start with: utterance statistics + scikit-learn.

Features (``classical.features``):

* ``mfcc``: 40 MFCCs per 25 ms frame, pooled by mean and standard deviation (80 values);
* ``egemaps_like``: eGeMAPS-style low-level descriptors (F0 and voicing, loudness,
  spectral slope/centroid/flux/flatness, zero-crossing rate, 4 MFCCs) pooled by
  mean, std and 20/50/80th percentiles, plus pause and rate statistics. It is
  *like* eGeMAPS, not the openSMILE reference implementation.

* ``encoders``: the linear-probe baseline of SSL papers on the run's own frozen encoders
  (``model/speech``, ``model/text``, ``modalities``): every modality's cached frames pooled
  by mean and standard deviation, concatenated. With ``classical.classifier=logistic_regression``
  this is the probe a fusion head must not lose to (the same frozen features, the same folds).

Classifiers (``classical.classifier``): ``svm``, ``random_forest``,
``logistic_regression``, ``mlp``. Hyper-parameters are chosen on the
validation split (carved from training speakers), never on test. The run
writes the same files as a neural run, so both sit in one table.
"""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import librosa
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from tqdm.auto import tqdm

from mmemo.data.audio import SAMPLE_RATE
from mmemo.evaluation.metrics import compute_metrics
from mmemo.evaluation.report import write_run_report

log = logging.getLogger(__name__)
FEATURES = ("mfcc", "egemaps_like", "encoders")
_WIN, _HOP = 400, 160  # 25 ms / 10 ms at 16 kHz


def mfcc_statistics(wave: np.ndarray) -> np.ndarray:
    """Mean and standard deviation of 40 MFCCs (80 values)."""
    mfcc = librosa.feature.mfcc(y=wave, sr=SAMPLE_RATE, n_mfcc=40, n_fft=512, win_length=_WIN, hop_length=_HOP)
    return np.concatenate([mfcc.mean(1), mfcc.std(1)])


def _functionals(track: np.ndarray) -> list[float]:
    if track.size == 0:
        return [0.0] * 5
    return [float(track.mean()), float(track.std()), *map(float, np.percentile(track, [20, 50, 80]))]


def egemaps_like_statistics(wave: np.ndarray) -> np.ndarray:
    """eGeMAPS-style descriptors and functionals (see the module docstring)."""
    spectrum = np.abs(librosa.stft(wave, n_fft=512, win_length=_WIN, hop_length=_HOP)) ** 2
    rms = librosa.feature.rms(S=np.sqrt(spectrum), frame_length=512)[0]
    loudness = np.log(rms + 1e-6)
    voiced_frames = rms > 0.1 * (rms.max() + 1e-9)
    f0 = librosa.yin(wave, fmin=60, fmax=500, sr=SAMPLE_RATE, frame_length=1024, hop_length=_HOP)
    count = min(len(f0), len(voiced_frames))
    f0_voiced = np.log(f0[:count][voiced_frames[:count]])
    centroid = librosa.feature.spectral_centroid(S=spectrum, sr=SAMPLE_RATE)[0]
    flatness = librosa.feature.spectral_flatness(S=spectrum)[0]
    zcr = librosa.feature.zero_crossing_rate(wave, frame_length=_WIN, hop_length=_HOP)[0]
    flux = np.sqrt((np.diff(np.log(spectrum + 1e-10), axis=1) ** 2).mean(0)) if spectrum.shape[1] > 1 else np.zeros(1)
    freqs = librosa.fft_frequencies(sr=SAMPLE_RATE, n_fft=512)
    low, high = freqs < 1000, (freqs >= 1000) & (freqs < 5000)
    alpha_ratio = np.log(spectrum[high].sum(0) + 1e-10) - np.log(spectrum[low].sum(0) + 1e-10)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(librosa.feature.melspectrogram(S=spectrum, sr=SAMPLE_RATE)),
                                n_mfcc=5)[1:5]
    # Pauses: runs of unvoiced frames between voiced ones; rate: voiced segments per second.
    changes = np.diff(voiced_frames.astype(int))
    segments = max(1, int((changes == 1).sum()))
    duration = len(wave) / SAMPLE_RATE
    values = []
    for track in (f0_voiced, loudness, centroid, flatness, zcr, flux, alpha_ratio, *mfcc):
        values += _functionals(np.asarray(track))
    values += [float(voiced_frames.mean()), segments / duration, duration,
               float(np.ptp(f0_voiced)) if f0_voiced.size else 0.0]
    return np.asarray(values, dtype=np.float64)


EXTRACTORS = {"mfcc": mfcc_statistics, "egemaps_like": egemaps_like_statistics}


def make_classifier(name: str, params: dict, seed: int):
    if name == "svm":
        model = SVC(kernel="rbf", random_state=seed, **params)
    elif name == "random_forest":
        model = RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=1, **params)
    elif name == "logistic_regression":
        model = LogisticRegression(max_iter=5000, random_state=seed, **params)
    elif name == "mlp":
        model = MLPClassifier(max_iter=500, early_stopping=True, random_state=seed, **params)
    else:
        raise ValueError(f"classical.classifier must be svm, random_forest, logistic_regression or mlp, got {name!r}")
    return make_pipeline(StandardScaler(), model)


def _features(dataset, kind: str, desc: str) -> tuple[np.ndarray, np.ndarray]:
    extract = EXTRACTORS[kind]
    rows, labels = [], []
    for index in tqdm(range(len(dataset)), desc=desc, unit="clip", leave=False):
        item = dataset[index]
        rows.append(extract(np.asarray(item["audio"], dtype=np.float32)))
        labels.append(item["label"])
    return np.vstack(rows), np.asarray(labels)


def _encoder_statistics(cfg: DictConfig):
    """Mean and std over frames of every selected frozen encoder's cached features, per utterance."""
    from mmemo.training.run import attach_feature_cache, build_encoder, selected_specs

    specs = {m: spec for m, spec in selected_specs(cfg).items() if spec}
    encoders = {m: build_encoder(spec) for m, spec in specs.items()}
    trainable = [m for m, e in encoders.items() if not e.frozen]
    if trainable:
        raise ValueError(f"classical.features=encoders probes frozen features; model.{trainable[0]}.trainable is "
                         f"{encoders[trainable[0]].trainable!r}")
    datamodule = instantiate(cfg.data, use_audio="speech" in encoders, use_text="text" in encoders)
    features = dict(cfg.get("features") or {})
    if features.get("cache", "auto") != "auto":
        raise ValueError("classical.features=encoders reads the feature cache: set features.cache=auto")
    sources = attach_feature_cache(datamodule, encoders, cfg.get("features"))
    datamodule.setup("fit")
    data = {}
    for split, dataset in datamodule.datasets.items():
        rows = []
        for example in dataset.examples:
            parts = []
            for modality in encoders:
                frames = sources[modality].store.get(example.features[modality]).astype(np.float64)
                frames = frames.reshape(frames.shape[0], -1)
                parts += [frames.mean(0), frames.std(0)]
            rows.append(np.concatenate(parts))
        data[split] = (np.vstack(rows), np.asarray([e.label for e in dataset.examples]))
    return datamodule, data


def run_classical(cfg: DictConfig) -> dict:
    """Extract features, pick hyper-parameters on validation UA, test once, write results."""
    from mmemo.training.loggers import finish_wandb
    from mmemo.training.run import instantiate_all, resolved_config, run_metadata

    started = time.time()
    options = OmegaConf.to_container(cfg.classical, resolve=True)
    if options["features"] not in FEATURES:
        raise ValueError(f"classical.features must be one of {FEATURES}, got {options['features']!r}")
    output_dir = Path(cfg.paths.output_dir)
    if options["features"] == "encoders":
        datamodule, data = _encoder_statistics(cfg)
    else:
        datamodule = instantiate(cfg.data, use_audio=True, use_text=False)
        datamodule.setup("fit")
        data = {split: _features(ds, options["features"], f"{options['features']} features ({split})")
                for split, ds in datamodule.datasets.items()}
    classes = list(datamodule.classes)
    grid = options.get("grid", {}).get(options["classifier"], {}) or {}
    candidates = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
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

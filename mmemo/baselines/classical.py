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
``logistic_regression``, ``mlp``. The recipe that runs them on a fold is
:mod:`mmemo.recipes.classical`.
"""

from __future__ import annotations

import logging

import librosa
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from tqdm.auto import tqdm

from mmemo.data.audio import SAMPLE_RATE
from mmemo.errors import InvalidInput

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
        raise InvalidInput(f"classical.classifier must be svm, random_forest, logistic_regression or mlp, got {name!r}")
    return make_pipeline(StandardScaler(), model)


def statistics(dataset, kind: str, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """``kind``'s statistics of every clip of a split dataset, and the labels."""
    extract = EXTRACTORS[kind]
    rows, labels = [], []
    for index in tqdm(range(len(dataset)), desc=desc, unit="clip", leave=False):
        item = dataset[index]
        rows.append(extract(np.asarray(item["audio"], dtype=np.float32)))
        labels.append(item["label"])
    return np.vstack(rows), np.asarray(labels)

"""A textual description of the voice, for speech-aware prompts (a cascade that needs no paired training).

Two sources, both mmemo's own:

* **prosody** (:func:`prosody`): pitch level and range (YIN F0 on voiced frames), loudness, speaking
  rate (voiced segments per second) and pausing, each turned into a word *relative to the speaker*
  (:func:`relative_to_speaker`: a z-score against the same speaker's other utterances, because a
  high voice is not an excited one). Using a speaker's unlabelled utterances for the baseline is what
  speaker normalisation in SER does; no label is read.
* **a speech model's opinion** (:func:`top_emotions`): the top classes and probabilities of a trained
  speech checkpoint, which must have been trained on the same fold's training split.

:func:`describe` joins them, e.g. ``"a speech emotion model hears angry (62%), sad (21%); pitch high,
pitch range wide, loudness very high, speaking rate fast, pauses few (relative to this speaker)"``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from mmemo.data.audio import SAMPLE_RATE

#: Descriptor -> (word below, word above) for the scale ``very low .. very high``.
DESCRIPTORS = {
    "pitch": ("low", "high"),
    "pitch range": ("narrow", "wide"),
    "loudness": ("low", "high"),
    "speaking rate": ("slow", "fast"),
    "pauses": ("few", "many"),
}
_HOP = 160  # 10 ms at 16 kHz


def prosody(wave: np.ndarray) -> dict[str, float]:
    """Raw prosodic measures of a 16 kHz mono clip (see :data:`DESCRIPTORS` for the names)."""
    import librosa

    wave = np.asarray(wave, dtype=np.float32)
    rms = librosa.feature.rms(y=wave, frame_length=400, hop_length=_HOP)[0]
    voiced = rms > 0.1 * (float(rms.max()) + 1e-9)
    f0 = librosa.yin(wave, fmin=60, fmax=500, sr=SAMPLE_RATE, frame_length=1024, hop_length=_HOP)
    count = min(len(f0), len(voiced))
    semitones = 12 * np.log2(f0[:count][voiced[:count]] / 100.0)
    segments = max(1, int((np.diff(voiced.astype(int)) == 1).sum()) + int(voiced[0]))
    seconds = max(len(wave) / SAMPLE_RATE, 1e-3)
    return {
        "pitch": float(np.median(semitones)) if semitones.size else 0.0,
        "pitch range": float(np.percentile(semitones, 90) - np.percentile(semitones, 10)) if semitones.size else 0.0,
        "loudness": float(20 * np.log10(np.mean(rms[voiced]) + 1e-9)) if voiced.any() else -120.0,
        "speaking rate": segments / seconds,
        "pauses": float(1.0 - voiced.mean()),
    }


def relative_to_speaker(measures: Mapping[str, Mapping[str, float]], speaker_of: Mapping[str, str | None],
                        min_utterances: int = 3) -> dict[str, dict[str, float]]:
    """Each utterance's measures as z-scores against its speaker's utterances (all utterances pooled
    for speakers with fewer than ``min_utterances``, or none)."""
    groups: dict[str | None, list[str]] = defaultdict(list)
    for key in measures:
        groups[speaker_of.get(key)].append(key)
    everyone = list(measures)
    out: dict[str, dict[str, float]] = {}
    for speaker, keys in groups.items():
        reference = keys if speaker is not None and len(keys) >= min_utterances else everyone
        for name in DESCRIPTORS:
            values = np.array([measures[k][name] for k in reference], dtype=np.float64)
            mean, std = float(values.mean()), float(values.std())
            for key in keys:
                out.setdefault(key, {})[name] = (measures[key][name] - mean) / std if std > 1e-9 else 0.0
    return out


def word(z: float, low: str, high: str) -> str:
    """A z-score as a word: very low .. average .. very high (cut at 0.5 and 1.5 standard deviations)."""
    if z <= -1.5:
        return f"very {low}"
    if z <= -0.5:
        return low
    if z < 0.5:
        return "average"
    return high if z < 1.5 else f"very {high}"


def absolute_cues(measures: Mapping[str, float]) -> str:
    """:func:`prosody`'s measures in their own units, for a clip without a speaker baseline (rationales)."""
    return (f"median pitch {100.0 * 2 ** (measures['pitch'] / 12):.0f} Hz, "
            f"pitch range {measures['pitch range']:.1f} semitones, loudness {measures['loudness']:.0f} dBFS, "
            f"{measures['speaking rate']:.1f} voiced stretches per second, {100 * measures['pauses']:.0f}% pauses")


def top_emotions(scores: Mapping[str, float], k: int = 2) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda item: -item[1])[:k]


def describe(relative: Mapping[str, float] | None = None, emotions: Sequence[tuple[str, float]] = (),
             label_words: Mapping[str, str] | None = None) -> str:
    """The voice line of a prompt from either or both sources ("" when there is neither)."""
    parts = []
    if emotions:
        named = ", ".join(f"{(label_words or {}).get(c, c)} ({100 * p:.0f}%)" for c, p in emotions)
        parts.append(f"a speech emotion model hears {named}")
    if relative:
        parts.append(", ".join(f"{name} {word(relative[name], *DESCRIPTORS[name])}" for name in DESCRIPTORS)
                     + " (relative to this speaker)")
    return "; ".join(parts)


def voice_lines(options: Mapping, groups: Mapping[str, Sequence], load_wave,
                label_words: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{utterance key: voice description}`` for every utterance in ``groups`` (``{name: [Utterance]}``).

    ``options`` (``model.voice``): ``prosody`` (bool), ``checkpoint`` (a speech model trained on this
    fold's training split, or null), ``top_k`` (its classes named). ``load_wave(utterance)`` decodes a
    clip as training does (the data module's: segment, ``data.max_seconds`` crop). Speaker baselines
    pool every utterance given here per speaker. A clip whose audio cannot be read gets no description
    (counted in the log), never a failed run.
    """
    import logging

    from tqdm.auto import tqdm

    use_prosody, checkpoint = bool(options.get("prosody")), options.get("checkpoint")
    if not use_prosody and not checkpoint:
        return {}
    utterances = {u.key: u for group in groups.values() for u in group}
    waves: dict[str, np.ndarray] = {}
    failed = []
    for key, u in tqdm(utterances.items(), desc="voice: reading audio", unit="clip", disable=len(utterances) < 50):
        try:
            waves[key] = load_wave(u)
        except (OSError, ValueError) as error:
            failed.append(f"{key}: {error}")
    if failed:
        logging.getLogger(__name__).warning("%d clip(s) have no voice description (unreadable audio), e.g. %s",
                                            len(failed), failed[0])
    relative: dict[str, dict[str, float]] = {}
    if use_prosody:
        measures = {k: prosody(w) for k, w in tqdm(waves.items(), desc="voice: prosody", unit="clip",
                                                   disable=len(waves) < 50)}
        relative = relative_to_speaker(measures, {k: utterances[k].speaker for k in measures})
    opinions: dict[str, list[tuple[str, float]]] = {}
    if checkpoint:
        from mmemo.inference.predictor import Predictor

        keys = list(waves)
        for prediction in Predictor.from_source(str(checkpoint)).predict_waveforms([waves[k] for k in keys], keys):
            if prediction.ok:
                opinions[prediction.audio_id] = top_emotions(prediction.scores, int(options.get("top_k", 2)))
    return {k: describe(relative.get(k), opinions.get(k, ()), label_words) for k in waves}

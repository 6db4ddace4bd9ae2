"""Voice descriptions for speech-aware prompts: prosody relative to the speaker, a speech model's opinion."""

from __future__ import annotations

import numpy as np
import pytest

from mmemo.data.audio import SAMPLE_RATE
from mmemo.llm.voice import describe, prosody, relative_to_speaker, word


def voiced_tone(f0: float, seconds: float = 1.0, amplitude: float = 0.3, gaps: int = 0) -> np.ndarray:
    """A harmonic tone at ``f0`` with ``gaps`` silent pauses of 150 ms."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5)).astype(np.float32)
    wave *= amplitude / np.abs(wave).max()
    for g in range(gaps):
        start = int((g + 1) * len(wave) / (gaps + 1))
        wave[start: start + int(0.15 * SAMPLE_RATE)] = 0.0
    return wave


def test_prosody_measures_pitch_loudness_rate_and_pauses():
    low, high = prosody(voiced_tone(120.0)), prosody(voiced_tone(240.0))
    assert high["pitch"] - low["pitch"] == pytest.approx(12.0, abs=0.5)        # one octave = 12 semitones
    assert low["pitch range"] < 1.0                                              # a steady tone
    quiet, loud = prosody(voiced_tone(150.0, amplitude=0.05)), prosody(voiced_tone(150.0, amplitude=0.5))
    assert loud["loudness"] - quiet["loudness"] == pytest.approx(20.0, abs=1.0)  # 10x amplitude = 20 dB
    paused = prosody(voiced_tone(150.0, seconds=2.0, gaps=3))
    assert paused["speaking rate"] == pytest.approx(2.0, abs=0.01)              # 4 voiced runs in 2 s
    assert paused["pauses"] == pytest.approx(3 * (0.150 - 0.025) / 2.0, abs=0.015)  # 3 gaps less a 25 ms window


def test_descriptions_are_relative_to_the_speaker_not_the_corpus():
    measures = {f"{spk}-{i}": {"pitch": base + i, "pitch range": 1.0, "loudness": -20.0, "speaking rate": 3.0,
                               "pauses": 0.1} for spk, base in (("deep", 0.0), ("high", 12.0)) for i in range(4)}
    speakers = {k: k.split("-")[0] for k in measures}
    relative = relative_to_speaker(measures, speakers)
    # the deep voice's highest utterance is high *for that speaker*, though below every "high" one
    assert relative["deep-3"]["pitch"] == pytest.approx(relative["high-3"]["pitch"])
    assert relative["deep-3"]["pitch"] > 1.0
    assert relative["deep-0"]["pitch"] < -1.0 and relative["deep-0"]["loudness"] == 0.0
    lonely = relative_to_speaker({**measures, "solo-0": {**measures["high-3"]}}, {**speakers, "solo-0": "solo"})
    assert lonely["solo-0"]["pitch"] > 0.5        # one utterance: pooled with everyone


def test_words_and_the_voice_line():
    assert [word(z, "low", "high") for z in (-2, -1, 0, 1, 2)] == ["very low", "low", "average", "high", "very high"]
    line = describe({"pitch": 1.0, "pitch range": 2.0, "loudness": 0.0, "speaking rate": -1.0, "pauses": -2.0},
                    [("ang", 0.62), ("sad", 0.21)], {"ang": "angry"})
    assert line == ("a speech emotion model hears angry (62%), sad (21%); pitch high, pitch range very wide, "
                    "loudness average, speaking rate slow, pauses very few (relative to this speaker)")
    assert describe() == "" and describe(None, [("sad", 0.5)]) == "a speech emotion model hears sad (50%)"

"""Generated reasons (--explain): the measured cues, the prompt, both runtimes, and how they are marked."""

from __future__ import annotations

import numpy as np
import pytest

from mmemo.errors import InvalidInput
from mmemo.llm.rationales import MAX_CHARS, Explainer, clean
from mmemo.llm.voice import absolute_cues, prosody


def voiced(f0: float, seconds: float = 1.5, pause: float = 0.0) -> np.ndarray:
    """A harmonic 'vowel' at ``f0`` Hz, with a silent stretch of ``pause`` seconds in the middle."""
    t = np.arange(int(seconds * 16000)) / 16000
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5)).astype(np.float32) * 0.2
    if pause:
        middle = len(wave) // 2
        wave[middle - int(pause * 8000): middle + int(pause * 8000)] = 0.0
    return wave


def test_the_cues_are_measured_in_their_own_units():
    low, high = absolute_cues(prosody(voiced(120.0))), absolute_cues(prosody(voiced(240.0, pause=0.5)))
    assert low.startswith("median pitch 120 Hz") and high.startswith("median pitch 240 Hz")
    pauses = [int(text.rsplit(", ", 1)[1].split("%")[0]) for text in (low, high)]
    assert pauses[0] < 5 and 25 <= pauses[1] <= 40  # 0.5 s of 1.5 s is silent


def test_a_reason_is_generated_greedily_alike_by_both_runtimes_and_marked_as_generated(tiny_gguf):
    fast = Explainer(str(tiny_gguf), max_tokens=8)
    slow = Explainer(str(tiny_gguf), max_tokens=8, runtime="transformers")
    assert (fast.runtime, slow.runtime) == ("llama.cpp", "transformers")
    prompt = fast.prompt("angry", 0.81, "Get out of my office now!", "median pitch 231 Hz")
    assert '"angry" (confidence 81%)' in prompt and '"Get out of my office now!"' in prompt
    assert "median pitch 231 Hz" in prompt and "Transcript: (none)" in fast.prompt("sad", None, "", "")
    # the same GGUF weights and chat template, greedy: the same continuation from either runtime
    assert fast.generate(prompt) == slow.generate(prompt)
    reason = fast.explain("angry", 0.81, "Get out of my office now!", voiced(200.0))
    assert reason.cues.startswith("median pitch 200 Hz") and reason.text == clean(fast.generate(
        fast.prompt("angry", 0.81, "Get out of my office now!", reason.cues)))
    shown = reason.to_dict()
    assert shown["generated"] is True and shown["model"] == "tiny-llama.gguf" and "not evidence" in shown["note"]


def test_reasons_are_one_bounded_paragraph_and_bad_settings_are_refused(tiny_gguf):
    assert clean("  two\n\nlines  ") == "two lines"
    long = clean("word " * 500)
    assert len(long) <= MAX_CHARS + 2 and long.endswith("…")
    with pytest.raises(InvalidInput, match="explain-tokens"):
        Explainer(str(tiny_gguf), max_tokens=0)
    with pytest.raises(InvalidInput, match="needs a .gguf"):
        Explainer(str(tiny_gguf.parent), runtime="llama.cpp")

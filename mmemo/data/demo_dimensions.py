"""Arousal and valence ratings of the demo corpus, derived from how each utterance was made.

The demo generator knows what it did, so its "ratings" are rules, not annotators:

* **arousal comes from the delivery**: the prosody espeak-ng was told to use, relative to the
  speaker's voice (rate over the voice's rate scale, pitch over its offset) and to the neutral
  style: ``z`` is the mean of five standardised controls (rate, loudness, pitch, pitch range,
  and shorter pauses), ``arousal = 1 / (1 + exp(-1.6 z))``. A text-cued utterance is spoken in a
  neutral delivery, so its arousal is mid-range whatever its words say;
* **valence comes from the words**: an emotionally worded sentence has its label's valence
  (:data:`WORDING_VALENCE`: angry 0.25, happy 0.85, neutral 0.5, sad 0.15), a valence-ambiguous
  sentence (speech- and face-cued utterances) 0.5, whatever its delivery.

So speech alone should explain arousal, text alone valence, and a fused model both: the
dimensional counterpart of the categorical demo's complementary cues. Both live on [0, 1]
(``corpus.json``: ``"dimensions": {"arousal": [0, 1], "valence": [0, 1]}``). The rules read only
a plan's fields (no random draws), so adding them changed no audio, and a corpus written before
them is annotated in place from its seed (:meth:`mmemo.data.demo_corpus.DemoDataModule.prepare_data`).
"""

from __future__ import annotations

import math
from typing import Protocol

#: The scale of both demo dimensions, as corpus.json declares it.
DIMENSIONS = {"arousal": [0.0, 1.0], "valence": [0.0, 1.0]}
#: Valence of each label's emotional wording (ambiguous sentences: :data:`NEUTRAL_VALENCE`).
WORDING_VALENCE = {"angry": 0.25, "happy": 0.85, "neutral": 0.5, "sad": 0.15}
NEUTRAL_VALENCE = 0.5
#: Spread of each prosody control used to standardise it (roughly the distance neutral -> angry/sad).
_SCALES = {"rate": 37.0, "amplitude": 50.0, "pitch": 20.0, "pitch_range": 75.0, "word_gap": 3.0}
_SLOPE = 1.6


class Delivery(Protocol):
    """What the rules read of a plan (:class:`mmemo.data.synthetic.Plan`) and of the neutral style."""

    label: str
    cue: str
    rate: int
    pitch: int
    pitch_range: int
    amplitude: int
    word_gap: int
    voice: object


def emotional_wording(plan: Delivery) -> bool:
    """Whether the sentence's words carry the label (text- and both-cued utterances)."""
    return plan.cue in ("text", "both")


def prosody(plan: Delivery) -> dict[str, float]:
    """The delivery controls the utterance was spoken with, in espeak-ng units (recorded in the manifest)."""
    return {"rate": plan.rate, "pitch": plan.pitch, "pitch_range": plan.pitch_range, "amplitude": plan.amplitude,
            "word_gap": plan.word_gap}


def arousal(plan: Delivery, neutral) -> float:
    """Activation of the delivery relative to the speaker's voice and the ``neutral`` style (module docstring)."""
    z = ((plan.rate / plan.voice.rate_scale - neutral.rate[0]) / _SCALES["rate"]
         + (plan.amplitude - neutral.amplitude[0]) / _SCALES["amplitude"]
         + (plan.pitch - plan.voice.pitch_offset - neutral.pitch[0]) / _SCALES["pitch"]
         + (plan.pitch_range - neutral.pitch_range[0]) / _SCALES["pitch_range"]
         - (plan.word_gap - neutral.word_gap[0]) / _SCALES["word_gap"]) / 5
    return round(1.0 / (1.0 + math.exp(-_SLOPE * z)), 4)


def valence(plan: Delivery) -> float:
    """The wording's valence: the label's for an emotional sentence, neutral for an ambiguous one."""
    return WORDING_VALENCE[plan.label] if emotional_wording(plan) else NEUTRAL_VALENCE


def extras(plan: Delivery, neutral) -> dict:
    """What a manifest line records of the plan beyond the EmoBox fields (``neutral``: the neutral style)."""
    return {"cue": plan.cue, "wording": "emotional" if emotional_wording(plan) else "ambiguous",
            "prosody": prosody(plan), "arousal": arousal(plan, neutral), "valence": valence(plan)}


#: How corpus.json documents the rules (a reader of the corpus need not read this module).
RULES = {"arousal": "logistic(1.6 * mean z of rate/voice, loudness, pitch-voice offset, pitch range, -pauses; "
                    "relative to the neutral style)",
         "valence": f"emotional wording: {WORDING_VALENCE}; ambiguous wording: {NEUTRAL_VALENCE}"}

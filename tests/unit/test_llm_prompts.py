"""Prompts and few-shot examples for LM label scoring: training split only, stratified, seeded."""

from __future__ import annotations

from collections import Counter

import pytest

from mmemo.data.manifest import Utterance
from mmemo.llm.prompts import PromptTemplate, few_shot_examples

CLASSES = ["angry", "happy", "neutral", "sad"]


def utterances(prefix: str, per_class: int = 5) -> list[Utterance]:
    return [Utterance(key=f"{prefix}-{c}-{i}", wav="x.wav", emo=c, text=f"{c} sentence {i}")
            for c in CLASSES for i in range(per_class)]


def test_few_shot_examples_are_stratified_seeded_and_from_training_only():
    train, test = utterances("train"), utterances("test")
    four = few_shot_examples(train, 4, seed=1, classes=CLASSES, label_of=lambda u: u.emo)
    assert Counter(u.emo for u in four) == {c: 1 for c in CLASSES}          # k = 4: every class once
    sixteen = few_shot_examples(train, 16, seed=1, classes=CLASSES, label_of=lambda u: u.emo)
    assert Counter(u.emo for u in sixteen) == {c: 4 for c in CLASSES} and len({u.key for u in sixteen}) == 16
    assert [u.key for u in few_shot_examples(train, 4, 1, CLASSES, lambda u: u.emo)] == [u.key for u in four]
    assert [u.key for u in few_shot_examples(train, 4, 2, CLASSES, lambda u: u.emo)] != [u.key for u in four]
    assert all(u.key.startswith("train-") for u in sixteen)
    forbidden = {u.key for u in test}
    assert few_shot_examples(train, 16, 1, CLASSES, lambda u: u.emo, forbidden)      # disjoint: fine
    with pytest.raises(ValueError, match="few-shot examples must come from the training split only; 'test-angry-0'"):
        few_shot_examples(train + test[:1], 4, 1, CLASSES, lambda u: u.emo, forbidden)
    with pytest.raises(ValueError, match="only 8 utterances with transcripts"):
        few_shot_examples(utterances("t", per_class=2), 16, 1, CLASSES, lambda u: u.emo)
    assert few_shot_examples(train, 0, 1, CLASSES, lambda u: u.emo) == []


def test_the_template_names_the_labels_shows_examples_and_ends_in_the_answer_prefix():
    body = PromptTemplate().render("I told you twice already.", CLASSES, voice="high pitch, loud, fast",
                                   examples=[("What a lovely day.", "happy", None)])
    assert body.startswith("Classify the emotion of the speaker. Answer with one word from: angry, happy, "
                           "neutral, sad.")
    assert "Text: What a lovely day.\nEmotion: happy" in body
    assert body.endswith("Text: I told you twice already.\nVoice: high pitch, loud, fast\nEmotion:")

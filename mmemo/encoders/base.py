"""The encoder contract every speech and text encoder follows.

An encoder turns a batch into frames plus a validity mask. Padding must never
leak: on each item's valid frames, the batched output equals the output for
that item alone (to ~1e-4). Fusion heads and the feature cache rely on it.

Trainable modes are shared by all encoders:

* ``frozen``: no gradients, always in eval mode (outputs can be cached);
* ``top_k``: only the last ``top_k`` layers (see :meth:`Encoder.layer_stack`) train;
* ``full``: everything trains;
* ``lora``: the weights stay frozen and peft LoRA adapters are injected into the
  modules named by ``lora.target_modules`` (default: :attr:`Encoder.lora_targets`).

Parameters an encoder adds on top of pretrained weights (e.g. the softmax
weights of ``layer=weighted``) train in every mode; subclasses create them after
calling :meth:`Encoder.apply_trainable_mode`.
"""

from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

TRAINABLE_MODES = ("frozen", "top_k", "full", "lora")
_LORA_DEFAULTS = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": None}


@dataclass
class EncoderOutput:
    """frames: [B,T,D]; mask: [B,T] (True = valid); layers: optional per-layer [B,T,D].

    ``stride`` > 1: each frame is already the average of that many encoder frames
    (cached features served in windows, see ``FeatureStore.get_windows``).
    ``moments``: not frames but a pooled summary, frames[:, 0] = the mean and frames[:, 1]
    = the mean of squares over the clip's frames ([B,2,D]; cached features served pooled,
    ``FeatureStore.get_moments``); only heads that pool first are given these.
    """

    frames: torch.Tensor
    mask: torch.Tensor
    layers: tuple[torch.Tensor, ...] | None = None
    stride: int = 1
    moments: bool = False


def _tensor_digest(digest, tensors: dict[str, torch.Tensor]) -> None:
    for key, tensor in sorted(tensors.items()):
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


class Encoder(nn.Module, abc.ABC):
    """Shared behaviour: a name, an output size, a trainable mode and fingerprints."""

    #: Short name used in logs, run names and cache keys.
    name: str = "encoder"
    #: Module-name suffixes LoRA adapts by default (attention projections).
    lora_targets: tuple[str, ...] = ()

    def __init__(self, trainable: str = "full", top_k: int = 2, lora: dict | None = None):
        super().__init__()
        if trainable not in TRAINABLE_MODES:
            raise ValueError(f"trainable must be one of {TRAINABLE_MODES}, got {trainable!r}")
        if trainable == "top_k" and top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        unknown = set(lora or {}) - set(_LORA_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown LoRA options {sorted(unknown)}; known: {sorted(_LORA_DEFAULTS)}")
        self.trainable = trainable
        self.top_k = top_k
        self.lora = {**_LORA_DEFAULTS, **(lora or {})}

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Size D of each output frame."""

    @property
    def frozen(self) -> bool:
        return self.trainable == "frozen"

    # -- trainable modes -----------------------------------------------------------------
    def layer_stack(self) -> Sequence[nn.Module]:
        """The encoder's layers from input to output; ``top_k`` trains the last k of them."""
        raise TypeError(f"{type(self).__name__} does not support trainable=top_k")

    def lora_root(self) -> nn.Module:
        """The module LoRA adapters are injected into (the wrapped pretrained model)."""
        raise TypeError(f"{type(self).__name__} does not support trainable=lora")

    def apply_trainable_mode(self) -> None:
        """Call at the end of a subclass's ``__init__``, after the pretrained weights exist."""
        if self.trainable == "full":
            return
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        if self.trainable == "frozen":
            self.eval()
        elif self.trainable == "top_k":
            layers = list(self.layer_stack())
            if self.top_k > len(layers):
                raise ValueError(f"top_k={self.top_k} but {type(self).__name__} has {len(layers)} layers")
            for layer in layers[-self.top_k:]:
                for parameter in layer.parameters():
                    parameter.requires_grad_(True)
        elif self.trainable == "lora":
            self._inject_lora()

    def _inject_lora(self) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        targets = self.lora["target_modules"] or list(self.lora_targets)
        if not targets:
            raise ValueError(f"{type(self).__name__} has no default LoRA targets; set lora.target_modules")
        config = LoraConfig(r=int(self.lora["r"]), lora_alpha=int(self.lora["alpha"]),
                            lora_dropout=float(self.lora["dropout"]), target_modules=list(targets))
        try:
            inject_adapter_in_model(config, self.lora_root())
        except ValueError as error:
            raise ValueError(f"LoRA could not find modules {targets} in {type(self).__name__}: {error}") from None
        for name, parameter in self.named_parameters():
            parameter.requires_grad_("lora_" in name)

    def from_features(self, features: torch.Tensor, mask: torch.Tensor, stride: int = 1) -> EncoderOutput:
        """Rebuild this encoder's output from cached features.

        features: [B,T,D], or [B,T,L,D] when every layer was cached for ``layer=weighted``;
        mask: [B,T]; stride: encoder frames averaged into each cached frame.
        """
        mixer = getattr(self, "mixer", None)
        if features.dim() == 4:
            if mixer is None:
                raise ValueError(f"{self.name}: per-layer features were cached but layer is not 'weighted'")
            layers = features.unbind(2)
            return EncoderOutput(mixer(layers) * mask[..., None], mask, layers, stride)
        return EncoderOutput(features, mask, stride=stride)

    def train(self, mode: bool = True) -> Encoder:
        # A frozen encoder stays in eval mode (no dropout) even while the model trains.
        return super().train(mode and not self.frozen)

    # -- identity ------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """What, besides the weights, determines this encoder's output."""
        return {"class": type(self).__qualname__, "trainable": self.trainable}

    @property
    def fully_frozen(self) -> bool:
        """No parameter trains (frozen, and no learned layer mix): the weights can never change."""
        return self.frozen and not any(p.requires_grad for p in self.parameters())

    def fingerprint(self) -> str:
        """A hash of all weights and :meth:`config`; equal fingerprints give equal features.

        Hashing a large model takes a second or more, so a fully frozen encoder
        hashes once and remembers the result.
        """
        remembered = getattr(self, "_fingerprint", None)
        if remembered is not None and self.fully_frozen:
            return remembered
        digest = hashlib.sha256(json.dumps(self.config(), sort_keys=True, default=str).encode())
        _tensor_digest(digest, self.state_dict())
        self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    def fixed_weights(self) -> dict[str, torch.Tensor]:
        """Weights that never train in this mode (what a checkpoint can reference by hash):
        frozen parameters and persistent buffers such as fixed positional tables."""
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        return {name: t for name, t in self.state_dict(keep_vars=True).items() if name not in trainable}

    def source_fingerprint(self) -> str:
        """A hash of :meth:`fixed_weights`: identifies the pretrained weights a run started from."""
        if not hasattr(self, "_source_fingerprint"):
            digest = hashlib.sha256()
            _tensor_digest(digest, self.fixed_weights())
            self._source_fingerprint = digest.hexdigest()[:16]
        return self._source_fingerprint


class SpeechEncoder(Encoder):
    """``forward(wav [B,S] float, wav_mask [B,S] bool) -> EncoderOutput`` at ``frame_rate`` Hz."""

    sample_rate: int = 16_000

    @property
    @abc.abstractmethod
    def frame_rate(self) -> float:
        """Output frames per second of audio."""

    @abc.abstractmethod
    def forward(self, wav: torch.Tensor, wav_mask: torch.Tensor) -> EncoderOutput:
        """Encode a padded batch of 16 kHz waveforms."""


class TextEncoder(Encoder):
    """``forward(texts: list[str]) -> EncoderOutput`` over tokens; tokenisation lives inside."""

    @abc.abstractmethod
    def forward(self, texts: list[str]) -> EncoderOutput:
        """Encode a batch of raw strings."""


class LayerMixer(nn.Module):
    """SUPERB-style learned softmax-weighted sum of hidden states (``layer=weighted``)."""

    def __init__(self, count: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(count))

    def forward(self, layers: Sequence[torch.Tensor]) -> torch.Tensor:
        stack = torch.stack(list(layers), 0)
        shape = (-1,) + (1,) * (stack.dim() - 1)
        return (torch.softmax(self.weights, 0).to(stack.dtype).view(shape) * stack).sum(0)


def check_layer(layer: str | int, count: int) -> str | int:
    """Validate a ``layer`` option against ``count`` hidden states (0 = input embeddings)."""
    if layer in ("last", "weighted"):
        return layer
    if isinstance(layer, int) and not isinstance(layer, bool) and -count <= layer < count:
        return layer
    raise ValueError(f"layer must be 'last', 'weighted' or an index in [0, {count - 1}], got {layer!r}")

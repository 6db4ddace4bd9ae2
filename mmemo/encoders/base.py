"""The encoder contract every speech and text encoder follows.

An encoder turns a batch into frames plus a validity mask. Padding must never
leak: on each item's valid frames, the batched output equals the output for
that item alone (to ~1e-4). Fusion heads and the feature cache rely on it.
"""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

TRAINABLE_MODES = ("frozen", "full")


@dataclass
class EncoderOutput:
    """frames: [B,T,D]; mask: [B,T] (True = valid); layers: optional per-layer [B,T,D]."""

    frames: torch.Tensor
    mask: torch.Tensor
    layers: tuple[torch.Tensor, ...] | None = None


class Encoder(nn.Module, abc.ABC):
    """Shared behaviour: a name, an output size, a trainable mode and a fingerprint."""

    #: Short name used in logs, run names and cache keys.
    name: str = "encoder"

    def __init__(self, trainable: str = "full"):
        super().__init__()
        if trainable not in TRAINABLE_MODES:
            raise ValueError(f"trainable must be one of {TRAINABLE_MODES}, got {trainable!r}")
        self.trainable = trainable

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Size D of each output frame."""

    @property
    def frozen(self) -> bool:
        return self.trainable == "frozen"

    def freeze_if_needed(self) -> None:
        """Call at the end of ``__init__``: frozen encoders stop tracking gradients."""
        if self.frozen:
            for parameter in self.parameters():
                parameter.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> Encoder:
        # A frozen encoder stays in eval mode (no dropout) even while the model trains.
        return super().train(mode and not self.frozen)

    def config(self) -> dict[str, Any]:
        """What, besides the weights, determines this encoder's output."""
        return {"class": type(self).__qualname__, "trainable": self.trainable}

    def fingerprint(self) -> str:
        """A hash of the weights and :meth:`config`; equal fingerprints give equal features."""
        digest = hashlib.sha256(json.dumps(self.config(), sort_keys=True, default=str).encode())
        for key, tensor in sorted(self.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:16]


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

"""The encoder contract every speech, text and video encoder follows.

An encoder turns a batch into frames plus a validity mask. Padding must never
leak: on each item's valid frames, the batched output equals the output for
that item alone (to ~1e-4). Fusion heads and the feature cache rely on it.

Trainable modes (frozen, top_k, full, lora) come from
:class:`~mmemo.encoders.trainable.TrainableModes`, which any trainable component uses.
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

from mmemo.encoders.trainable import TRAINABLE_MODES, TrainableModes, tensor_digest
from mmemo.errors import InvalidInput

__all__ = ["TRAINABLE_MODES", "Encoder", "EncoderOutput", "FrameWiseVideoEncoder", "LayerMixer", "SpeechEncoder",
           "TextEncoder", "VideoEncoder", "check_layer"]


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


class Encoder(TrainableModes, nn.Module, abc.ABC):
    """Shared behaviour: a name, an output size, a trainable mode and fingerprints.

    ``pretrained_source`` says where pretrained weights came from (a path or hub id), or is
    None for an encoder trained from scratch: pretrained weights that stay fixed are not copied
    into checkpoints but referenced by source and fingerprint.
    """

    #: Short name used in logs, run names and cache keys.
    name: str = "encoder"
    #: Module-name suffixes LoRA adapts by default (attention projections).
    lora_targets: tuple[str, ...] = ()
    #: Where the pretrained weights come from (set by encoders that load them).
    pretrained_source: str | None = None

    def __init__(self, trainable: str = "full", top_k: int = 2, lora: dict | None = None):
        nn.Module.__init__(self)
        self.init_trainable(trainable, top_k, lora)

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Size D of each output frame."""

    def from_features(self, features: torch.Tensor, mask: torch.Tensor, stride: int = 1) -> EncoderOutput:
        """Rebuild this encoder's output from cached features.

        features: [B,T,D], or [B,T,L,D] when every layer was cached for ``layer=weighted``;
        mask: [B,T]; stride: encoder frames averaged into each cached frame.
        """
        mixer = getattr(self, "mixer", None)
        if features.dim() == 4:
            if mixer is None:
                raise InvalidInput(f"{self.name}: per-layer features were cached but layer is not 'weighted'")
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
        tensor_digest(digest, self.state_dict())
        self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

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


class VideoEncoder(Encoder):
    """``forward(faces [B,T,S,S,3] uint8, face_mask [B,T] bool) -> EncoderOutput`` at ``frame_rate`` Hz.

    Input is a face track (:mod:`mmemo.video`): aligned RGB crops sampled at ``frame_rate`` frames
    per second (the data config's ``video.fps``; configs pass it on), masked where no face was
    found. Output frames where the input is masked are zeros and masked too. ``landmarks``
    [B,T,478,3] come along for geometric encoders.
    """

    def __init__(self, frame_rate: float = 5.0, trainable: str = "full", top_k: int = 2, lora: dict | None = None):
        super().__init__(trainable, top_k, lora)
        if not frame_rate > 0:
            raise InvalidInput(f"video frame_rate must be positive, got {frame_rate}")
        self._frame_rate = float(frame_rate)

    @property
    def frame_rate(self) -> float:
        return self._frame_rate

    @abc.abstractmethod
    def forward(self, faces: torch.Tensor, face_mask: torch.Tensor,
                landmarks: torch.Tensor | None = None) -> EncoderOutput:
        """Encode a padded batch of face tracks."""

    def config(self) -> dict[str, Any]:
        return {**super().config(), "frame_rate": self._frame_rate}


class FrameWiseVideoEncoder(VideoEncoder):
    """A video encoder that encodes each face crop on its own (``encode_frames``): padding can never
    leak, and frames without a face are never computed."""

    @abc.abstractmethod
    def encode_frames(self, crops: torch.Tensor, landmarks: torch.Tensor | None) -> torch.Tensor:
        """[N,S,S,3] uint8 crops (and [N,478,3] landmarks) of valid frames -> [N,D] features."""

    def forward(self, faces: torch.Tensor, face_mask: torch.Tensor,
                landmarks: torch.Tensor | None = None) -> EncoderOutput:
        batch, steps = face_mask.shape
        mask = face_mask.bool()
        out = torch.zeros(batch, steps, self.dim, device=faces.device)
        if mask.any():
            picked = self.encode_frames(faces[mask], None if landmarks is None else landmarks[mask])
            out = out.to(picked.dtype)
            out[mask] = picked
        return EncoderOutput(out, mask)


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
    raise InvalidInput(f"layer must be 'last', 'weighted' or an index in [0, {count - 1}], got {layer!r}")

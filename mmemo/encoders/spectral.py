"""A speech encoder trained from scratch: log-mel (or MFCC) then conv + transformer.

It is the no-pretraining baseline and the default speech branch of the demo.
Every stage is mask-aware so batching never changes a clip's output:

* STFT frames are taken without centre padding, so a frame only sees samples of
  its own clip; frames that would reach into padding are invalid;
* invalid positions are zeroed before every convolution, so a padded clip sees
  the same zeros at its end as a clip convolved alone;
* the transformer uses a key-padding mask and sinusoidal (not learned, not
  length-dependent) positions.
"""

from __future__ import annotations

import math

import librosa
import numpy as np
import torch
from torch import nn

from mmemo.encoders.base import EncoderOutput, SpeechEncoder
from mmemo.errors import InvalidInput

FEATURES = ("logmel", "mfcc")


class MaskedFeatureNorm(nn.Module):
    """Per-feature standardisation with running statistics over valid frames only."""

    def __init__(self, dim: int, momentum: float = 0.05):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("initialised", torch.tensor(False))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: [B,T,F]; mask: [B,T]."""
        if self.training and mask.any():
            valid = x[mask].float()
            mean, var = valid.mean(0), valid.var(0, unbiased=False)
            with torch.no_grad():
                if not bool(self.initialised):
                    self.mean.copy_(mean)
                    self.var.copy_(var)
                    self.initialised.fill_(True)
                else:
                    self.mean.lerp_(mean, self.momentum)
                    self.var.lerp_(var, self.momentum)
        return (x - self.mean) / torch.sqrt(self.var + 1e-5)


class SpectralFrontend(nn.Module):
    """Waveform [B,S] to log-mel or MFCC frames [B,T,F] at ``1 / hop`` Hz."""

    def __init__(self, sample_rate: int, n_mels: int, win_ms: float, hop_ms: float,
                 features: str, n_mfcc: int):
        super().__init__()
        if features not in FEATURES:
            raise InvalidInput(f"features must be one of {FEATURES}, got {features!r}")
        self.win = int(sample_rate * win_ms / 1000)
        self.hop = int(sample_rate * hop_ms / 1000)
        self.n_fft = 1 << (self.win - 1).bit_length()
        self.features = features
        mel = librosa.filters.mel(sr=sample_rate, n_fft=self.n_fft, n_mels=n_mels)
        self.register_buffer("mel", torch.from_numpy(mel.astype(np.float32)), persistent=False)
        self.register_buffer("window", torch.hann_window(self.win), persistent=False)
        if features == "mfcc":
            # Orthonormal DCT-II matrix, as in the usual MFCC definition.
            n = torch.arange(n_mels, dtype=torch.float64)
            k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]
            dct = torch.cos(math.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
            dct[0] /= math.sqrt(2.0)
            self.register_buffer("dct", dct.float(), persistent=False)
        self.dim = n_mfcc if features == "mfcc" else n_mels

    def num_frames(self, samples: torch.Tensor) -> torch.Tensor:
        return torch.clamp((samples - self.win) // self.hop + 1, min=0)

    @torch.no_grad()  # a fixed transform: no autograd graph is needed before the norm
    def forward(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if wav.shape[1] < self.win:
            wav = nn.functional.pad(wav, (0, self.win - wav.shape[1]))
        frames = wav.float().unfold(1, self.win, self.hop) * self.window  # [B,T,win]
        spectrum = torch.fft.rfft(frames, n=self.n_fft)
        power = spectrum.real.square() + spectrum.imag.square()  # [B,T,n_fft/2+1]
        features = torch.log(power @ self.mel.T + 1e-6)
        if self.features == "mfcc":
            features = features @ self.dct.T
        # A clip shorter than one window still yields one (zero-padded) frame.
        n = torch.clamp(self.num_frames(lengths), min=1)
        mask = torch.arange(features.shape[1], device=wav.device)[None, :] < n[:, None]
        return features, mask


def _sinusoids(length: int, dim: int, device: torch.device) -> torch.Tensor:
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    scale = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * scale)
    table[:, 1::2] = torch.cos(position * scale[: dim // 2])
    return table


class SpectralEncoder(SpeechEncoder):
    """log-mel/MFCC -> 2 strided conv layers (4x down) -> transformer; 25 frames/s by default."""

    name = "spectral"

    def __init__(
        self,
        features: str = "logmel",
        n_mels: int = 64,
        n_mfcc: int = 40,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        dim: int = 128,
        conv_layers: int = 2,
        kernel_size: int = 5,
        transformer_layers: int = 2,
        heads: int = 4,
        ff_dim: int = 256,
        dropout: float = 0.1,
        trainable: str = "full",
        top_k: int = 2,
    ):
        super().__init__(trainable, top_k=top_k)
        self._config = dict(features=features, n_mels=n_mels, n_mfcc=n_mfcc, win_ms=win_ms, hop_ms=hop_ms,
                            dim=dim, conv_layers=conv_layers, kernel_size=kernel_size,
                            transformer_layers=transformer_layers, heads=heads, ff_dim=ff_dim)
        self.frontend = SpectralFrontend(self.sample_rate, n_mels, win_ms, hop_ms, features, n_mfcc)
        self.norm = MaskedFeatureNorm(self.frontend.dim)
        self.kernel_size = kernel_size
        channels = [self.frontend.dim] + [dim] * conv_layers
        self.convs = nn.ModuleList(
            nn.Conv1d(channels[i], channels[i + 1], kernel_size, stride=2, padding=kernel_size // 2)
            for i in range(conv_layers)
        )
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = (nn.TransformerEncoder(layer, transformer_layers, enable_nested_tensor=False)
                            if transformer_layers else None)
        self.out_norm = nn.LayerNorm(dim)
        self._dim = dim
        self._frame_rate = 1000.0 / hop_ms / 2**conv_layers
        self.apply_trainable_mode()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def frame_rate(self) -> float:
        return self._frame_rate

    def config(self) -> dict:
        return {**super().config(), **self._config}

    def layer_stack(self):
        return [*self.convs, *(self.transformer.layers if self.transformer is not None else []), self.out_norm]

    def _conv_length(self, n: torch.Tensor) -> torch.Tensor:
        padding = self.kernel_size // 2
        return (n + 2 * padding - self.kernel_size) // 2 + 1

    def forward(self, wav: torch.Tensor, wav_mask: torch.Tensor) -> EncoderOutput:
        lengths = wav_mask.sum(1)
        x, mask = self.frontend(wav, lengths)
        x = self.norm(x, mask) * mask[..., None]
        n = mask.sum(1)
        x = x.transpose(1, 2)  # [B,F,T]
        for conv in self.convs:
            x = nn.functional.gelu(conv(x))
            n = torch.clamp(self._conv_length(n), min=1)
            mask = torch.arange(x.shape[2], device=x.device)[None, :] < n[:, None]
            x = x * mask[:, None, :]
        x = self.dropout(x.transpose(1, 2))  # [B,T,D]
        x = x + _sinusoids(x.shape[1], self._dim, x.device)
        if self.transformer is not None:
            x = self.transformer(x, src_key_padding_mask=~mask)
        x = self.out_norm(x) * mask[..., None]
        return EncoderOutput(frames=x, mask=mask)

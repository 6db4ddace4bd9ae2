"""Whisper's encoder for variable-length clips (openai-whisper weights, any checkpoint format).

Whisper was trained on 30 s windows, and the usual classifiers (Hugging Face's
``WhisperForAudioClassification``) pad every clip to 30 s and then mean-pool over
the padding: a 3 s clip costs as much as a 30 s one and its embedding is mostly
silence. This encoder instead

* computes each clip's log-mel on the clip alone (Whisper's own
  ``log_mel_spectrogram``, so the per-clip dynamic-range clamp is unchanged);
* runs the convolutions on the padded batch with padded positions zeroed before
  each one, so a clip sees exactly the zeros it would see alone;
* slices the positional embedding to the batch's frames, and masks padded keys
  in every attention layer.

A clip's frames in a batch therefore equal its frames alone (to ~1e-5), and a
batch of 30 s inputs equals openai-whisper's own encoder exactly.

Short clips: Whisper never saw inputs shorter than 30 s during training, so the
features of a short clip differ from the features of the same clip padded with
silence to 30 s (``pad_to_30s=true``). Both are available; the variable-length
default is 10-20x cheaper on typical 2-5 s emotion clips. With ``pad_to_30s`` the
encoder sees the whole 30 s window but the mask still covers only the clip's own
frames, so pooling never averages the silence.
"""

from __future__ import annotations

import logging
import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from mmemo.encoders.base import EncoderOutput, LayerMixer, SpeechEncoder, check_layer
from mmemo.errors import InvalidInput

log = logging.getLogger(__name__)

SAMPLES_PER_MEL_FRAME = 160  # 10 ms at 16 kHz
N_FFT = 400
MAX_SECONDS = 30.0


def clip_log_mel(wave: torch.Tensor, n_mels: int) -> torch.Tensor:
    """Whisper's log-mel of one clip: [n_mels, len(wave) // 160]."""
    import whisper

    if wave.numel() < N_FFT:  # the STFT's reflect padding needs at least one window
        wave = F.pad(wave, (0, N_FFT - wave.numel()))
    return whisper.log_mel_spectrogram(wave.float(), n_mels=n_mels)


class WhisperEncoder(SpeechEncoder):
    """Whisper's audio encoder at 50 frames/s, with masks, layer selection and trainable modes.

    ``path`` is anything :func:`mmemo.encoders.whisper_checkpoints.load_whisper`
    reads: a model name (``base``), an openai-whisper ``.pt`` file, a Hugging Face
    Whisper folder, or a CTranslate2 (faster-whisper) folder. Only the encoder is
    kept in memory.
    """

    lora_targets = ("query", "key", "value", "out")

    def __init__(
        self,
        path: str,
        *,
        layer: str | int = "last",
        trainable: str = "frozen",
        top_k: int = 2,
        lora: dict | None = None,
        pad_to_30s: bool = False,
        gradient_checkpointing: bool = False,
        compute_dtype: str = "float32",
        name: str | None = None,
    ):
        super().__init__(trainable, top_k=top_k, lora=lora)
        from mmemo.encoders.whisper_checkpoints import load_whisper

        if compute_dtype not in ("float32", "bfloat16"):
            raise InvalidInput(f"compute_dtype must be float32 or bfloat16, got {compute_dtype!r}")
        self.path = str(path)
        self.pretrained_source = self.path  # fixed weights are referenced from here, not copied
        self.name = name or f"whisper-{os.path.basename(self.path.rstrip('/')) or self.path}"
        model = load_whisper(self.path)
        self.dims = model.dims
        self.encoder = model.encoder
        del model  # the decoder is not needed for features
        self.n_mels = self.dims.n_mels
        self.layer = check_layer(layer, self.dims.n_audio_layer + 1)
        self.pad_to_30s = pad_to_30s
        self.gradient_checkpointing = gradient_checkpointing
        self.compute_dtype = compute_dtype
        self.apply_trainable_mode()
        self.mixer = LayerMixer(self.dims.n_audio_layer + 1) if layer == "weighted" else None

    @property
    def dim(self) -> int:
        return int(self.dims.n_audio_state)

    @property
    def frame_rate(self) -> float:
        return 50.0

    def layer_stack(self):
        return list(self.encoder.blocks)

    def lora_root(self) -> nn.Module:
        return self.encoder

    def config(self) -> dict:
        return {**super().config(), "path": os.path.abspath(self.path) if os.path.exists(self.path) else self.path,
                "layer": self.layer, "pad_to_30s": self.pad_to_30s, "compute_dtype": self.compute_dtype,
                "top_k": self.top_k, "lora": self.lora, "dims": vars(self.dims)}

    # -- forward ---------------------------------------------------------------------------
    def log_mel(self, wav: torch.Tensor, wav_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-clip log-mel, padded to the batch.

        Returns mel [B, n_mels, T_mel], the mask of mel frames the encoder attends
        to [B, T_mel] (the whole 30 s window with ``pad_to_30s``), and the number of
        mel frames that belong to each clip itself [B].
        """
        lengths = [int(n) for n in wav_mask.sum(1).tolist()]
        longest = max(lengths) / 16_000
        if longest > MAX_SECONDS + 1e-6:
            raise InvalidInput(f"Whisper's encoder takes at most 30 s of audio, got a {longest:.1f} s clip; "
                             "crop it (data.max_seconds=30) or split it")
        window = int(MAX_SECONDS * 16_000) if self.pad_to_30s else None
        mels = []
        for row, length in enumerate(lengths):
            wave = wav[row, :length]
            if window is not None:
                wave = F.pad(wave, (0, window - wave.numel()))
            mels.append(clip_log_mel(wave, self.n_mels))
        width = max(m.shape[1] for m in mels)
        mel = wav.new_zeros(len(mels), self.n_mels, width)
        mel_mask = torch.zeros(len(mels), width, dtype=torch.bool, device=wav.device)
        for row, m in enumerate(mels):
            mel[row, :, : m.shape[1]] = m
            mel_mask[row, : m.shape[1]] = True
        own = [m.shape[1] if window is None else max(1, n // SAMPLES_PER_MEL_FRAME) for m, n in zip(mels, lengths)]
        return mel, mel_mask, torch.tensor(own, device=wav.device)

    def _attention(self, block, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """Whisper's self-attention with an optional key padding mask (key_mask: [B,T], True = valid)."""
        attn = block.attn
        q, k, v = attn.query(x), attn.key(x), attn.value(x)
        shape = (*x.shape[:2], attn.n_head, -1)
        q, k, v = (t.view(shape).permute(0, 2, 1, 3) for t in (q, k, v))
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return attn.out(out.permute(0, 2, 1, 3).flatten(start_dim=2))

    def _block(self, block, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self._attention(block, block.attn_ln(x), key_mask)
        return x + block.mlp(block.mlp_ln(x))

    def _encode(self, mel: torch.Tensor, mel_mask: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        encoder = self.encoder
        padded = not bool(mel_mask.all())
        x = F.gelu(encoder.conv1(mel))
        if padded:
            x = x * mel_mask[:, None, :].to(x.dtype)
        x = F.gelu(encoder.conv2(x)).permute(0, 2, 1)  # [B,T,D]
        lengths = (mel_mask.sum(1) - 1) // 2 + 1  # conv2: kernel 3, stride 2, padding 1
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
        if x.shape[1] > encoder.positional_embedding.shape[0]:
            raise InvalidInput(f"{x.shape[1]} frames exceed Whisper's {encoder.positional_embedding.shape[0]}")
        x = (x + encoder.positional_embedding[: x.shape[1]]).to(x.dtype)
        key_mask = mask if padded else None
        states = [x]
        for block in encoder.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(self._block, block, x, key_mask, use_reentrant=False)
            else:
                x = self._block(block, x, key_mask)
            states.append(x)
        states[-1] = encoder.ln_post(x)
        return states, mask

    def forward(self, wav: torch.Tensor, wav_mask: torch.Tensor) -> EncoderOutput:
        with torch.no_grad():
            mel, mel_mask, clip_mel_frames = self.log_mel(wav, wav_mask)
        use_bf16 = self.compute_dtype == "bfloat16"
        with torch.autocast(wav.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            states, _ = self._encode(mel, mel_mask)
            if self.mixer is not None:
                frames = self.mixer(states)
            else:
                frames = states[-1] if self.layer == "last" else states[self.layer]
        # Valid output frames are the clip's own (never the 30 s window's silence).
        lengths = (clip_mel_frames - 1) // 2 + 1
        mask = torch.arange(frames.shape[1], device=frames.device)[None, :] < lengths[:, None]
        frames = frames.float() * mask[..., None]
        layers = tuple(s.float() * mask[..., None] for s in states) if self.mixer is not None else None
        return EncoderOutput(frames=frames, mask=mask, layers=layers)

"""emotion2vec (FunASR checkpoints) as a batched speech encoder whose output equals funasr's.

``path`` is a FunASR model directory or a hub id, read by
:mod:`mmemo.encoders.emotion2vec_checkpoints`. The network is funasr's own ``Emotion2vec``
class with the checkpoint's weights; only the forward pass is mmemo's, because funasr
encodes one clip at a time and its forward lets padding leak into valid frames in several
places. Each is closed here:

* the per-clip waveform normalisation (``layer_norm`` over the whole clip) uses the mean
  and variance of the clip's own samples, not of its padding;
* the conv feature extractor runs clip by clip on each clip's own samples, so its
  GroupNorm over time (``extractor_mode: default``) sees no padding, and no conv work is
  spent on padding;
* padded frames are zeroed before every positional convolution, exactly the zeros a clip
  encoded alone sees beyond its end;
* ALiBi biases depend on distance only; extra tokens get zero bias and are never masked;
  every block gets a key-padding mask, so valid frames never attend to padding.

Valid frames per clip follow the conv output-length formula (50 frames/s for the
standard spec); padded output positions are exactly zero. Layer 0 of ``layers`` is the
input of the first main block (the prenet's output: prenet blocks are not exposed as
separate layers), layer i the output of main block i.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mmemo.encoders.base import EncoderOutput, LayerMixer, SpeechEncoder, check_layer
from mmemo.encoders.emotion2vec_checkpoints import (
    WEIGHTS_FILE,
    build_funasr_model,
    head_labels,
    load_weights,
    read_funasr_model_dir,
    resolve_model_dir,
)
from mmemo.errors import InvalidInput

COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


# --------------------------------------------------------------------------------------
# mask-aware pieces of the forward pass
# --------------------------------------------------------------------------------------
def valid_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """[B] lengths -> [B,size] bool, True on the first ``length`` positions."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def normalise_waveforms(wav: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """funasr's ``F.layer_norm(clip, clip.shape)`` per clip, statistics over its own samples only.

    wav: [B,S]; lengths: [B]. Padded samples come out as zeros.
    """
    mask = valid_mask(lengths, wav.shape[1])
    count = lengths.clamp(min=1).to(torch.float32)[:, None]
    wav = wav.float() * mask
    mean = wav.sum(1, keepdim=True) / count
    centred = (wav - mean) * mask
    var = centred.square().sum(1, keepdim=True) / count
    return centred * torch.rsqrt(var + eps)


def conv_output_lengths(lengths: torch.Tensor, conv_spec: Sequence[tuple[int, int, int]]) -> torch.Tensor:
    """funasr's ``floor((L - kernel) / stride + 1)`` through every conv layer (no padding)."""
    for _, kernel, stride in conv_spec:
        lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
    return lengths


def receptive_field(conv_spec: Sequence[tuple[int, int, int]]) -> int:
    """Samples that produce exactly one output frame."""
    field = 1
    for _, kernel, stride in reversed(conv_spec):
        field = (field - 1) * stride + kernel
    return field


def _time_major_conv(conv: nn.Conv1d, frames: torch.Tensor) -> torch.Tensor:
    """funasr's unpadded Conv1d on time-major frames [B,T,C_in] -> [B,T',C_out]."""
    kernel, stride = conv.kernel_size[0], conv.stride[0]
    if conv.in_channels == 1:  # a [T',kernel] x [kernel,C_out] matmul: 4x faster than a 1-channel conv
        out = frames[:, :, 0].unfold(1, kernel, stride) @ conv.weight.view(conv.out_channels, kernel).t()
        return out if conv.bias is None else out + conv.bias
    x = frames.transpose(1, 2)[:, :, None, :]  # [B,C,1,T], channels-last in memory
    x = F.conv2d(x, conv.weight.unsqueeze(2), conv.bias, stride=(1, stride))
    return x.contiguous(memory_format=torch.channels_last)[:, :, 0, :].transpose(1, 2)


def _time_major(module: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    """One non-conv module of a funasr conv block applied to one clip's time-major frames [1,T,C]."""
    if isinstance(module, nn.GroupNorm):  # over time: frames hold exactly one unpadded clip
        return module(frames.transpose(1, 2)).transpose(1, 2)
    if isinstance(module, nn.Sequential):  # (TransposeLast, Fp32LayerNorm over channels, TransposeLast)
        norms = [m for m in module if isinstance(m, nn.LayerNorm)]
        others = [m for m in module if not isinstance(m, nn.LayerNorm) and type(m).__name__ != "TransposeLast"]
        if len(norms) != 1 or others:
            raise NotImplementedError(f"unexpected conv-block layout in the feature extractor: {module}")
        norm = norms[0]
        # float32 statistics and affine, output in the input's dtype: Fp32LayerNorm's result without
        # its two bf16<->fp32 copies (CPU layer_norm computes bf16 input in float32).
        return F.layer_norm(frames, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
    return module(frames)  # Dropout, GELU: element-wise


def _masked_positional_convs(module: nn.Module, x: torch.Tensor, time_mask: torch.Tensor) -> torch.Tensor:
    """Run funasr's positional-conv stack, zeroing padded frames before each convolution.

    ``time_mask``: [B,1,T] float; at a Conv1d the tensor is [B,C,T] by definition.
    """
    if isinstance(module, nn.Conv1d):
        return module(x * time_mask.to(x.dtype))
    if isinstance(module, nn.Sequential):
        for child in module:
            x = _masked_positional_convs(child, x, time_mask)
        return x
    return module(x)


def _attention(attention: nn.Module, x: torch.Tensor, bias: torch.Tensor, dropout: float) -> torch.Tensor:
    """funasr's AltAttention through its own qkv/proj layers, the core as fused SDPA.

    x: [B,N,C]; bias: [B|1,H,N,N] additive (ALiBi + -inf on padded keys). Under bf16 autocast
    the core (scores, bias, softmax, weighted sum) stays float32, as funasr's attention keeps
    scores in the ALiBi bias's float32: a bf16 bias of -200 would be off by up to 0.5.
    """
    if getattr(attention, "cosine_attention", False):
        raise NotImplementedError("emotion2vec checkpoints with cosine attention are not supported")
    batch, steps, channels = x.shape
    heads = attention.num_heads
    q, k, v = attention.qkv(x).reshape(batch, steps, 3, heads, channels // heads).permute(2, 0, 3, 1, 4).unbind(0)
    with torch.autocast(device_type=x.device.type, enabled=False):
        out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=bias, dropout_p=dropout,
                                             scale=attention.scale).to(q.dtype)
    out = out.transpose(1, 2).reshape(batch, steps, channels)
    return attention.proj_drop(attention.proj(out))


def run_block(block: nn.Module, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """One funasr AltBlock (both of its norm orders, reproduced as funasr computes them)."""
    dropout = block.attn.attn_drop.p if block.training else 0.0
    if block.layer_norm_first:
        x = x + block.drop_path(_attention(block.attn, block.norm1(x), bias, dropout))
        mlp_out = block.mlp(block.norm2(x))
        # sic: funasr (after fairseq) adds the MLP output to itself; the block input is not added back
        return mlp_out + block.drop_path(block.post_mlp_dropout(mlp_out))
    x = x + block.drop_path(_attention(block.attn, x, bias, dropout))
    residual = x = block.norm1(x)
    return block.norm2(residual + block.drop_path(block.post_mlp_dropout(block.mlp(x))))


@dataclass
class _AttentionBias:
    """ALiBi [1,H,N,N] (extra tokens included) and the key mask [B,1,1,N]; scaled per block on demand."""

    alibi: torch.Tensor | None
    per_layer_scale: torch.Tensor | None  # [L,1,H,1,1] or None when folded into alibi
    key_mask: torch.Tensor | None  # additive, -inf on padded keys
    heads: int

    def for_block(self, index: int) -> torch.Tensor:
        alibi = self.alibi
        if alibi is not None and self.per_layer_scale is not None:
            alibi = alibi * self.per_layer_scale[index].type_as(alibi)
        if alibi is None:
            return self.key_mask
        if alibi.shape[1] < self.heads:  # funasr adds ALiBi to the first num_alibi_heads heads only
            alibi = F.pad(alibi, (0, 0, 0, 0, 0, self.heads - alibi.shape[1]))
        return alibi if self.key_mask is None else alibi + self.key_mask


# --------------------------------------------------------------------------------------
# the encoder
# --------------------------------------------------------------------------------------
class Emotion2vecEncoder(SpeechEncoder):
    """emotion2vec frames [B,T,D] (D=768 for base) at 50 Hz from 16 kHz audio, batched, equal to funasr per clip.

    ``layer``: ``last`` (funasr's features), a hidden-state index (0 = prenet output / input of
    the first main block, i = output of main block i) or ``weighted`` (learned mix of all).
    ``compute_dtype="bfloat16"`` runs under bf16 autocast on the input's device; frames stay float32.
    The emotion2vec+ head is kept: :attr:`labels` (tokens.txt order) and :meth:`classify`.
    Layer drop is not applied when fine-tuning (every block always runs).
    """

    #: funasr AltAttention projections (``attn.qkv``, ``attn.proj``); the suffixes keep the head ``proj`` out.
    lora_targets = ("attn.qkv", "attn.proj")

    def __init__(self, path: str, *, layer: str | int = "last", trainable: str = "frozen", top_k: int = 2,
                 lora: dict | None = None, name: str | None = None, compute_dtype: str = "float32"):
        super().__init__(trainable, top_k=top_k, lora=lora)
        if compute_dtype not in COMPUTE_DTYPES:
            raise InvalidInput(f"compute_dtype must be one of {sorted(COMPUTE_DTYPES)}, got {compute_dtype!r}")
        self.path = str(path)
        self.pretrained_source = self.path  # fixed weights are referenced from here, not copied
        self.name = name or Path(self.path.rstrip("/")).name
        self.compute_dtype = compute_dtype
        checkpoint = read_funasr_model_dir(resolve_model_dir(self.path))
        self.model_dir = checkpoint.directory
        #: The head's classes in output order (tokens.txt), or None for a model without a head.
        self.labels: list[str] | None = head_labels(checkpoint)
        self.model = build_funasr_model(checkpoint.model_conf, len(self.labels or ()))
        self.audio_encoder.decoder = None  # pre-training only, as fairseq's remove_pretraining_modules does
        load_weights(self.model, checkpoint.state_dict, checkpoint.directory / WEIGHTS_FILE)
        self.conv_spec = [tuple(int(v) for v in layer_spec) for layer_spec in self.audio_encoder.feature_enc_layers]
        self.num_layers = len(self.model.blocks) + 1
        self.layer = check_layer(layer, self.num_layers)
        self.apply_trainable_mode()
        if self.model.proj is not None:  # funasr's fixed classifier: reproduced, never trained here
            self.model.proj.requires_grad_(False)
        # Created after the mode is applied: the mixing weights learn in every mode.
        self.mixer = LayerMixer(self.num_layers) if layer == "weighted" else None

    # -- description ---------------------------------------------------------------------
    @property
    def audio_encoder(self) -> nn.Module:
        return self.model.modality_encoders["AUDIO"]

    @property
    def dim(self) -> int:
        return int(self.model.cfg.get("embed_dim"))

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / math.prod(stride for _, _, stride in self.conv_spec)

    @property
    def num_extra_tokens(self) -> int:
        return int(self.audio_encoder.modality_cfg.num_extra_tokens)

    def layer_stack(self) -> list[nn.Module]:
        return [*self.audio_encoder.context_encoder.blocks, *self.model.blocks]

    def lora_root(self) -> nn.Module:
        return self.model

    def config(self) -> dict:
        local = Path(self.path).expanduser()
        return {**super().config(), "path": str(local.resolve()) if local.is_dir() else self.path,
                "layer": self.layer, "top_k": self.top_k, "lora": self.lora,
                "compute_dtype": self.compute_dtype,
                "conv_spec": self.audio_encoder.modality_cfg.feature_encoder_spec}

    # -- forward -------------------------------------------------------------------------
    def forward(self, wav: torch.Tensor, wav_mask: torch.Tensor) -> EncoderOutput:
        """wav: [B,S] float at 16 kHz; wav_mask: [B,S] bool. frames: [B,T,D] float32; mask: [B,T]."""
        lengths = wav_mask.sum(1)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen), self._autocast(wav):
            hidden, mask = self._hidden_states(wav, lengths)
        keep = mask[..., None]
        layers = tuple(torch.where(keep, h.float(), 0.0) for h in hidden)
        if self.layer == "last":
            frames = torch.where(keep, self._final_norm(hidden[-1]).float(), 0.0)
        elif self.mixer is not None:
            frames = self.mixer(layers)
        else:
            frames = layers[self.layer]
        return EncoderOutput(frames=frames, mask=mask, layers=layers)

    def _autocast(self, wav: torch.Tensor):
        if self.compute_dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=wav.device.type, dtype=COMPUTE_DTYPES[self.compute_dtype])

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        norm = self.model.norm  # only pre-norm models have one; funasr applies it to the last layer
        if norm is None:
            return x
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen), self._autocast(x):
            return norm(x)

    def _hidden_states(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Main-block inputs/outputs [B,T,D] (extra tokens removed) and the frame mask [B,T]."""
        encoder = self.audio_encoder
        if self.model.cfg.get("normalize"):
            wav = normalise_waveforms(wav, lengths)
        else:
            wav = wav.float() * valid_mask(lengths, wav.shape[1])
        # A clip shorter than the conv receptive field has no frame in funasr (it fails);
        # here its normalised samples are zero-padded to one frame's worth.
        lengths = lengths.clamp(min=receptive_field(self.conv_spec))
        if wav.shape[1] < int(lengths.max()):
            wav = F.pad(wav, (0, int(lengths.max()) - wav.shape[1]))
        x, frame_lengths = self._local_features(wav, lengths)  # [B,T,D]
        frame_mask = valid_mask(frame_lengths, x.shape[1])
        x_pos = _masked_positional_convs(encoder.relative_positional_encoder, x, frame_mask[:, None, :].float())
        x = x + x_pos
        bias = self._attention_bias(x, frame_mask)
        extra = self.num_extra_tokens
        if encoder.extra_tokens is not None:
            x = torch.cat([encoder.extra_tokens.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        x = self._prenet(x, bias)
        x = self.model.dropout_input(x)
        prenet_depth = len(encoder.context_encoder.blocks)
        hidden = [x]
        for index, block in enumerate(self.model.blocks):
            x = run_block(block, x, bias.for_block(prenet_depth + index))
            hidden.append(x)
        return [h[:, extra:] for h in hidden], frame_mask

    def _local_features(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Conv feature extractor + projection: features [B,T,D] (zero-padded) and frame counts [B].

        The extractor runs clip by clip on each clip's own samples: no work is spent on
        padding, its cache footprint stays one clip's, and GroupNorm over time (``default``
        mode) sees exactly the frames funasr's lone clip has.
        """
        encoder = self.audio_encoder
        grad_scale = encoder.local_grad_mult
        with torch.set_grad_enabled(torch.is_grad_enabled() and grad_scale > 0):
            clips = [self._conv_features(wav[i, : int(n)]) for i, n in enumerate(lengths)]
        frames = nn.utils.rnn.pad_sequence(clips, batch_first=True)
        if 0 < grad_scale != 1.0:
            from funasr.models.emotion2vec.fairseq_modules import GradMultiply

            frames = GradMultiply.apply(frames, grad_scale)
        project = encoder.project_features  # Sequential(TransposeLast, LayerNorm, Linear)
        if type(project[0]).__name__ != "TransposeLast":
            raise NotImplementedError(f"unexpected project_features layout: {project}")
        frame_lengths = conv_output_lengths(lengths, self.conv_spec)
        if frame_lengths.tolist() != [len(c) for c in clips]:
            raise AssertionError(f"conv output lengths {[len(c) for c in clips]} differ from funasr's formula "
                                 f"{frame_lengths.tolist()}")
        return project[1:](frames), frame_lengths

    def _conv_features(self, samples: torch.Tensor) -> torch.Tensor:
        """One clip's samples [S] -> conv features [T,C], kept time-major so LayerNorms need no transposes."""
        frames = samples[None, :, None]  # [1,S,1]
        for block in self.audio_encoder.local_encoder.conv_layers:
            conv, *rest = block
            frames = _time_major_conv(conv, frames)
            for module in rest:
                frames = _time_major(module, frames)
        return frames[0]

    def _attention_bias(self, x: torch.Tensor, frame_mask: torch.Tensor) -> _AttentionBias:
        """ALiBi for N = extra tokens + frames, and -inf on padded keys (none when nothing is padded)."""
        encoder = self.audio_encoder
        extra = self.num_extra_tokens
        heads = int(self.model.cfg.get("num_heads"))
        key_mask = None
        if not bool(frame_mask.all()):
            padded = F.pad(~frame_mask, (extra, 0))  # extra tokens are never masked
            key_mask = torch.zeros(padded.shape, dtype=torch.float32, device=x.device)
            key_mask = key_mask.masked_fill(padded, float("-inf"))[:, None, None, :]
        alibi, per_layer_scale = None, None
        if encoder.get_alibi_bias is not None:
            alibi = encoder.get_alibi_bias(batch_size=1, time_steps=x.shape[1],
                                           heads=encoder.modality_cfg.num_alibi_heads,
                                           dtype=torch.float32, device=x.device)
            scale = encoder.alibi_scale
            if scale is not None:
                scale = scale.clamp_min(0)
                if scale.shape[0] == 1:
                    alibi = alibi * scale.squeeze(0).type_as(alibi)
                else:
                    per_layer_scale = scale
            alibi = F.pad(alibi, (extra, 0, extra, 0))
        return _AttentionBias(alibi, per_layer_scale, key_mask, heads)

    def _prenet(self, x: torch.Tensor, bias: _AttentionBias) -> torch.Tensor:
        """funasr's BlockEncoder (the prenet) with masks."""
        prenet = self.audio_encoder.context_encoder
        if prenet.norm is not None and not prenet.layer_norm_first:
            x = prenet.norm(x)
        x = F.dropout(x, prenet.dropout.p, training=prenet.training)
        for index, block in enumerate(prenet.blocks):
            x = run_block(block, x, bias.for_block(index))
        if prenet.norm is not None and prenet.layer_norm_first:
            x = prenet.norm(x)
        return x

    # -- the emotion2vec+ head -----------------------------------------------------------
    @property
    def has_head(self) -> bool:
        return self.model.proj is not None

    def classify(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Utterance logits [B, len(labels)] as funasr scores them: mean of valid frames, then ``proj``.

        frames: [B,T,D] from this encoder with ``layer="last"``; mask: [B,T]. Labels starting
        with "unuse" get -inf, as in funasr, so ``softmax(logits)`` equals funasr's scores.
        """
        if self.model.proj is None:
            raise InvalidInput(f"{self.model_dir} has no classification head ({WEIGHTS_FILE} has no proj.*): "
                               "it is a pre-trained SSL model; use its frames with a fusion head instead")
        if self.layer != "last":
            raise InvalidInput(f"classify needs the last layer's frames (the head was trained on them); "
                             f"this encoder outputs layer={self.layer!r}")
        weights = mask.to(frames.dtype)[..., None]
        pooled = (frames * weights).sum(1) / weights.sum(1).clamp(min=1)
        logits = self.model.proj(pooled.to(self.model.proj.weight.dtype))
        unused = torch.tensor([label.startswith("unuse") for label in self.labels], device=logits.device)
        return logits.masked_fill(unused, float("-inf"))

"""Hugging Face transformers Whisper folders, renamed onto openai-whisper's modules.

A folder holds ``config.json`` + ``model.safetensors`` or ``pytorch_model.bin`` (or
sharded ones with an index). transformers names and sometimes fuses the same weights
differently, so keys are renamed (and fused projections split); variants openai-whisper
cannot express (another activation, scaled embeddings, an untied output head) are refused
rather than loaded wrongly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmemo.encoders.whisper_checkpoints._common import (
    _check_tied_output,
    _Checkpoint,
    _dominant_dtype,
    _read_json,
    _torch_load,
)
from mmemo.encoders.whisper_checkpoints.errors import WhisperCheckpointError

if TYPE_CHECKING:
    from whisper.model import ModelDimensions


# Applied in order to a key with the model prefix ("model.") removed.
_HF_TO_OPENAI = [
    (r"^encoder\.embed_positions\.weight$", "encoder.positional_embedding"),
    (r"^decoder\.embed_positions\.weight$", "decoder.positional_embedding"),
    (r"^decoder\.embed_tokens\.weight$", "decoder.token_embedding.weight"),
    (r"^encoder\.layer_norm\.", "encoder.ln_post."),
    (r"^decoder\.layer_norm\.", "decoder.ln."),
    (r"\.layers\.(\d+)\.", r".blocks.\1."),
    (r"\.self_attn_layer_norm\.", ".attn_ln."),
    (r"\.encoder_attn_layer_norm\.", ".cross_attn_ln."),
    (r"\.final_layer_norm\.", ".mlp_ln."),
    (r"\.self_attn\.", ".attn."),
    (r"\.encoder_attn\.", ".cross_attn."),
    (r"\.fc1\.", ".mlp.0."),
    (r"\.fc2\.", ".mlp.2."),
    (r"\.q_proj\.", ".query."),
    (r"\.k_proj\.", ".key."),
    (r"\.v_proj\.", ".value."),
    (r"\.out_proj\.", ".out."),
]

# Fused projections some exports use: split into equal row blocks before renaming.
_HF_FUSED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "kv_proj": ("k_proj", "v_proj")}


def _hf_weight_files(folder: Path) -> list[Path]:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
            return [folder / shard for shard in shards]
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (folder / single).is_file():
            return [folder / single]
    return []


def _read_hf_tensors(folder: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for file in _hf_weight_files(folder):
        if not file.is_file():
            raise WhisperCheckpointError(f"{file}: shard listed in the index is missing")
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors.update(load_file(str(file)))
        else:
            tensors.update(_torch_load(file))
    return tensors


def _hf_dims(folder: Path) -> ModelDimensions:
    from whisper.model import ModelDimensions

    config = _read_json(folder / "config.json")
    _check_hf_config(folder, config)
    return ModelDimensions(
        n_mels=config["num_mel_bins"], n_audio_ctx=config["max_source_positions"],
        n_audio_state=config["d_model"], n_audio_head=config["encoder_attention_heads"],
        n_audio_layer=config["encoder_layers"], n_vocab=config["vocab_size"],
        n_text_ctx=config["max_target_positions"], n_text_state=config["d_model"],
        n_text_head=config["decoder_attention_heads"], n_text_layer=config["decoder_layers"],
    )


def _check_hf_config(folder: Path, config: dict[str, Any]) -> None:
    """openai-whisper hard-codes GELU, 4x MLPs and unscaled embeddings; refuse anything else."""
    problems = []
    if config.get("activation_function", "gelu") != "gelu":
        problems.append(f"activation_function={config['activation_function']!r} (openai-whisper uses gelu)")
    if config.get("scale_embedding", False):
        problems.append("scale_embedding=true (openai-whisper does not scale embeddings)")
    for key in ("encoder_ffn_dim", "decoder_ffn_dim"):
        if key in config and config[key] != 4 * config["d_model"]:
            problems.append(f"{key}={config[key]} (openai-whisper's MLP is 4 x d_model = {4 * config['d_model']})")
    if problems:
        raise WhisperCheckpointError(f"{folder}: this Whisper variant cannot be expressed in openai-whisper: "
                                     + "; ".join(problems))


def _read_huggingface(folder: Path) -> _Checkpoint:
    from whisper.model import sinusoids

    dims = _hf_dims(folder)
    tensors = _read_hf_tensors(folder)
    stored_dtype = _dominant_dtype(tensors.values())
    state = _hf_to_openai_state(folder, tensors)
    if "encoder.positional_embedding" not in state:  # some exports drop the fixed table
        state["encoder.positional_embedding"] = sinusoids(dims.n_audio_ctx, dims.n_audio_state)
    heads = _read_json(folder / "generation_config.json").get("alignment_heads") \
        if (folder / "generation_config.json").is_file() else None
    return _Checkpoint(dims, state, heads, stored_dtype)


def _hf_to_openai_state(folder: Path, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefix = _hf_prefix(folder, tensors)
    output_projection = tensors.pop("proj_out.weight", None)
    state: dict[str, torch.Tensor] = {}
    for key, tensor in _unfuse_hf(tensors).items():
        if not key.startswith(prefix):
            raise WhisperCheckpointError(f"{folder}: unexpected weight {key!r} (not part of a Whisper "
                                         "encoder-decoder)")
        name = key[len(prefix):]
        for pattern, replacement in _HF_TO_OPENAI:
            name = re.sub(pattern, replacement, name)
        if name.endswith(".key.bias"):
            continue  # openai-whisper's key has no bias; dropping one is exact (KEY_BIAS_NOTE)
        state[name] = tensor
    _check_tied_output(folder, output_projection, state.get("decoder.token_embedding.weight"))
    return state


def _hf_prefix(folder: Path, tensors: dict[str, torch.Tensor]) -> str:
    """"model." for WhisperForConditionalGeneration, "" for a bare WhisperModel."""
    for key in tensors:
        if key.endswith("encoder.conv1.weight"):
            return key[: -len("encoder.conv1.weight")]
    raise WhisperCheckpointError(f"{folder}: no encoder.conv1.weight among the weights; not a Whisper model")


def _unfuse_hf(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    result: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        match = re.match(r"^(.*)\.(qkv_proj|kv_proj)\.(weight|bias)$", key)
        if match is None:
            result[key] = tensor
            continue
        stem, fused, kind = match.groups()
        for part_name, part in zip(_HF_FUSED[fused], torch.chunk(tensor, len(_HF_FUSED[fused]), dim=0),
                                   strict=True):
            result[f"{stem}.{part_name}.{kind}"] = part
    return result


_SAFETENSORS_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def _describe_huggingface(folder: Path) -> tuple[ModelDimensions, str]:
    dims = _hf_dims(folder)
    totals: dict[str, int] = {}
    for file in _hf_weight_files(folder):
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 - safe_open is not a dict
                    piece = handle.get_slice(key)
                    dtype = _SAFETENSORS_DTYPES.get(piece.get_dtype(), piece.get_dtype())
                    totals[dtype] = totals.get(dtype, 0) + int(np.prod(piece.get_shape()))
        else:
            for tensor in _torch_load(file, memory_map=True).values():
                dtype = str(tensor.dtype).replace("torch.", "")
                totals[dtype] = totals.get(dtype, 0) + tensor.numel()
    return dims, max(totals, key=totals.get) if totals else "unknown"

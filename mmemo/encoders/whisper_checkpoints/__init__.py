"""Load every Whisper checkpoint format users hold into openai-whisper, exactly.

Users hold Whisper weights in four shapes, and mmemo takes all of them through one
``path`` option (``model.speech.path=...``), detected automatically:

* ``name``: an official model name (``tiny.en``, ``base``, ..., ``large-v3``, ``turbo``),
  downloaded by openai-whisper. Offline this fails within seconds, naming the local
  alternatives, instead of hanging in a download;
* ``openai_pt``: an openai-whisper ``.pt`` file (``{"dims": ..., "model_state_dict": ...}``);
* ``huggingface``: a transformers Whisper folder (``config.json`` + ``model.safetensors``
  or ``pytorch_model.bin``), renamed onto openai-whisper's modules;
* ``ctranslate2``: a CTranslate2 / faster-whisper folder (``model.bin`` + ``config.json``),
  read by our own parser of CTranslate2's binary format (no ctranslate2 import), with
  fused projections split and int8/int16 weights dequantised.

Every format ends as the same object: a float32 ``whisper.model.Whisper`` in eval mode,
so the rest of mmemo (and ``whisper.transcribe``) never needs to know where weights came
from. Each format is read by its own submodule (``download``, ``openai_pt``,
``huggingface``, ``ctranslate2``); this package detects the format, dispatches to it and
builds the model. See ``docs/encoders/whisper_checkpoints.md`` for the mappings and
measured tolerances.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mmemo.encoders.whisper_checkpoints._common import _Checkpoint, _read_json
from mmemo.encoders.whisper_checkpoints.ctranslate2 import (
    CTranslate2Model,
    _describe_ctranslate2,
    _read_ctranslate2,
    read_ctranslate2_model,
)
from mmemo.encoders.whisper_checkpoints.download import _cached_download, _load_by_name, _model_urls
from mmemo.encoders.whisper_checkpoints.errors import (
    CTranslate2FormatError,
    WhisperCheckpointError,
    WhisperDownloadError,
)
from mmemo.encoders.whisper_checkpoints.huggingface import (
    _describe_huggingface,
    _hf_weight_files,
    _read_huggingface,
)
from mmemo.encoders.whisper_checkpoints.openai_pt import (
    _describe_openai_pt,
    _looks_like_torch_file,
    _read_openai_pt,
)
from mmemo.errors import MissingInput

if TYPE_CHECKING:
    from whisper.model import ModelDimensions, Whisper

log = logging.getLogger(__name__)

__all__ = [
    "KINDS",
    "CTranslate2FormatError",
    "CTranslate2Model",
    "WhisperCheckpointError",
    "WhisperDownloadError",
    "describe_checkpoint",
    "load_whisper",
    "read_ctranslate2_model",
    "whisper_checkpoint_kind",
]

KINDS = ("name", "openai_pt", "huggingface", "ctranslate2")

EXPECTED_FORMATS = (
    "expected one of: a Whisper model name (tiny, tiny.en, base, base.en, small, medium, large-v3, "
    "turbo, ...); an openai-whisper .pt file (a dict with 'dims' and 'model_state_dict'); a Hugging "
    "Face Whisper folder (config.json with model_type 'whisper' + model.safetensors or "
    "pytorch_model.bin); a CTranslate2/faster-whisper folder (model.bin + config.json)"
)


# ======================================================================================
# Detection
# ======================================================================================

def whisper_checkpoint_kind(path: str | os.PathLike) -> str:
    """Which of :data:`KINDS` ``path`` is; raises with the expected formats when it is none."""
    candidate = Path(path).expanduser()
    if not candidate.exists():
        if str(path) in _model_urls():
            return "name"
        raise MissingInput(f"{path}: no such file or folder, and not a Whisper model name; "
                                f"{EXPECTED_FORMATS}")
    if candidate.is_file():
        if candidate.name == "model.bin":
            return "ctranslate2"
        if _looks_like_torch_file(candidate):
            return "openai_pt"
        raise WhisperCheckpointError(f"{candidate}: a file that is not a PyTorch checkpoint; {EXPECTED_FORMATS}")
    if (candidate / "model.bin").is_file():
        return "ctranslate2"
    config_file = candidate / "config.json"
    if config_file.is_file():
        model_type = _read_json(config_file).get("model_type")
        if model_type != "whisper":
            raise WhisperCheckpointError(f"{config_file}: model_type is {model_type!r}, not 'whisper'; "
                                         f"{EXPECTED_FORMATS}")
        if not _hf_weight_files(candidate):
            raise WhisperCheckpointError(f"{candidate}: a Hugging Face Whisper config without weights "
                                         "(no model.safetensors, pytorch_model.bin or their .index.json)")
        return "huggingface"
    listing = ", ".join(sorted(p.name for p in candidate.iterdir())[:10]) or "empty"
    raise WhisperCheckpointError(f"{candidate}: not a Whisper checkpoint folder (contains: {listing}); "
                                 f"{EXPECTED_FORMATS}")


# ======================================================================================
# Public entry points
# ======================================================================================

def load_whisper(path: str | os.PathLike, *, download_root: str | None = None,
                 device: str = "cpu") -> Whisper:
    """Load any supported Whisper checkpoint as a float32 openai-whisper model in eval mode."""
    kind = whisper_checkpoint_kind(path)
    if kind == "name":
        return _load_by_name(str(path), download_root, device)
    checkpoint = _READERS[kind](Path(path).expanduser())
    model = _build_model(checkpoint, source=str(path))
    log.info("loaded Whisper %s checkpoint %s (%s weights)", kind, path, checkpoint.stored_dtype)
    return model.to(device).eval()


def describe_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Kind, dimensions, parameter count and stored dtype, cheaply (weights are not decoded)."""
    kind = whisper_checkpoint_kind(path)
    description: dict[str, Any] = {"kind": kind, "path": str(path), "dims": None, "n_params": None,
                                   "dtype": None}
    if kind == "name":
        cached = _cached_download(str(path), None)
        description["cached_file"] = cached
        if cached is None:
            return description
        dims, dtype = _describe_openai_pt(Path(cached))
    else:
        dims, dtype = _DESCRIBERS[kind](Path(path).expanduser())
    description.update(dims=dataclasses.asdict(dims), n_params=_count_parameters(dims), dtype=dtype)
    return description


# ======================================================================================
# Building the openai-whisper model
# ======================================================================================

_INIT_FUNCTIONS = ("kaiming_uniform_", "uniform_", "normal_")
_init_lock = threading.Lock()


@contextlib.contextmanager
def _skipped_random_init() -> Iterator[None]:
    """Build modules without random initialisation.

    Every weight is overwritten by the checkpoint (the load is strict), and initialising
    randomly costs ~11 s for medium on 2 cores against ~0.05 s without.
    """
    with _init_lock:
        saved = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS}
        try:
            for name in _INIT_FUNCTIONS:
                setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
            yield
        finally:
            for name, function in saved.items():
                setattr(torch.nn.init, name, function)


def _build_model(checkpoint: _Checkpoint, source: str) -> Whisper:
    from whisper.model import Whisper

    with _skipped_random_init():
        model = Whisper(checkpoint.dims)
    state = {key: value.float() if value.is_floating_point() else value for key, value in checkpoint.state.items()}
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise WhisperCheckpointError(f"{source}: the weights do not fit openai-whisper with {checkpoint.dims}: "
                                     f"{error}") from None
    if checkpoint.alignment_heads:
        _set_alignment_heads(model, checkpoint.alignment_heads, source)
    return model.float()


def _set_alignment_heads(model: Whisper, heads: list, source: str) -> None:
    """Cross-attention heads used for word timestamps, as (layer, head) pairs."""
    mask = torch.zeros(model.dims.n_text_layer, model.dims.n_text_head, dtype=torch.bool)
    for layer, head in heads:
        if not (0 <= layer < mask.shape[0] and 0 <= head < mask.shape[1]):
            raise WhisperCheckpointError(f"{source}: alignment head ({layer}, {head}) is outside the decoder's "
                                         f"{mask.shape[0]} layers x {mask.shape[1]} heads")
        mask[layer, head] = True
    model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)


def _count_parameters(dims: ModelDimensions) -> int:
    """openai-whisper's parameter count for ``dims``, built on the meta device (no memory)."""
    from whisper.model import AudioEncoder, TextDecoder

    with torch.device("meta"):
        encoder = AudioEncoder(dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head,
                               dims.n_audio_layer)
        decoder = TextDecoder(dims.n_vocab, dims.n_text_ctx, dims.n_text_state, dims.n_text_head,
                              dims.n_text_layer)
    return sum(p.numel() for module in (encoder, decoder) for p in module.parameters())


_READERS = {"openai_pt": _read_openai_pt, "huggingface": _read_huggingface,
            "ctranslate2": _read_ctranslate2}
_DESCRIBERS = {"openai_pt": _describe_openai_pt, "huggingface": _describe_huggingface,
               "ctranslate2": _describe_ctranslate2}

"""openai-whisper ``.pt`` files (``{"dims": ..., "model_state_dict": ...}``).

This is openai-whisper's own format, so nothing is renamed; the file is only checked to be
one, loaded with ``weights_only=True``, and described through a memory map without
decoding the weights.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmemo.encoders.whisper_checkpoints._common import _Checkpoint, _dominant_dtype, _torch_load
from mmemo.encoders.whisper_checkpoints.errors import WhisperCheckpointError

if TYPE_CHECKING:
    from whisper.model import ModelDimensions


def _looks_like_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive (torch >= 1.6) or a pickle (protocol byte 0x80)."""
    with path.open("rb") as handle:
        head = handle.read(2)
    return zipfile.is_zipfile(path) or head[:1] == b"\x80"


def _read_openai_pt(path: Path) -> _Checkpoint:
    checkpoint = _torch_load(path)
    if not isinstance(checkpoint, dict) or not {"dims", "model_state_dict"} <= set(checkpoint):
        keys = sorted(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise WhisperCheckpointError(f"{path}: not an openai-whisper checkpoint (expected a dict with 'dims' "
                                     f"and 'model_state_dict', got {keys})")
    state = checkpoint["model_state_dict"]
    return _Checkpoint(_openai_dims(path, checkpoint), state, None, _dominant_dtype(state.values()))


def _openai_dims(path: Path, checkpoint: dict[str, Any]) -> ModelDimensions:
    from whisper.model import ModelDimensions

    try:
        return ModelDimensions(**checkpoint["dims"])
    except TypeError as error:
        raise WhisperCheckpointError(f"{path}: 'dims' does not match openai-whisper's ModelDimensions "
                                     f"({error})") from None


def _describe_openai_pt(path: Path) -> tuple[ModelDimensions, str]:
    checkpoint = _torch_load(path, memory_map=True)
    if not isinstance(checkpoint, dict) or not {"dims", "model_state_dict"} <= set(checkpoint):
        raise WhisperCheckpointError(f"{path}: not an openai-whisper checkpoint (no 'dims'/'model_state_dict')")
    return _openai_dims(path, checkpoint), _dominant_dtype(checkpoint["model_state_dict"].values())

"""What the format readers share: the translated-checkpoint record, file reads, tied output.

Readers turn a format into a :class:`_Checkpoint`; the package builds the model from it.
Reading failures become :class:`WhisperCheckpointError` naming the file, whichever format
hit them, and an untied output head is refused the same way by every reader.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mmemo.encoders.whisper_checkpoints.errors import WhisperCheckpointError

if TYPE_CHECKING:
    from whisper.model import ModelDimensions


@dataclass
class _Checkpoint:
    """A checkpoint translated to openai-whisper's vocabulary, before a model is built."""

    dims: ModelDimensions
    state: dict[str, torch.Tensor]
    alignment_heads: list[tuple[int, int]] | None
    stored_dtype: str


def _read_json(path: Path) -> dict[str, Any]:
    from mmemo.textfiles import load_json

    try:
        return load_json(path)
    except ValueError as error:  # TextFileError: names the file (and line)
        raise WhisperCheckpointError(str(error)) from None


def _torch_load(path: Path, memory_map: bool = False) -> Any:
    """``memory_map`` (for cheap descriptions) needs torch's zip format; legacy pickles load fully."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True,
                          mmap=True if memory_map and zipfile.is_zipfile(path) else None)
    except Exception as error:  # noqa: BLE001 - any failure here means "not a readable checkpoint"
        raise WhisperCheckpointError(f"{path}: cannot be read by torch.load ({type(error).__name__}: {error})"
                                     ) from None


def _dominant_dtype(tensors) -> str:
    """The dtype holding most of the bytes (what a checkpoint is "stored as")."""
    totals: dict[str, int] = {}
    for tensor in tensors:
        name = str(tensor.dtype).replace("torch.", "")
        totals[name] = totals.get(name, 0) + tensor.numel() * tensor.element_size()
    return max(totals, key=totals.get) if totals else "unknown"


# KEY_BIAS_NOTE: a key bias b adds q . b to every score in a query's row, and softmax is
# invariant to a constant shift, so it never changes attention. openai-whisper's key has
# no bias; transformers has none either, and CTranslate2 stores a zero one in its fused
# projections. Both readers drop it.


def _check_tied_output(source: Path, projection, embedding) -> None:
    """openai-whisper computes logits with the token embedding; an untied head cannot be kept."""
    if projection is None or embedding is None:
        return
    if projection.shape != embedding.shape or not torch.equal(projection.float(), embedding.float()):
        raise WhisperCheckpointError(f"{source}: the output projection differs from the token embedding; "
                                     "openai-whisper ties them and cannot represent this model")

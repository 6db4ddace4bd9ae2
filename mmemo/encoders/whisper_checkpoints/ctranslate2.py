"""CTranslate2 / faster-whisper folders (``model.bin`` + ``config.json``).

``model.bin`` is read by our own parser of CTranslate2's binary format, so these
checkpoints load without installing ctranslate2; arrays stay zero-copy views of a memory
map until converted, and a truncated or corrupt file fails naming the byte offset. The
variables are then mapped onto openai-whisper: fused attention projections are split and
int8/int16 weights dequantised.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmemo.encoders.whisper_checkpoints._common import _check_tied_output, _Checkpoint, _read_json
from mmemo.encoders.whisper_checkpoints.errors import CTranslate2FormatError, WhisperCheckpointError

if TYPE_CHECKING:
    from whisper.model import ModelDimensions

log = logging.getLogger(__name__)

#: Every released Whisper size uses 64-dimensional attention heads (tiny 384/6 ... large 1280/20).
WHISPER_HEAD_DIM = 64


# ======================================================================================
# CTranslate2 model.bin reader (no ctranslate2 import)
# ======================================================================================

_CT2_DTYPES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
# bfloat16 has no numpy dtype: its raw bits are read as uint16 and widened on conversion.
_CT2_NUMPY = {"float32": np.float32, "int8": np.int8, "int16": np.int16, "int32": np.int32,
              "float16": np.float16, "bfloat16": np.uint16}
# Binary versions < 4 stored an item size instead of a dtype code (CTranslate2's own guess).
_CT2_ITEM_SIZE_DTYPES = {4: "float32", 2: "int16", 1: "int8"}
CT2_BINARY_VERSIONS = range(1, 7)
CT2_WHISPER_REVISIONS = range(1, 4)


@dataclass
class CTranslate2Model:
    """The raw contents of a ``model.bin``: stored arrays are zero-copy views of a memory map."""

    path: Path
    binary_version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    dtypes: dict[str, str]
    aliases: dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> str:
        """Follow aliases (e.g. ``decoder/projection/weight`` -> ``decoder/embeddings/weight``)."""
        seen = {name}
        while name in self.aliases:
            name = self.aliases[name]
            if name in seen:
                raise CTranslate2FormatError(f"{self.path}: alias cycle through {name!r}")
            seen.add(name)
        return name

    def has(self, name: str) -> bool:
        return self.resolve(name) in self.variables

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._stored(name).shape)

    def scalar(self, name: str) -> int | float | None:
        """A stored flag or count (e.g. ``encoder/num_heads``), or None when absent."""
        if not self.has(name):
            return None
        dtype, first = self.dtypes[self.resolve(name)], self._stored(name).reshape(-1)[:1]
        return float(_widen(first, dtype)[0]) if dtype in ("float32", "float16", "bfloat16") else int(first[0])

    def float32(self, name: str) -> np.ndarray:
        """A float32 copy of ``name``: widened, or dequantised (``q / scale``) when a scale is stored."""
        target = self.resolve(name)
        values = _widen(self._stored(target), self.dtypes[target])
        scale_name = target + "_scale"
        if scale_name in self.variables:
            scale = _widen(self.variables[scale_name], self.dtypes[scale_name])
            values = values / scale.reshape(scale.shape + (1,) * (values.ndim - scale.ndim))
        elif self.dtypes[target] in ("int8", "int16") and values.ndim > 0:
            raise CTranslate2FormatError(f"{self.path}: {target!r} is {self.dtypes[target]} but has no "
                                         f"{scale_name!r} to dequantise it with")
        return values.astype(np.float32, copy=False)

    def _stored(self, name: str) -> np.ndarray:
        target = self.resolve(name)
        if target not in self.variables:
            raise CTranslate2FormatError(f"{self.path}: missing variable {name!r}")
        return self.variables[target]


def _widen(array: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np.float32)


class _ByteReader:
    """Bounds-checked little-endian reads that name the file and offset on failure."""

    def __init__(self, path: Path, buffer: Any):
        self.path, self.buffer, self.offset = path, buffer, 0
        self.size = len(buffer)

    def _need(self, count: int, what: str) -> int:
        start = self.offset
        if start + count > self.size:
            raise CTranslate2FormatError(f"{self.path}: truncated or corrupt at byte {start}: needs {count} "
                                         f"bytes for {what}, but the file ends at byte {self.size}")
        self.offset += count
        return start

    def unpack(self, fmt: str, what: str) -> int:
        start = self._need(struct.calcsize("<" + fmt), what)
        return struct.unpack_from("<" + fmt, self.buffer, start)[0]

    def string(self, what: str) -> str:
        length = self.unpack("H", f"the length of {what}")
        start = self._need(length, what)
        raw = bytes(self.buffer[start:start + length])
        if length == 0 or raw[-1:] != b"\0":
            raise CTranslate2FormatError(f"{self.path}: corrupt string for {what} at byte {start} "
                                         "(not NUL-terminated)")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise CTranslate2FormatError(f"{self.path}: corrupt string for {what} at byte {start}") from None

    def array(self, count: int, dtype: str, shape: tuple[int, ...], what: str) -> np.ndarray:
        start = self._need(count, what)
        return np.frombuffer(self.buffer, dtype=np.uint8, count=count, offset=start) \
            .view(_CT2_NUMPY[dtype]).reshape(shape)


def read_ctranslate2_model(path: str | os.PathLike) -> CTranslate2Model:
    """Parse a CTranslate2 ``model.bin`` (a folder or the file itself) into raw arrays."""
    file = Path(path)
    file = file / "model.bin" if file.is_dir() else file
    with file.open("rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise CTranslate2FormatError(f"{file}: truncated or corrupt at byte 0: the file is empty")
        buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    reader = _ByteReader(file, buffer)
    version = reader.unpack("I", "the binary version")
    if version not in CT2_BINARY_VERSIONS:
        raise CTranslate2FormatError(f"{file}: binary version {version} at byte 0 is not one this reader "
                                     f"knows ({CT2_BINARY_VERSIONS.start}-{CT2_BINARY_VERSIONS.stop - 1}); "
                                     "a newer CTranslate2 or not a model.bin")
    spec, revision = ("", 1) if version < 2 else (reader.string("the spec name"),
                                                  reader.unpack("I", "the spec revision"))
    variables, dtypes = {}, {}
    for index in range(reader.unpack("I", "the variable count")):
        name, array, dtype = _read_variable(reader, version, index)
        variables[name], dtypes[name] = array, dtype
    aliases = {}
    if version >= 3:
        for index in range(reader.unpack("I", "the alias count")):
            alias = reader.string(f"alias #{index}")
            aliases[alias] = reader.string(f"the target of alias {alias!r}")
    return CTranslate2Model(file, version, spec, revision, variables, dtypes, aliases)


def _read_variable(reader: _ByteReader, version: int, index: int) -> tuple[str, np.ndarray, str]:
    name = reader.string(f"the name of variable #{index}")
    rank = reader.unpack("B", f"the rank of {name!r}")
    shape = tuple(reader.unpack("I", f"dimension {axis} of {name!r}") for axis in range(rank))
    count = int(np.prod(shape, dtype=np.int64))
    if version >= 4:
        code_offset = reader.offset
        code = reader.unpack("B", f"the dtype of {name!r}")
        if code not in _CT2_DTYPES:
            known = ", ".join(f"{c} {n}" for c, n in _CT2_DTYPES.items())
            raise CTranslate2FormatError(f"{reader.path}: variable {name!r} has unknown dtype code {code} "
                                         f"at byte {code_offset} (known: {known})")
        dtype = _CT2_DTYPES[code]
        nbytes = reader.unpack("I", f"the byte size of {name!r}")
    else:
        item_size = reader.unpack("B", f"the item size of {name!r}")
        if item_size not in _CT2_ITEM_SIZE_DTYPES:
            raise CTranslate2FormatError(f"{reader.path}: variable {name!r} has unknown item size {item_size}")
        dtype = _CT2_ITEM_SIZE_DTYPES[item_size]
        nbytes = reader.unpack("I", f"the element count of {name!r}") * item_size
    expected = count * np.dtype(_CT2_NUMPY[dtype]).itemsize
    if nbytes != expected:
        raise CTranslate2FormatError(f"{reader.path}: variable {name!r} at byte {reader.offset} declares "
                                     f"{nbytes} bytes but {dtype}{list(shape)} needs {expected}")
    return name, reader.array(nbytes, dtype, shape, f"the data of {name!r}"), dtype


# ======================================================================================
# CTranslate2 -> openai-whisper
# ======================================================================================

# Scalars a standard Whisper conversion stores; anything else changes the computation.
_CT2_EXPECTED_FLAGS = {"decoder/activation": 3, "decoder/pre_norm": 1, "decoder/scale_embeddings": 0,
                       "decoder/alibi": 0, "decoder/start_from_zero_embedding": 0}


def _read_ctranslate2(folder: Path) -> _Checkpoint:
    model, config = _open_ctranslate2(folder)
    dims = _ctranslate2_dims(model, config)
    state = _ctranslate2_state(model, dims)
    return _Checkpoint(dims, state, config.get("alignment_heads"), _ctranslate2_dtype(model))


def _open_ctranslate2(path: Path) -> tuple[CTranslate2Model, dict[str, Any]]:
    folder = path.parent if path.is_file() else path
    model = read_ctranslate2_model(folder / "model.bin")
    if model.spec != "WhisperSpec":
        raise WhisperCheckpointError(f"{model.path}: a CTranslate2 {model.spec or 'Transformer'} model, "
                                     "not Whisper (spec 'WhisperSpec')")
    if model.revision not in CT2_WHISPER_REVISIONS:
        raise WhisperCheckpointError(f"{model.path}: WhisperSpec revision {model.revision} is newer than this "
                                     f"reader knows (<= {CT2_WHISPER_REVISIONS.stop - 1})")
    for name, expected in _CT2_EXPECTED_FLAGS.items():
        value = model.scalar(name)
        if value is not None and value != expected:
            raise WhisperCheckpointError(f"{model.path}: {name}={value} (standard Whisper: {expected}); "
                                         "openai-whisper cannot represent this model")
    config_file = folder / "config.json"
    return model, _read_json(config_file) if config_file.is_file() else {}


def _layer_count(model: CTranslate2Model, stack: str) -> int:
    indices = {int(m.group(1)) for name in model.variables if (m := re.match(rf"^{stack}/layer_(\d+)/", name))}
    if indices != set(range(len(indices))):
        raise CTranslate2FormatError(f"{model.path}: {stack} layers {sorted(indices)} are not 0..n-1")
    return len(indices)


def _head_count(model: CTranslate2Model, config: dict[str, Any], stack: str, width: int) -> int:
    """model.bin's ``<stack>/num_heads``; else config.json; else Whisper's 64-wide heads."""
    stored = model.scalar(f"{stack}/num_heads")
    if stored is not None:
        return int(stored)
    for key in (f"{stack}_attention_heads", "num_heads"):
        if key in config:
            return int(config[key])
    log.warning("%s: no %s/num_heads; assuming Whisper's 64-dimensional heads (%d heads)",
                model.path, stack, width // WHISPER_HEAD_DIM)
    return width // WHISPER_HEAD_DIM


def _ctranslate2_dims(model: CTranslate2Model, config: dict[str, Any]) -> ModelDimensions:
    from whisper.model import ModelDimensions

    audio_state, n_mels, _ = model.shape("encoder/conv1/weight")
    n_vocab, text_state = model.shape("decoder/embeddings/weight")
    if model.has("encoder/position_encodings/encodings"):
        audio_ctx = model.shape("encoder/position_encodings/encodings")[0]
    else:
        audio_ctx = 1500
        log.warning("%s: no encoder positional table; assuming Whisper's 1500 frames and its sinusoids",
                    model.path)
    return ModelDimensions(
        n_mels=n_mels, n_audio_ctx=audio_ctx, n_audio_state=audio_state,
        n_audio_head=_head_count(model, config, "encoder", audio_state),
        n_audio_layer=_layer_count(model, "encoder"), n_vocab=n_vocab,
        n_text_ctx=model.shape("decoder/position_encodings/encodings")[0], n_text_state=text_state,
        n_text_head=_head_count(model, config, "decoder", text_state),
        n_text_layer=_layer_count(model, "decoder"),
    )


def _ctranslate2_dtype(model: CTranslate2Model) -> str:
    totals: dict[str, int] = {}
    for name, array in model.variables.items():
        totals[model.dtypes[name]] = totals.get(model.dtypes[name], 0) + array.nbytes
    return max(totals, key=totals.get)


class _StateBuilder:
    """Collects openai-whisper tensors from CTranslate2 variables."""

    def __init__(self, model: CTranslate2Model):
        self.model = model
        self.state: dict[str, torch.Tensor] = {}

    def put(self, key: str, array: np.ndarray) -> None:
        self.state[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    def copy(self, key: str, name: str) -> None:
        self.put(key, self.model.float32(name))

    def layer_norm(self, key: str, scope: str) -> None:
        self.copy(f"{key}.weight", f"{scope}/gamma")
        self.copy(f"{key}.bias", f"{scope}/beta")

    def linear(self, key: str, scope: str) -> None:
        self.copy(f"{key}.weight", f"{scope}/weight")
        self.copy(f"{key}.bias", f"{scope}/bias")

    def fused(self, keys: tuple[str, ...], scope: str) -> None:
        """Split a fused projection by rows; the key's stored bias is dropped (see below)."""
        weights = np.split(self.model.float32(f"{scope}/weight"), len(keys), axis=0)
        biases = np.split(self.model.float32(f"{scope}/bias"), len(keys), axis=0)
        for key, weight, bias in zip(keys, weights, biases, strict=True):
            self.put(f"{key}.weight", weight)
            if not key.endswith(".key"):
                self.put(f"{key}.bias", bias)
            elif np.any(bias):
                log.debug("%s: dropping a nonzero key bias (softmax is shift-invariant)", scope)

    def self_attention(self, key: str, scope: str) -> None:
        """q/k/v are the row blocks [0:D], [D:2D], [2D:3D] of ``linear_0``."""
        attn, source = f"{key}.attn", f"{scope}/self_attention"
        self.layer_norm(f"{key}.attn_ln", f"{source}/layer_norm")
        self.fused((f"{attn}.query", f"{attn}.key", f"{attn}.value"), f"{source}/linear_0")
        self.linear(f"{attn}.out", f"{source}/linear_1")

    def cross_attention(self, key: str, scope: str) -> None:
        """The query is ``linear_0``; k/v are the row blocks of ``linear_1``; ``linear_2`` is out."""
        attn, source = f"{key}.cross_attn", f"{scope}/attention"
        self.layer_norm(f"{key}.cross_attn_ln", f"{source}/layer_norm")
        self.linear(f"{attn}.query", f"{source}/linear_0")
        self.fused((f"{attn}.key", f"{attn}.value"), f"{source}/linear_1")
        self.linear(f"{attn}.out", f"{source}/linear_2")

    def ffn(self, key: str, scope: str) -> None:
        self.layer_norm(f"{key}.mlp_ln", f"{scope}/ffn/layer_norm")
        self.linear(f"{key}.mlp.0", f"{scope}/ffn/linear_0")
        self.linear(f"{key}.mlp.2", f"{scope}/ffn/linear_1")


def _ctranslate2_state(model: CTranslate2Model, dims: ModelDimensions) -> dict[str, torch.Tensor]:
    """Rename CTranslate2's variables to openai-whisper's, splitting fused attention projections.

    The stored (zero) key bias is dropped (KEY_BIAS_NOTE).
    """
    from whisper.model import sinusoids

    build = _StateBuilder(model)
    for conv in ("conv1", "conv2"):
        build.linear(f"encoder.{conv}", f"encoder/{conv}")
    if model.has("encoder/position_encodings/encodings"):
        build.copy("encoder.positional_embedding", "encoder/position_encodings/encodings")
    else:
        build.put("encoder.positional_embedding", sinusoids(dims.n_audio_ctx, dims.n_audio_state).numpy())
    for index in range(dims.n_audio_layer):
        key, scope = f"encoder.blocks.{index}", f"encoder/layer_{index}"
        build.self_attention(key, scope)
        build.ffn(key, scope)
    build.layer_norm("encoder.ln_post", "encoder/layer_norm")

    build.copy("decoder.token_embedding.weight", "decoder/embeddings/weight")
    build.copy("decoder.positional_embedding", "decoder/position_encodings/encodings")
    for index in range(dims.n_text_layer):
        key, scope = f"decoder.blocks.{index}", f"decoder/layer_{index}"
        build.self_attention(key, scope)
        build.cross_attention(key, scope)
        build.ffn(key, scope)
    build.layer_norm("decoder.ln", "decoder/layer_norm")
    _check_ctranslate2_projection(model, build.state["decoder.token_embedding.weight"])
    return build.state


def _check_ctranslate2_projection(model: CTranslate2Model, embedding: torch.Tensor) -> None:
    name = "decoder/projection/weight"
    if not model.has(name) or model.resolve(name) == model.resolve("decoder/embeddings/weight"):
        return
    _check_tied_output(model.path, torch.from_numpy(model.float32(name)), embedding)
    if model.has("decoder/projection/bias") and np.any(model.float32("decoder/projection/bias")):
        raise WhisperCheckpointError(f"{model.path}: the output projection has a bias; openai-whisper has none")


def _describe_ctranslate2(folder: Path) -> tuple[ModelDimensions, str]:
    model, config = _open_ctranslate2(folder)
    return _ctranslate2_dims(model, config), _ctranslate2_dtype(model)

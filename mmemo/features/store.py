"""An on-disk, memory-mapped store of one frozen encoder's features.

Layout (one folder per encoder *fingerprint* and storage mode)::

    <cache>/<encoder name>/<store key>/
        meta.json                    encoder config + fingerprint, storage, dtype, dim
        shard-000001.npy             features of a batch of items, concatenated
        shard-000001.index.json      item ids, offsets and frame counts in that shard
        failures.jsonl               items that could not be encoded, with the reason

Crash safety: a shard's data file is written under a temporary name and
renamed, then its index is written the same way; a shard counts only once its
index exists. A process killed at any point (``kill -9``) therefore leaves
either a complete shard or debris that is ignored and removed, and a rerun
encodes exactly the items that are missing.

Items are keyed by an *item id*: for audio, a hash of the file's identity
(path, size, modification time) and of the segment and crop settings; for text,
a hash of the sentence. Changing any of them, or the encoder (weights, config,
layer, sample rate), never reuses stale features.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmemo.errors import InvalidInput, MissingInput

STORAGE_MODES = ("frames", "pooled")
#: Memory a store may spend remembering windowed features (beyond it they are recomputed per read).
WINDOW_MEMORY_BUDGET = 2 * 2**30
DTYPES = ("float32", "float16")
_SHARD_PREFIX = "shard-"


def store_key(fingerprint: str, storage: str, dtype: str, sample_rate: int) -> str:
    text = json.dumps({"fingerprint": fingerprint, "storage": storage, "dtype": dtype, "sample_rate": sample_rate},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def text_item_id(text: str) -> str:
    return hashlib.sha256(("text\0" + text).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Entry:
    shard: str
    offset: int
    length: int


class FeatureStore:
    """Read and append features of one encoder; see the module docstring for the layout."""

    def __init__(self, folder: str | os.PathLike, meta: dict | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        meta_path = self.folder / "meta.json"
        if meta_path.is_file():
            stored = json.loads(meta_path.read_text())
            if meta and stored.get("fingerprint") != meta.get("fingerprint"):
                raise InvalidInput(f"{meta_path} belongs to encoder fingerprint {stored.get('fingerprint')}, "
                                 f"not {meta.get('fingerprint')}")
            self.meta = stored
        elif meta is not None:
            self.meta = dict(meta)
            _atomic_write_text(meta_path, json.dumps(self.meta, indent=2, default=str))
        else:
            raise MissingInput(f"{self.folder} is not a feature store (no meta.json)")
        self.dtype = np.dtype(self.meta.get("dtype", "float32"))
        self._entries: dict[str, Entry] = {}
        self._shards: set[str] = set()
        self._arrays: dict[str, np.ndarray] = {}
        self._pooled: dict[str, np.ndarray] = {}
        self._windows: dict[tuple[str, int], np.ndarray] = {}
        self._window_bytes = 0
        self._next_shard = 1
        self._load_index()

    # -- reading -----------------------------------------------------------------------------
    def _load_index(self) -> None:
        self.refresh()
        for debris in self.folder.glob("*.tmp*"):  # left by a killed writer
            debris.unlink(missing_ok=True)
        for data_path in self.folder.glob(f"{_SHARD_PREFIX}*.npy"):
            if not (self.folder / f"{data_path.stem}.index.json").is_file():
                data_path.unlink(missing_ok=True)  # data whose index was never written

    def refresh(self) -> None:
        """Read the index of every complete shard not read yet (e.g. written by another process)."""
        for index_path in sorted(self.folder.glob(f"{_SHARD_PREFIX}*.index.json")):
            shard = index_path.name[: -len(".index.json")]
            data_path = self.folder / f"{shard}.npy"
            if shard in self._shards or not data_path.is_file():
                continue  # known, or an index without data (cannot come from our writer)
            index = json.loads(index_path.read_text())
            for item, offset, length in zip(index["items"], index["offsets"], index["lengths"]):
                self._entries[item] = Entry(shard, offset, length)
            self._shards.add(shard)
            self._next_shard = max(self._next_shard, int(shard[len(_SHARD_PREFIX):]) + 1)

    def __contains__(self, item: str) -> bool:
        return item in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def missing(self, items: Iterable[str]) -> list[str]:
        return [item for item in dict.fromkeys(items) if item not in self._entries]

    def get(self, item: str) -> np.ndarray:
        """The item's features: [T, D] (frames), [1, D] (pooled), or with a leading layer axis."""
        entry = self._entries[item]
        array = self._arrays.get(entry.shard)
        if array is None:
            array = np.load(self.folder / f"{entry.shard}.npy", mmap_mode="r")
            self._arrays[entry.shard] = array
        return np.asarray(array[entry.offset: entry.offset + entry.length])

    def get_moments(self, item: str) -> np.ndarray:
        """The item's mean and mean of squares over frames, [2, ...] (float32, computed in float64);
        all a head that pools first needs (mean, or mean and std). Remembered: they are small.
        An item without any frame (a clip in which no face was found) has none: [0, ...], which
        collation turns into a masked row, i.e. a missing modality."""
        pooled = self._pooled.get(item)
        if pooled is None:
            frames = self.get(item).astype(np.float64)
            if frames.shape[0] == 0:
                return frames.astype(np.float32)
            pooled = np.stack([frames.mean(0), (frames ** 2).mean(0)]).astype(np.float32)
            self._pooled[item] = pooled
        return pooled

    def get_windows(self, item: str, stride: int) -> np.ndarray:
        """The item's frames averaged over consecutive windows of ``stride`` frames, [ceil(T/stride), ...].

        Windows start at frame 0 and the last one averages what is left, exactly
        as :func:`mmemo.fusion.layers.downsample` does on a padded batch; heads
        that attend over downsampled frames then never see full-rate frames.
        Remembered up to :data:`WINDOW_MEMORY_BUDGET` bytes per store.
        """
        if stride <= 1:
            return self.get(item)
        windows = self._windows.get((item, stride))
        if windows is None:
            frames = self.get(item).astype(np.float32)
            full = frames.shape[0] - frames.shape[0] % stride
            parts = [frames[:full].reshape(full // stride, stride, *frames.shape[1:]).mean(1)]
            if full < frames.shape[0]:
                parts.append(frames[full:].mean(0, keepdims=True))
            windows = np.concatenate(parts, 0)
            if self._window_bytes + windows.nbytes <= WINDOW_MEMORY_BUDGET:
                self._windows[(item, stride)] = windows
                self._window_bytes += windows.nbytes
        return windows

    # -- writing -----------------------------------------------------------------------------
    def write_shard(self, items: list[str], arrays: list[np.ndarray]) -> None:
        """Append one shard atomically. ``arrays[i]``: [T_i, ...] for ``items[i]``."""
        if not items:
            return
        lengths = [int(a.shape[0]) for a in arrays]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist()
        data = np.concatenate([np.asarray(a, dtype=self.dtype) for a in arrays], axis=0)
        shard = f"{_SHARD_PREFIX}{self._next_shard:06d}"
        self._next_shard += 1
        tmp = self.folder / f"{shard}.tmp{uuid.uuid4().hex[:8]}.npy"
        np.save(tmp, data)
        os.replace(tmp, self.folder / f"{shard}.npy")
        _atomic_write_text(self.folder / f"{shard}.index.json",
                           json.dumps({"items": items, "offsets": offsets, "lengths": lengths}))
        for item, offset, length in zip(items, offsets, lengths):
            self._entries[item] = Entry(shard, offset, length)
        self._shards.add(shard)

    def record_failures(self, failures: list[dict]) -> None:
        if failures:
            with (self.folder / "failures.jsonl").open("a", encoding="utf-8") as handle:
                for failure in failures:
                    handle.write(json.dumps(failure) + "\n")

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp{uuid.uuid4().hex[:8]}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def list_stores(root: str | os.PathLike) -> list[dict]:
    """Every store under a cache root, for ``mmemo extract --info``."""
    rows = []
    for meta_path in sorted(Path(root).glob("*/*/meta.json")):
        store = FeatureStore(meta_path.parent)
        failures = meta_path.parent / "failures.jsonl"
        rows.append({
            "encoder": store.meta.get("encoder_name"), "fingerprint": store.meta.get("fingerprint"),
            "storage": store.meta.get("storage"), "dtype": store.meta.get("dtype"), "dim": store.meta.get("dim"),
            "items": len(store), "size_mb": round(store.size_bytes() / 2**20, 1),
            "failures": sum(1 for _ in failures.open()) if failures.is_file() else 0,
            "folder": str(meta_path.parent),
        })
    return rows


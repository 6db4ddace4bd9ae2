"""Encoding what a store is missing, in length-sorted batches, with progress and failure reports.

Used automatically before training when an encoder is frozen (``features.cache=auto``)
and by ``mmemo extract``. Features are written shard by shard, so an interrupted
extraction resumes where it stopped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mmemo.bounded import BoundedCache
from mmemo.encoders.base import Encoder, SpeechEncoder, VideoEncoder
from mmemo.errors import InvalidInput, MediaError
from mmemo.features.store import DTYPES, STORAGE_MODES, FeatureStore, store_key

log = logging.getLogger(__name__)


@dataclass
class FeatureSource:
    """A frozen encoder and the store holding its features (what the data module reads)."""

    modality: str
    encoder: Encoder
    store: FeatureStore

    @property
    def frame_rate(self) -> float | None:
        return getattr(self.encoder, "frame_rate", None) if self.store.meta["storage"] == "frames" else None


@dataclass
class Job:
    """One item to encode: its id, an ordering length, and a way to produce the encoder input."""

    item: str
    length: float
    load: Callable[[], object]
    key: str = ""
    where: str = ""


#: Stores opened in this process, so the jobs of a Hydra multirun (one process) share the
#: pooled and windowed features each store remembers instead of recomputing them per job.
_OPEN_STORES: BoundedCache[FeatureStore] = BoundedCache(8)


def open_store(encoder: Encoder, cache_dir: str | Path, storage: str = "frames",
               dtype: str = "float32") -> FeatureStore:
    """The store for this encoder's exact weights and config (created on first use)."""
    if storage not in STORAGE_MODES:
        raise InvalidInput(f"features.storage must be one of {STORAGE_MODES}, got {storage!r}")
    if dtype not in DTYPES:
        raise InvalidInput(f"features.dtype must be one of {DTYPES}, got {dtype!r}")
    if not encoder.frozen:
        raise InvalidInput(f"only frozen encoders can be cached; {encoder.name} is trainable={encoder.trainable}")
    fingerprint = encoder.fingerprint()
    rate = getattr(encoder, "sample_rate", 0) if isinstance(encoder, SpeechEncoder) else 0
    key = store_key(fingerprint, storage, dtype, rate)
    folder = Path(cache_dir) / re.sub(r"[^A-Za-z0-9._-]+", "_", encoder.name) / key
    meta = {"encoder_name": encoder.name, "fingerprint": fingerprint, "config": encoder.config(),
            "storage": storage, "dtype": dtype, "dim": encoder.dim, "sample_rate": rate,
            "layers": getattr(encoder, "mixer", None) is not None}
    shared = _OPEN_STORES.get(folder.resolve())
    if shared is not None and (folder / "meta.json").is_file():
        shared.refresh()  # pick up shards another process wrote since
        return shared
    return _OPEN_STORES.put(folder.resolve(), FeatureStore(folder, meta))


def _outputs(encoder: Encoder, output, storage: str) -> list[np.ndarray]:
    """Per-item arrays to store: [T,D] / [1,D], or [T,L,D] / [1,L,D] when all layers are kept."""
    stacked = torch.stack(output.layers, 2) if getattr(encoder, "mixer", None) is not None else output.frames
    mask = output.mask
    arrays = []
    for row in range(stacked.shape[0]):
        valid = stacked[row][mask[row]].float()
        if storage == "pooled" and valid.shape[0]:  # an item with no valid frame (no face) stays empty
            valid = valid.mean(0, keepdim=True)
        arrays.append(valid.cpu().numpy())
    return arrays


def _encode_speech(encoder: Encoder, waves: Sequence[np.ndarray], device: torch.device):
    lengths = [len(w) for w in waves]
    wav = torch.zeros(len(waves), max(lengths), device=device)
    mask = torch.zeros_like(wav, dtype=torch.bool)
    for row, wave in enumerate(waves):
        wav[row, : lengths[row]] = torch.from_numpy(np.asarray(wave, dtype=np.float32))
        mask[row, : lengths[row]] = True
    return encoder(wav, mask)


def _encode_video(encoder: Encoder, tracks: Sequence, device: torch.device):
    from mmemo.data.datasets import pad_first_axis

    faces, _ = pad_first_axis([t.crops for t in tracks])
    mask, _ = pad_first_axis([t.mask for t in tracks])
    landmarks, _ = pad_first_axis([t.landmarks for t in tracks])
    return encoder(faces.to(device), mask.to(device), landmarks.to(device))


def extract(source: FeatureSource, jobs: Sequence[Job], *, batch_size: int = 16, shard_items: int = 256,
            device: str | torch.device = "cpu", desc: str | None = None) -> list[dict]:
    """Encode the jobs the store lacks; return the failures (each a dict with key, file, reason).

    Batches are cut from *all* jobs sorted by length, and a batch runs if any of
    its items is missing. A resumed extraction therefore computes every item in
    the same batch as an uninterrupted one would, and its features are
    bit-identical. A failing item (bad audio) is recorded and skipped; the rest
    still run.
    """
    store, encoder = source.store, source.encoder
    unique = sorted({j.item: j for j in jobs}.values(), key=lambda job: (job.length, job.item))
    batches = [unique[i: i + batch_size] for i in range(0, len(unique), batch_size)]
    batches = [batch for batch in batches if any(job.item not in store for job in batch)]
    if not batches:
        return []
    device = torch.device(device)
    encoder.to(device).eval()
    failures: list[dict] = []
    pending_items: list[str] = []
    pending_arrays: list[np.ndarray] = []
    storage = store.meta["storage"]
    progress = tqdm(total=sum(len(b) for b in batches), desc=desc or f"extracting {encoder.name} features",
                    unit="item")
    with torch.inference_mode():
        for batch in batches:
            inputs, kept = [], []
            for job in batch:
                try:
                    inputs.append(job.load())
                    kept.append(job)
                except MediaError as error:
                    failures.append({"key": job.key or job.item, "file": job.where, "reason": error.reason})
            if kept:
                if isinstance(encoder, SpeechEncoder):
                    output = _encode_speech(encoder, inputs, device)
                elif isinstance(encoder, VideoEncoder):
                    output = _encode_video(encoder, inputs, device)
                else:
                    output = encoder(list(inputs))
                for job, array in zip(kept, _outputs(encoder, output, storage)):
                    if job.item not in store:
                        pending_items.append(job.item)
                        pending_arrays.append(array)
            if len(pending_items) >= shard_items:
                store.write_shard(pending_items, pending_arrays)
                pending_items, pending_arrays = [], []
            progress.update(len(batch))
    store.write_shard(pending_items, pending_arrays)
    progress.close()
    store.record_failures(failures)
    log.info("%s: %d items cached, %d failed, in %s", encoder.name, len(store), len(failures), store.folder)
    return failures


def render_store_table(rows: list[dict]) -> str:
    if not rows:
        return "no feature stores found"
    header = ("encoder", "fingerprint", "storage", "dtype", "dim", "items", "failures", "size_mb", "folder")
    lines = ["\t".join(header)]
    lines += ["\t".join(str(row[h]) for h in header) for row in rows]
    total = sum(row["size_mb"] for row in rows)
    return "\n".join(lines) + f"\n{len(rows)} store(s), {total:.1f} MB"

"""Which files a run used, as hashes a table can be traced to, and the list itself.

``manifest_sha256``: the split files' bytes and the label map; ``audio_sha256``: every
utterance's key, split, segment and its audio file's content digest (the digests the
duplicate-audio check computed, so this costs nothing more).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mmemo.data.folds import Splits
from mmemo.data.labels import LabelMap
from mmemo.data.leakage import audio_digest
from mmemo.data.manifest import Utterance


def fingerprint(splits: Splits, label_map: LabelMap) -> str:
    """A short hash of the fold files, the label map and the validation origin (metrics.json)."""
    digest = hashlib.sha256()
    for split in sorted(splits.files):
        digest.update(split.encode())
        digest.update(splits.files[split].read_bytes())
    digest.update(repr(label_map.to_dict()).encode())
    digest.update(splits.valid_origin.encode())
    return digest.hexdigest()[:16]


def _rows(files: list[tuple[str, Utterance]]):
    for split, u in sorted(files, key=lambda row: (row[0], row[1].key)):
        yield split, u, audio_digest(u.audio_path) if u.audio_path is not None else ""


def summary(splits: Splits, label_map: LabelMap, files: list[tuple[str, Utterance]], audio_root, use_audio: bool
            ) -> dict:
    manifest = hashlib.sha256()
    for split in sorted(splits.files):
        manifest.update(split.encode() + b"\0" + splits.files[split].read_bytes())
    manifest.update(repr(label_map.to_dict()).encode())
    audio = hashlib.sha256()
    for split, u, digest in _rows(files):
        audio.update(f"{split}\t{u.key}\t{u.start}\t{u.end}\t{digest}\n".encode())
    return {"manifest_sha256": manifest.hexdigest(), "audio_sha256": audio.hexdigest() if use_audio else None,
            "utterances": len(files), "files": {s: str(f) for s, f in sorted(splits.files.items())},
            "audio_root": str(Path(audio_root).resolve())}


def write_file_list(files: list[tuple[str, Utterance]], folder: str | Path) -> Path:
    path = Path(folder) / "data_files.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("split\tkey\taudio\tstart\tend\tsha1\n")
        for split, u, digest in _rows(files):
            handle.write(f"{split}\t{u.key}\t{u.audio_path or ''}\t{'' if u.start is None else u.start}\t"
                         f"{'' if u.end is None else u.end}\t{digest}\n")
    return path

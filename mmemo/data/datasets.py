"""One split as a torch Dataset of ``{key, speaker, text, label[, dimensions][, distribution][, audio][, faces]}``
items, and their collation.

Audio comes from memory (decoded once by the data module's setup) or is decoded on access.
Extra per-item arrays (cached encoder features, ``<modality>_features``) are added by
wrappers such as :class:`mmemo.features.cached.FeatureDataset`; :func:`collate` pads any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from mmemo.data.manifest import Utterance


@dataclass
class Example:
    utterance: Utterance
    label: int
    wave: np.ndarray | None = None  # decoded audio, kept when it fits the memory budget
    seconds: float = 0.0  # the clip's length as used (orders length-bucketed batches)
    dimensions: list[float] | None = None  # normalised to [0, 1]; NaN where the line has no value
    distribution: list[float] | None = None  # annotators' distribution over the classes (soft labels)


class EmotionDataset(Dataset):
    """Examples of one split; ``load_audio`` (when given) decodes a clip kept out of memory."""

    def __init__(self, examples: list[Example], *, load_audio: Callable[[Utterance], np.ndarray] | None = None,
                 with_audio: bool = True, load_faces: Callable[[Utterance], object] | None = None):
        self.examples = examples
        self._load = load_audio
        self.with_audio = with_audio
        self._load_faces = load_faces  # a clip's FaceTrack (mmemo.video), when the model reads video

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        example = self.examples[index]
        item = {
            "key": example.utterance.key,
            "speaker": example.utterance.speaker or "",
            "text": example.utterance.text or "",
            "label": example.label,
        }
        if example.dimensions is not None:
            item["dimensions"] = example.dimensions
        if example.distribution is not None:
            item["distribution"] = example.distribution
        if self.with_audio:
            item["audio"] = example.wave if example.wave is not None else self._load(example.utterance)
        if self._load_faces is not None:
            track = self._load_faces(example.utterance)
            item["faces"], item["face_mask"], item["landmarks"] = track.crops, track.mask, track.landmarks
        return item


def pad_first_axis(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack [T_i, ...] arrays into [B, T_max, ...] with a [B, T_max] validity mask (filled in numpy: one copy).

    Floats become float32; uint8 (face crops) and bool stay as they are. T_max is at least 1, so
    a batch whose items are all empty (no face in any clip) is one masked step, not zero.
    """
    lengths = np.array([a.shape[0] for a in arrays])
    dtype = arrays[0].dtype if arrays[0].dtype in (np.uint8, np.bool_) else np.float32
    out = np.zeros((len(arrays), max(int(lengths.max()), 1), *arrays[0].shape[1:]), dtype=dtype)
    for row, array in enumerate(arrays):
        out[row, : lengths[row]] = array
    mask = np.arange(out.shape[1])[None] < lengths[:, None]
    return torch.from_numpy(out), torch.from_numpy(mask)


def collate(items: list[dict]) -> dict:
    """Pad audio (and any ``*_features``) to the longest item and build masks; text stays raw strings.

    Flags an item carries about its features (``*_features_stride``, ``*_features_moments``) are
    copied to the batch once.
    """
    batch = {
        "key": [item["key"] for item in items],
        "speaker": [item["speaker"] for item in items],
        "text": [item["text"] for item in items],
        "label": torch.tensor([item["label"] for item in items], dtype=torch.long),
    }
    if "dimensions" in items[0]:
        values = torch.tensor([item["dimensions"] for item in items], dtype=torch.float32)
        batch["dimensions_mask"] = ~torch.isnan(values)
        batch["dimensions"] = torch.nan_to_num(values, nan=0.0)
    if "distribution" in items[0]:
        batch["distribution"] = torch.tensor([item["distribution"] for item in items], dtype=torch.float32)
    if "audio" in items[0]:
        batch["audio"], batch["audio_mask"] = pad_first_axis([item["audio"] for item in items])
    if "faces" in items[0]:
        batch["faces"], _ = pad_first_axis([item["faces"] for item in items])
        batch["face_mask"], _ = pad_first_axis([item["face_mask"] for item in items])
        batch["landmarks"], _ = pad_first_axis([item["landmarks"] for item in items])
    for name in [k for k in items[0] if k.endswith("_features")]:
        batch[name], batch[f"{name}_mask"] = pad_first_axis([item[name] for item in items])
        for flag in ("stride", "moments"):
            if f"{name}_{flag}" in items[0]:
                batch[f"{name}_{flag}"] = items[0][f"{name}_{flag}"]
    return batch

"""Serving frozen encoders from their feature stores: a wrapper around a data module's datasets.

With ``features.cache=auto`` every frozen encoder encodes each utterance once into its
store (:mod:`mmemo.features.store`); training then reads features instead of audio. The data
module knows nothing of this: :class:`FeatureCache` asks it for clips
(:meth:`~mmemo.data.datamodule.EmotionDataModule.load_wave`), encodes what the stores lack,
hands the clips an encoder could not use back to it (its bad-audio policy applies), and wraps
each split's dataset in a :class:`FeatureDataset` that adds ``<modality>_features`` to items.

How features are served depends on the head (:class:`Serving`): frames; each utterance's
moments (mean and mean of squares) for heads that pool first; or frames already averaged in
windows for heads that downsample first (cross-attention's ``frame_stride``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset

from mmemo.data.audio import AudioError
from mmemo.encoders.base import Encoder
from mmemo.errors import InvalidInput, MediaError
from mmemo.features.extract import FeatureSource, Job, extract, open_store
from mmemo.features.store import text_item_id
from mmemo.video.decode import VideoError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving:
    """How a model reads cached features: ``pooled`` (moments per utterance) or frames, optionally
    averaged in windows of ``frame_stride[modality]`` encoder frames."""

    pooled: bool = False
    frame_stride: dict[str, int] = field(default_factory=dict)


class FeatureDataset(Dataset):
    """A split's dataset plus its cached features (``.examples`` is the wrapped dataset's)."""

    def __init__(self, base, sources: dict[str, FeatureSource], items: dict[str, list[str]], serving: Serving):
        self.base = base
        self.sources = sources
        self.items = items  # modality -> item id per example, in the examples' order
        self.serving = serving
        self.stride = {m: int(s) for m, s in serving.frame_stride.items() if m in sources and int(s) > 1}

    @property
    def examples(self):
        return self.base.examples

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        item = self.base[index]
        for modality, source in self.sources.items():
            item_id = self.items[modality][index]
            if self.serving.pooled:
                item[f"{modality}_features"] = source.store.get_moments(item_id)
                item[f"{modality}_features_moments"] = True
            elif modality in self.stride:
                item[f"{modality}_features"] = source.store.get_windows(item_id, self.stride[modality])
                item[f"{modality}_features_stride"] = self.stride[modality]
            else:
                item[f"{modality}_features"] = source.store.get(item_id)
        return item


class FeatureCache:
    """The feature stores of a run's frozen encoders, and how the model reads them."""

    def __init__(self, encoders: dict[str, Encoder], options: dict, serving: Serving):
        if options.get("cache") not in ("auto", "off"):
            raise InvalidInput(f"features.cache must be 'auto' or 'off', got {options.get('cache')!r}")
        device = options["device"]
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.batch_size = int(options["batch_size"])
        self.serving = serving
        self.sources = {} if options["cache"] == "off" else {
            m: FeatureSource(m, e, open_store(e, options["dir"], options["storage"], options["dtype"]))
            for m, e in encoders.items() if e.frozen}
        for modality, source in self.sources.items():
            log.info("%s features of %s are cached in %s", modality, source.encoder.name, source.store.folder)

    def attach(self, datamodule) -> None:
        """Encode what the stores lack for every split, drop unusable clips, wrap the datasets.

        Extraction finishes (and is saved) before bad clips are acted on, so an error leaves
        every good clip's features cached for the next run.
        """
        if not self.sources:
            return
        everything = [e for dataset in datamodule.datasets.values() for e in dataset.examples]
        items: dict[str, dict[str, str]] = {}  # modality -> key -> item id
        failed: dict[str, MediaError] = {}
        for modality, source in self.sources.items():
            jobs, ids = [], {}
            for example in everything:
                u = example.utterance
                if modality == "speech":
                    ids[u.key] = datamodule.clip_identity(u)
                    jobs.append(Job(ids[u.key], u.length or u.audio_path.stat().st_size,
                                    lambda u=u: datamodule.load_wave(u), key=u.key, where=str(u.audio_path)))
                elif modality == "video":
                    ids[u.key] = datamodule.video_identity(u)
                    jobs.append(Job(ids[u.key], u.length or 0.0, lambda u=u: datamodule.load_faces(u), key=u.key,
                                    where=str(u.video_path or "")))
                else:
                    ids[u.key] = text_item_id(u.text or "")
                    jobs.append(Job(ids[u.key], len(u.text or ""), lambda text=u.text or "": text, key=u.key))
            items[modality] = ids
            error = VideoError if modality == "video" else AudioError
            for failure in extract(source, jobs, batch_size=self.batch_size, device=self.device,
                                   desc=f"caching {source.encoder.name} features"):
                failed.setdefault(failure["key"], error(failure["file"], failure["reason"], failure["key"]))
        datamodule.exclude(failed)
        speech = self.sources.get("speech")
        if speech is not None:  # the clip length that orders length-bucketed batches
            for example in (e for dataset in datamodule.datasets.values() for e in dataset.examples):
                frames = speech.store.get(items["speech"][example.utterance.key]).shape[0]
                example.seconds = frames / speech.frame_rate if speech.frame_rate else (example.utterance.length or 0)
        datamodule.map_datasets(lambda split, dataset: FeatureDataset(
            dataset, self.sources, {m: [ids[e.utterance.key] for e in dataset.examples] for m, ids in items.items()},
            self.serving))

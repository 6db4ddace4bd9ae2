"""Fill the feature cache of every frozen encoder for the configured data fold (``mmemo extract``).

The same data module, encoders and stores a training run would use, so the run that follows
reads every feature from the cache instead of computing it.
"""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from mmemo.encoders.build import build_encoder
from mmemo.errors import InvalidInput
from mmemo.features.cached import FeatureCache, Serving
from mmemo.recipes.common import container, selected_specs

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> list[dict]:
    """Encode what the stores lack; return one row per store (modality, encoder, items, size, folder)."""
    with open_dict(cfg):
        cfg.features.cache = "auto"
    specs = selected_specs(cfg)
    frozen = {m: encoder for m, spec in specs.items() if spec
              for encoder in [build_encoder(spec)] if encoder.frozen}
    if not frozen:
        raise InvalidInput("no frozen encoder in this config: only frozen encoders' features are cached "
                           "(set model.speech.trainable=frozen / model.text.trainable=frozen)")
    datamodule = instantiate(cfg.data, use_audio="speech" in frozen, use_text="text" in frozen)
    datamodule.setup("fit")
    cache = FeatureCache(frozen, container(cfg.features), Serving())
    cache.attach(datamodule)
    rows = []
    for modality, source in cache.sources.items():
        rows.append({"modality": modality, "encoder": source.encoder.name, "items": len(source.store),
                     "size_mb": round(source.store.size_bytes() / 2**20, 1), "folder": str(source.store.folder),
                     "skipped": len(datamodule.skipped)})
        print(f"{modality}: {source.encoder.name} -> {len(source.store)} items, "
              f"{rows[-1]['size_mb']} MB in {source.store.folder}")
    return rows

"""Encoders from their configs: ``model/speech`` and ``model/text`` are ``_target_`` + options.

A config without ``_target_`` (``model/text=none``) means no encoder. Fully frozen encoders are
shared by the jobs of an in-process sweep: loading and fingerprinting a pretrained model once
per process, not once per job, saves seconds per job; anything trainable is built fresh.
"""

from __future__ import annotations

import json

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mmemo.bounded import BoundedCache
from mmemo.encoders.base import Encoder

#: A sweep uses a few encoders; more would hoard memory.
_SHARED: BoundedCache[Encoder] = BoundedCache(4)


def encoder_spec(node) -> dict | None:
    """The encoder's config as a plain dict, or None when it names no encoder (``none``)."""
    if node is None:
        return None
    spec = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    return spec if spec and spec.get("_target_") else None


def build_encoder(spec: dict) -> Encoder:
    """Instantiate ``spec`` (a fully frozen encoder is reused from earlier jobs of this process)."""
    key = json.dumps(spec, sort_keys=True, default=str)
    shared = _SHARED.get(key)
    if shared is not None:
        return shared
    encoder = instantiate(spec, _convert_="all")
    if not isinstance(encoder, Encoder):
        raise TypeError(f"{spec.get('_target_')} built a {type(encoder).__name__}, not an mmemo Encoder")
    if encoder.fully_frozen:
        _SHARED.put(key, encoder)
    return encoder

"""The one decoding pass over a fold's clips before training: bad clips found now, waves kept if they fit.

A corrupt or silent clip fails here, listed with its split, key, file and reason, instead of
crashing an epoch hours later; clips that fit ``audio_memory_bytes`` stay decoded in RAM so
training does not decode them again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from tqdm.auto import tqdm

from mmemo.data.audio import AudioError

log = logging.getLogger(__name__)


def scan_audio(examples: dict[str, list], load_clip: Callable, budget: int, skipped: list, *,
               max_seconds: float | None = None, crop: str = "start") -> tuple[dict[str, list], list[AudioError]]:
    """Decode every example's clip with ``load_clip``; return the usable examples per split and the errors.

    Each failure is appended to ``skipped`` as ``(split, key, file, reason)``; ``example.seconds`` is set,
    and ``example.wave`` too while the memory budget (bytes) lasts.
    """
    total = sum(len(v) for v in examples.values())
    stats: Counter = Counter()
    bad: list[AudioError] = []
    kept: dict[str, list] = {}
    progress = tqdm(total=total, desc="checking audio", unit="clip", leave=False)
    for split, split_examples in examples.items():
        kept[split] = []
        for example in split_examples:
            u = example.utterance
            progress.update()
            try:
                clip = load_clip(u)
            except AudioError as error:
                bad.append(error)
                skipped.append((split, u.key, str(u.audio_path), error.reason))
                continue
            stats["cropped"] += clip.cropped
            stats["resampled"] += clip.source_rate != 16_000
            stats["downmixed"] += clip.source_channels > 1
            example.seconds = clip.seconds
            if budget >= clip.wave.nbytes:
                example.wave = clip.wave
                budget -= clip.wave.nbytes
            kept[split].append(example)
    progress.close()
    if stats["cropped"]:
        log.info("cropped %d clip(s) longer than data.max_seconds=%s (policy: %s)", stats["cropped"], max_seconds,
                 crop)
    if stats["resampled"] or stats["downmixed"]:
        log.info("resampled %d clip(s) to 16 kHz and downmixed %d multi-channel clip(s)",
                 stats["resampled"], stats["downmixed"])
    return kept, bad

"""Length-sorted batching: clips of similar length share a padded batch.

Used wherever audio is encoded outside a training loop (feature extraction,
benchmarks, prediction), so little compute goes to padding.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmemo.errors import InvalidInput


def length_sorted_batches(lengths: Sequence[int], max_padded_samples: int,
                          max_items: int | None = None) -> list[list[int]]:
    """Indices grouped longest-first so that each padded batch holds at most ``max_padded_samples``.

    Similar lengths share a batch, so little compute goes to padding, and short clips come
    in larger batches than long ones (a batch always holds at least one clip, and at most
    ``max_items`` when given).
    """
    if max_items is not None and max_items < 1:
        raise InvalidInput(f"max_items must be at least 1, got {max_items}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for index in order:
        if (groups and (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= max_padded_samples
                and (max_items is None or len(groups[-1]) < max_items)):
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups

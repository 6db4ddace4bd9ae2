"""Length-bucketed, resumable, DDP-aware batch order: a pure function of (seed, epoch)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence

from torch.utils.data import Sampler


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar-length clips, so little compute is spent on padding.

    Indices are sorted by length inside shuffled windows of ``bucket_batches``
    batches, then the batches themselves are shuffled; reseeded every epoch.

    The order is a pure function of (seed, epoch): with ``progress`` (the trainer's
    ``(epoch, batches done in it)``) a run resumed mid-epoch continues with the very
    batches the uninterrupted run would have seen. Under DDP each process takes every
    world-th batch; training pads with repeated batches (equal step counts), evaluation
    does not, so no sample is counted twice in the metrics.
    """

    def __init__(self, lengths: Sequence[float], batch_size: int, *, shuffle: bool, seed: int,
                 bucket_batches: int = 50, bucket: bool = True,
                 progress: Callable[[], tuple[int, int]] | None = None):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.bucket_batches = bucket_batches
        self.bucket = bucket
        self.progress = progress
        self.epoch = 0  # used when no trainer reports progress

    @staticmethod
    def _world() -> tuple[int, int]:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size(), dist.get_rank()
        return 1, 0

    def __len__(self) -> int:
        batches = (len(self.lengths) + self.batch_size - 1) // self.batch_size
        world, rank = self._world()
        if self.shuffle:
            return -(-batches // world)
        return len(range(rank, batches, world))

    def batches(self, epoch: int) -> list[list[int]]:
        """Every batch of ``epoch`` (all processes), in order."""
        order = list(range(len(self.lengths)))
        rng = random.Random(self.seed + epoch)
        if self.shuffle:
            rng.shuffle(order)
        ordered: list[int] = order
        if self.bucket:
            window = self.batch_size * self.bucket_batches
            ordered = []
            for begin in range(0, len(order), window):
                ordered += sorted(order[begin: begin + window], key=lambda i: self.lengths[i])
        batches = [ordered[i: i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        if self.shuffle and self.bucket:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        epoch, done = self.progress() if self.progress else (self.epoch, 0)
        self.epoch = epoch + 1
        batches = self.batches(epoch)
        world, rank = self._world()
        if world > 1:
            if self.shuffle and len(batches) % world:
                batches = batches + batches[: world - len(batches) % world]
            batches = batches[rank::world]
        yield from batches[done if self.shuffle else 0:]

"""The datamodule's batch order: a pure function of (seed, epoch), resumable mid-epoch, and sharded
across DDP processes without duplicating evaluation samples (fast variant of tests/integration/test_ddp.py)."""

from __future__ import annotations

import pytest
import torch.distributed as dist

from mmemo.data.sampling import LengthBucketSampler
from mmemo.training.module import gather_rows

LENGTHS = [0.5 + (i * 7919 % 97) / 10 for i in range(103)]


def sampler(shuffle, progress=None, world=None, monkeypatch=None, **kw):
    if world is not None:
        monkeypatch.setattr(LengthBucketSampler, "_world", staticmethod(lambda: world))
    return LengthBucketSampler(LENGTHS, 8, shuffle=shuffle, seed=5, bucket_batches=3, progress=progress, **kw)


def test_order_depends_only_on_seed_and_epoch_and_resumes_mid_epoch():
    epoch = {"value": (2, 0)}
    first = list(sampler(True, progress=lambda: epoch["value"]))
    assert first == list(sampler(True, progress=lambda: (2, 0))), "the same epoch gives the same batches"
    assert first != list(sampler(True, progress=lambda: (3, 0)))
    assert list(sampler(True, progress=lambda: (2, 5))) == first[5:], "a resumed epoch skips the done batches"
    assert sorted(i for b in first for i in b) == list(range(len(LENGTHS)))


def test_ddp_shards_cover_evaluation_once_and_training_evenly(monkeypatch):
    shards = [list(sampler(False, world=(3, rank), monkeypatch=monkeypatch)) for rank in range(3)]
    seen = [i for shard in shards for batch in shard for i in batch]
    assert sorted(seen) == list(range(len(LENGTHS))), "evaluation: every utterance once, none padded in"
    assert [len(s) for s in shards] == [len(sampler(False, world=(3, r), monkeypatch=monkeypatch)) for r in range(3)]
    train = [list(sampler(True, progress=lambda: (0, 0), world=(3, rank), monkeypatch=monkeypatch))
             for rank in range(3)]
    assert len({len(s) for s in train}) == 1, "training: equal step counts on every process"
    assert set(i for s in train for b in s for i in b) == set(range(len(LENGTHS)))


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_gather_rows_is_a_no_op_without_a_process_group():
    rows = [{"key": "a"}]
    assert gather_rows(rows) is rows

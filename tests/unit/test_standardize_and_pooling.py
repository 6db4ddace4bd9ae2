"""Heads standardise their inputs with running training statistics and pool mean + std."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmemo.encoders.base import EncoderOutput
from mmemo.evaluation.metrics import concordance
from mmemo.fusion import build_fusion
from mmemo.fusion.base import moments
from mmemo.fusion.layers import Standardize


def test_one_epoch_of_batches_gives_the_data_sets_statistics():
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(1000, 6, generator=generator) * torch.tensor([1.0, 10.0, 100.0, 0.1, 3.0, 1000.0]) + 5.0
    order = data[:, 2].argsort()  # sorted batches, like length buckets: no batch is a sample of the data
    layer = Standardize(6).train()
    for rows in order.split(32):
        layer(data[rows], torch.ones(len(rows), dtype=torch.bool))
    torch.testing.assert_close(layer.running_mean, data.mean(0), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(layer.running_var, data.var(0, unbiased=False), rtol=1e-3, atol=1e-3)
    scaled = layer.eval()(data, torch.ones(1000, dtype=torch.bool))
    torch.testing.assert_close(scaled.mean(0), torch.zeros(6), atol=1e-3, rtol=0)
    torch.testing.assert_close(scaled.std(0, unbiased=False), torch.ones(6), atol=1e-3, rtol=0)


def test_a_batch_is_never_normalised_by_its_own_statistics():
    layer = Standardize(2).train()
    first = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    layer(first, torch.ones(2, dtype=torch.bool))  # mean 1, var 1
    shifted = torch.tensor([[10.0, 10.0], [12.0, 12.0]])
    out = layer(shifted, torch.tensor([True, False]))  # only the valid row updates the statistics
    assert int(layer.tracked) == 3
    assert layer.running_mean[0] == pytest.approx(4.0)  # (0 + 2 + 10) / 3
    assert layer.running_var[0] == pytest.approx(56.0 / 3)  # of 0, 2, 10
    expected = (shifted - 4.0) / np.sqrt(56.0 / 3 + 1e-5)
    torch.testing.assert_close(out, expected.float())  # the running estimate, not this batch's (10, 12)


def test_frames_and_served_moments_give_the_same_pooled_vector():
    torch.manual_seed(0)
    frames = torch.randn(3, 7, 5) * 4 + 2
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    mean, second = moments(EncoderOutput(frames, mask))
    served = torch.stack([mean, second], 1)
    again = moments(EncoderOutput(served, torch.ones(3, 2, dtype=torch.bool), moments=True))
    torch.testing.assert_close(again[0], mean) and torch.testing.assert_close(again[1], second)
    head = build_fusion("concat", {"speech": 5}, 4).eval()
    a = head({"speech": EncoderOutput(frames, mask)}).logits
    b = head({"speech": EncoderOutput(served, torch.ones(3, 2, dtype=torch.bool), moments=True)}).logits
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert head.pooled_dims == {"speech": 10}  # mean and std
    assert build_fusion("concat", {"speech": 5}, 4, pooling="mean").pooled_dims == {"speech": 5}
    with pytest.raises(ValueError, match="pooling must be one of"):
        build_fusion("concat", {"speech": 5}, 4, pooling="max")


def test_concordance():
    t = np.array([0.1, 0.5, -0.3, 0.9])
    assert concordance(t, t) == pytest.approx(1.0)
    assert concordance(np.full(4, t.mean()), t) == pytest.approx(0.0)
    assert concordance(t + 0.5, t) < np.corrcoef(t + 0.5, t)[0, 1]  # a bias costs CCC, not r
    assert concordance(-t, t) < 0
    with pytest.raises(ValueError):
        concordance([1.0, float("nan")], [1.0, 2.0])

from __future__ import annotations

import pytest
import torch

from mmemo.encoders.base import EncoderOutput
from mmemo.fusion import available_heads, build_fusion
from mmemo.fusion.base import masked_mean


def _features(batch=3, dims=None, pad=0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    feats = {}
    for modality, (dim, length) in (dims or {"speech": (8, 5), "text": (6, 4)}).items():
        valid = torch.randn(batch, length, dim, generator=generator)
        frames = torch.cat([valid, torch.full((batch, pad, dim), 123.0)], 1)  # garbage padding
        mask = torch.zeros(batch, length + pad, dtype=torch.bool)
        mask[:, :length] = True
        feats[modality] = EncoderOutput(frames, mask)
    return feats


def test_concat_ignores_padding_and_reaches_both_branches():
    head = build_fusion("concat", {"speech": 8, "text": 6}, num_classes=4).eval()
    short, padded = _features(), _features(pad=7)
    torch.testing.assert_close(head(short).logits, head(padded).logits)
    feats = {m: EncoderOutput(f.frames.clone().requires_grad_(True), f.mask) for m, f in _features().items()}
    head.train()(feats).logits.sum().backward()
    assert all(f.frames.grad.abs().sum() > 0 for f in feats.values())


def test_unimodal_head_is_the_same_head_with_one_modality():
    head = build_fusion("concat", {"text": 6}, num_classes=4)
    assert head(_features(dims={"text": (6, 4)})).logits.shape == (3, 4)


def test_registry_errors_are_clear():
    assert "concat" in available_heads()
    with pytest.raises(ValueError, match="unknown fusion head 'nope'; available: .*concat"):
        build_fusion("nope", {"text": 4}, 2)
    with pytest.raises(KeyError, match="built for"):
        build_fusion("concat", {"text": 6}, 2)(_features())


def test_masked_mean():
    frames = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_mean(frames, torch.tensor([[True, True, False]])).item() == 2.0

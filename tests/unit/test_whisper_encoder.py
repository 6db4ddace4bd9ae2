"""Whisper encoder: variable length without 30 s padding, masks, exactness, trainable modes."""

from __future__ import annotations

import pytest
import torch
import whisper

from mmemo.encoders.whisper import WhisperEncoder

N_LAYERS = 3  # of the conftest's tiny checkpoint


@pytest.fixture(scope="module")
def tiny_whisper(tiny_whisper_pt):
    """The conftest checkpoint and the same model as openai-whisper loads it (the reference)."""
    return tiny_whisper_pt, whisper.load_model(str(tiny_whisper_pt), device="cpu").eval()


def _batch(waves):
    wav = torch.zeros(len(waves), max(len(w) for w in waves))
    mask = torch.zeros_like(wav, dtype=torch.bool)
    for i, w in enumerate(waves):
        wav[i, : len(w)], mask[i, : len(w)] = w, True
    return wav, mask


def _clips(*seconds):
    generator = torch.Generator().manual_seed(1)
    return [0.1 * torch.randn(int(s * 16_000), generator=generator) for s in seconds]


def test_batched_clip_equals_the_clip_alone(tiny_whisper):
    encoder = WhisperEncoder(str(tiny_whisper[0]))
    waves = _clips(0.3, 1.7, 4.2, 9.0)
    with torch.no_grad():
        batched = encoder(*_batch(waves))
        for i, wave in enumerate(waves):
            alone = encoder(*_batch([wave]))
            n = int(alone.mask.sum())
            assert n == int(batched.mask[i].sum()) == (len(wave) // 160 - 1) // 2 + 1
            torch.testing.assert_close(batched.frames[i, :n], alone.frames[0, :n], atol=1e-4, rtol=1e-4)
            assert batched.frames[i, n:].abs().sum() == 0
    assert batched.frames.shape[1] == 450  # 9 s at 50 frames/s, not 1500


def test_thirty_second_input_is_exactly_openai_whispers_encoder(tiny_whisper):
    path, reference = tiny_whisper
    encoder = WhisperEncoder(str(path))
    [wave] = _clips(30.0)
    with torch.no_grad():
        expected = reference.encoder(whisper.log_mel_spectrogram(wave)[None])
        ours = encoder(*_batch([wave]))
    assert torch.equal(ours.frames, expected)


def test_pad_to_30s_is_whispers_training_condition_and_pools_only_the_clip(tiny_whisper):
    path, reference = tiny_whisper
    encoder = WhisperEncoder(str(path), pad_to_30s=True)
    waves = _clips(3.0, 1.0)
    with torch.no_grad():
        ours = encoder(*_batch(waves))
        for i, wave in enumerate(waves):
            expected = reference.encoder(whisper.log_mel_spectrogram(whisper.pad_or_trim(wave))[None])[0]
            n = int(ours.mask[i].sum())
            assert n == len(wave) // 320
            torch.testing.assert_close(ours.frames[i, :n], expected[:n], atol=1e-5, rtol=1e-5)


def test_layer_selection(tiny_whisper):
    path = str(tiny_whisper[0])
    wav, mask = _batch(_clips(1.0, 2.0))
    with torch.no_grad():
        last = WhisperEncoder(path)(wav, mask).frames
        first = WhisperEncoder(path, layer=0)(wav, mask).frames
    assert not torch.allclose(first, last)
    weighted = WhisperEncoder(path, layer="weighted", trainable="frozen")
    out = weighted(wav, mask)
    assert len(out.layers) == N_LAYERS + 1
    out.frames.sum().backward()
    assert weighted.mixer.weights.grad.abs().sum() > 0
    assert [n for n, p in weighted.named_parameters() if p.requires_grad] == ["mixer.weights"]
    with pytest.raises(ValueError, match="layer must be"):
        WhisperEncoder(path, layer=9)


def test_trainable_modes(tiny_whisper):
    path = str(tiny_whisper[0])
    top = WhisperEncoder(path, trainable="top_k", top_k=1)
    trainable = {n.split(".")[2] for n, p in top.named_parameters() if p.requires_grad}
    assert trainable == {str(N_LAYERS - 1)}
    lora = WhisperEncoder(path, trainable="lora", lora={"r": 4})
    names = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    # query, key, value and out of each block get an A and a B matrix
    assert len(names) == N_LAYERS * 4 * 2
    full = WhisperEncoder(path, trainable="full")
    assert all(p.requires_grad for p in full.parameters())


def test_gradient_checkpointing_gives_the_same_gradients(tiny_whisper):
    path = str(tiny_whisper[0])
    wav, mask = _batch(_clips(1.5, 0.7))
    grads = []
    for checkpointing in (False, True):
        encoder = WhisperEncoder(path, trainable="full", gradient_checkpointing=checkpointing).train()
        encoder(wav, mask).frames.pow(2).mean().backward()
        grads.append(encoder.encoder.blocks[0].mlp[0].weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_bf16_compute_stays_close(tiny_whisper):
    path = str(tiny_whisper[0])
    wav, mask = _batch(_clips(2.0))
    with torch.no_grad():
        fp32 = WhisperEncoder(path)(wav, mask).frames
        bf16 = WhisperEncoder(path, compute_dtype="bfloat16")(wav, mask).frames
    assert bf16.dtype == torch.float32
    assert (bf16 - fp32).abs().max() < 0.1


def test_overlong_clips_are_refused_with_advice(tiny_whisper):
    encoder = WhisperEncoder(str(tiny_whisper[0]))
    with pytest.raises(ValueError, match="at most 30 s.*data.max_seconds=30"):
        encoder(*_batch(_clips(31.0)))

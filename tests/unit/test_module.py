"""EmotionClassifier: modality dropout in training, missing inputs at inference."""

from __future__ import annotations

import pytest
import torch

from mmemo.training.module import EmotionClassifier

SPEECH = {"_target_": "mmemo.encoders.spectral.SpectralEncoder", "dim": 16, "ff_dim": 32, "heads": 2,
          "transformer_layers": 1}


@pytest.fixture
def model(tiny_bert_dir):
    torch.manual_seed(0)
    text = {"_target_": "mmemo.encoders.text.TransformersTextEncoder", "path": str(tiny_bert_dir)}
    return EmotionClassifier(["a", "b", "c"], speech=SPEECH, text=text, fusion={"name": "cross_attention", "dim": 16},
                             modality_dropout=0.5)


def _batch(texts=("so angry", "happy trip", "the report", "calm")):
    wav = 0.1 * torch.randn(len(texts), 16_000, generator=torch.Generator().manual_seed(len(texts)))
    return {"audio": wav, "audio_mask": torch.ones_like(wav, dtype=torch.bool), "text": list(texts),
            "label": torch.tensor([0, 1, 2, 0][: len(texts)])}


def test_modality_dropout_hides_one_modality_per_chosen_sample_in_training_only(model):
    torch.manual_seed(3)
    model.train()
    outputs = model.encode(_batch(("a b",) * 64))
    speech_gone = ~outputs["speech"].mask.any(1)
    text_gone = ~outputs["text"].mask.any(1)
    assert not (speech_gone & text_gone).any()  # never both
    dropped = (speech_gone | text_gone).float().mean()
    assert 0.3 < dropped < 0.7
    model.eval()
    outputs = model.encode(_batch(("a b",) * 64))
    assert outputs["speech"].mask.any(1).all() and outputs["text"].mask.any(1).all()


def test_inference_without_audio_or_with_an_empty_transcript(model):
    model.eval()
    with torch.no_grad():
        full = model(_batch()).logits
        text_only = model({k: v for k, v in _batch().items() if not k.startswith("audio")}).logits
        missing_transcript = model(_batch(("so angry", "", "the report", "calm"))).logits
    assert text_only.shape == full.shape == (4, 3)
    assert not torch.allclose(text_only, full)
    torch.testing.assert_close(missing_transcript[[0, 2, 3]], full[[0, 2, 3]], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(missing_transcript[1], full[1])


def test_layer_wise_learning_rate_decay(tiny_bert_dir):
    text = {"_target_": "mmemo.encoders.text.TransformersTextEncoder", "path": str(tiny_bert_dir), "trainable": "full"}
    model = EmotionClassifier(["a", "b"], text=text, optim={"encoder_lr": 1e-4, "layer_decay": 0.5, "lr": 1e-3})
    rates = {}
    for group in model.parameter_groups():
        for parameter in group["params"]:
            rates[id(parameter)] = group["lr"]
    bert = model.encoders["text"].model
    assert rates[id(bert.encoder.layer[1].output.dense.weight)] == pytest.approx(1e-4)      # top layer
    assert rates[id(bert.encoder.layer[0].output.dense.weight)] == pytest.approx(5e-5)      # one below
    assert rates[id(bert.embeddings.word_embeddings.weight)] == pytest.approx(2.5e-5)       # below the stack
    assert rates[id(next(model.head.parameters()))] == pytest.approx(1e-3)                  # the head
    flat = EmotionClassifier(["a", "b"], text=text, optim={"encoder_lr": 1e-4})
    assert {g["lr"] for g in flat.parameter_groups()} == {1e-4, 1e-3}

"""Whisper fine-tuning on a tiny random openai-whisper checkpoint: classifier modes, LoRA, generated labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmemo.training.module import EmotionClassifier

CLASSES = ["angry", "happy", "neutral", "sad"]
WHISPER = "mmemo.encoders.whisper.WhisperEncoder"


def toy_batch(n_per_class: int = 2, seed: int = 0) -> dict:
    """Tones whose pitch depends on the class, of different lengths (so the batch is padded)."""
    rng = np.random.default_rng(seed)
    waves, labels = [], []
    for label in range(len(CLASSES)):
        for _ in range(n_per_class):
            seconds = rng.uniform(0.5, 1.2)
            t = np.arange(int(seconds * 16_000)) / 16_000
            waves.append(0.3 * np.sin(2 * np.pi * (150 + 120 * label) * t) + 0.01 * rng.standard_normal(t.size))
            labels.append(label)
    longest = max(map(len, waves))
    audio = torch.zeros(len(waves), longest)
    mask = torch.zeros(len(waves), longest, dtype=torch.bool)
    for i, wave in enumerate(waves):
        audio[i, : len(wave)] = torch.from_numpy(wave).float()
        mask[i, : len(wave)] = True
    return {"audio": audio, "audio_mask": mask, "label": torch.tensor(labels),
            "key": [f"u{i}" for i in range(len(waves))], "speaker": ["s"] * len(waves),
            "text": [f"sentence number {i}" for i in range(len(waves))]}


def classifier(path, trainable: str, **speech) -> EmotionClassifier:
    torch.manual_seed(0)
    spec = {"_target_": WHISPER, "path": str(path), "trainable": trainable, "top_k": 1,
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": None}, **speech}
    return EmotionClassifier(CLASSES, speech=spec, fusion={"name": "attentive", "dropout": 0.0},
                             optim={"lr": 3e-3, "encoder_lr": 1e-3, "lora_lr": 3e-3, "scheduler": "constant"})


def train_steps(model, batch: dict, steps: int) -> list[float]:
    optimizer = torch.optim.AdamW(model.parameter_groups(), weight_decay=0.0)
    model.log = lambda *a, **k: None
    model.train()
    losses = []
    for index in range(steps):
        loss = model.training_step(batch, index)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize("trainable", ["frozen", pytest.param("top_k", marks=pytest.mark.slow),
                                       pytest.param("full", marks=pytest.mark.slow), "lora"])
def test_classification_finetuning_lowers_the_training_loss(tiny_whisper_pt, trainable):
    model = classifier(tiny_whisper_pt, trainable, gradient_checkpointing=trainable != "frozen")
    losses = train_steps(model, toy_batch(), steps=25)
    assert losses[-1] < 0.7 * losses[0], losses


def test_lora_trains_only_the_adapters_and_the_head(tiny_whisper_pt):
    from whisper.model import Whisper

    from mmemo.encoders.whisper_checkpoints import load_whisper

    model = classifier(tiny_whisper_pt, "lora")
    reference: Whisper = load_whisper(str(tiny_whisper_pt))
    rank = 4
    adapted = [m for name, m in reference.encoder.named_modules()
               if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in ("query", "key", "value", "out")]
    expected_adapters = sum(rank * (m.in_features + m.out_features) for m in adapted)
    expected_head = sum(p.numel() for p in model.head.parameters())
    trainable = {name: p.numel() for name, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in name or name.startswith("head.") for name in trainable), sorted(trainable)
    assert sum(n for name, n in trainable.items() if "lora_" in name) == expected_adapters
    assert sum(trainable.values()) == expected_adapters + expected_head
    frozen_encoder = [p for name, p in model.encoders.named_parameters() if "lora_" not in name]
    assert frozen_encoder and not any(p.requires_grad for p in frozen_encoder)


def test_layer_decay_scales_whisper_layers_from_the_top(tiny_whisper_pt):
    model = classifier(tiny_whisper_pt, "full")
    model.optim["layer_decay"] = 0.5
    rates = {id(p): group["lr"] for group in model.parameter_groups() for p in group["params"]}
    blocks = model.encoders["speech"].encoder.blocks
    top, below = next(blocks[-1].parameters()), next(blocks[-2].parameters())
    assert rates[id(top)] == pytest.approx(1e-3) and rates[id(below)] == pytest.approx(5e-4)
    conv = model.encoders["speech"].encoder.conv1.weight
    assert rates[id(conv)] == pytest.approx(1e-3 * 0.5 ** len(blocks))


# -- generated labels ------------------------------------------------------------------------
def label_model(path, encoder: str = "frozen", decoder: str = "frozen", **generation):
    from mmemo.training.whisper_labels import WhisperLabelClassifier

    torch.manual_seed(0)
    speech = {"_target_": WHISPER, "path": str(path), "trainable": encoder,
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": None}}
    options = {"prompt": "emo", "decoder": {"trainable": decoder, "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
               **generation}
    return WhisperLabelClassifier(CLASSES, speech=speech, generation=options,
                                  optim={"lr": 3e-3, "encoder_lr": 1e-3, "lora_lr": 3e-3, "scheduler": "constant"})


def test_label_scores_equal_openai_whispers_own_decoder(tiny_whisper_pt):
    from mmemo.encoders.whisper_checkpoints import load_whisper

    model = label_model(tiny_whisper_pt).eval()
    reference = load_whisper(str(tiny_whisper_pt)).eval()
    batch = toy_batch(n_per_class=1)
    with torch.no_grad():
        speech = model.encode(batch)["speech"]
        batched = model.label_scores(speech.frames, speech.mask)
        for row in range(len(CLASSES)):
            frames = speech.frames[row: row + 1, : int(speech.mask[row].sum())]
            for c, candidate in enumerate(model.prompt.candidates()):
                tokens = torch.tensor([model.prompt.prefix + candidate])
                log_probs = reference.decoder(tokens, frames).log_softmax(-1)[0]
                start = len(model.prompt.prefix)
                expected = sum(float(log_probs[start - 1 + i, t]) for i, t in enumerate(candidate))
                assert float(batched[row, c]) == pytest.approx(expected, abs=1e-4)


def test_generated_label_evaluation_returns_valid_labels_and_hand_checked_metrics(tiny_whisper_pt):
    model = label_model(tiny_whisper_pt).eval()
    model.log = lambda *a, **k: None
    batch = toy_batch(n_per_class=3, seed=1)
    with torch.no_grad():
        scores = model(batch).logits
        model.test_step(batch, 0)
    summary = model.objective.summary("test")
    predicted = scores.argmax(1).numpy()
    truth = batch["label"].numpy()
    assert {p["prediction"] for p in model.test_predictions} <= set(CLASSES)
    assert [p["prediction"] for p in model.test_predictions] == [CLASSES[i] for i in predicted]
    recalls = [np.mean(predicted[truth == c] == c) for c in range(len(CLASSES))]
    assert summary["UA"] == pytest.approx(np.mean(recalls))
    assert summary["WA"] == pytest.approx(np.mean(predicted == truth))


def test_label_scores_do_not_depend_on_batch_padding(tiny_whisper_pt):
    model = label_model(tiny_whisper_pt).eval()
    batch = toy_batch(n_per_class=1)
    with torch.no_grad():
        together = model(batch).logits
        alone = torch.cat([model({k: v[i: i + 1] for k, v in batch.items()}).logits for i in range(len(CLASSES))])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=0)


@pytest.mark.parametrize("encoder,decoder", [("frozen", "lora"), ("lora", "full")])
def test_label_generation_training_lowers_the_generation_loss(tiny_whisper_pt, encoder, decoder):
    model = label_model(tiny_whisper_pt, encoder=encoder, decoder=decoder)
    losses = train_steps(model, toy_batch(), steps=20)
    assert losses[-1] < 0.7 * losses[0], losses
    if decoder == "lora":
        trained = [n for n, p in model.named_parameters() if p.requires_grad]
        assert trained and all("lora_" in n for n in trained)


def test_joint_mode_targets_label_then_transcript(tiny_whisper_pt):
    from mmemo.training.whisper_labels import teacher_forcing

    model = label_model(tiny_whisper_pt, joint_transcript=True, separator=" |")
    prompt = model.prompt
    inputs, targets = teacher_forcing(prompt, [1], ["hi"], torch.device("cpu"))
    tokenizer = prompt.tokenizer
    expected = prompt.labels[1] + tokenizer.encode(" |") + tokenizer.encode(" hi") + [tokenizer.eot]
    assert targets[0][targets[0] != -100].tolist() == expected
    assert inputs[0, : len(prompt.prefix)].tolist() == prompt.prefix
    generated = model.eval().generate(toy_batch(n_per_class=1), max_tokens=3)
    assert all(g["label"] in CLASSES and isinstance(g["transcript"], str) for g in generated)


def test_labels_that_tokenise_alike_are_refused(tiny_whisper_pt):
    with pytest.raises(ValueError, match="tokenise identically"):
        label_model(tiny_whisper_pt, label_words={"angry": "sad"})

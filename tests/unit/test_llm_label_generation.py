"""A causal LM fine-tuned to write labels (model=llm_label_generation) on tiny random Llama / Qwen2 / Gemma3."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmemo.errors import InvalidInput
from mmemo.llm.scoring import TransformersScorer
from mmemo.training.llm_labels import LMLabelClassifier

CLASSES = ["angry", "happy", "neutral", "sad"]
TEXTS = ["Get out of my office now!", "What a wonderful surprise, thank you!", "The bus leaves at nine.",
         "I miss her every single day."]


def label_lm(path, trainable: str = "lora", **generation) -> LMLabelClassifier:
    torch.manual_seed(0)
    text = {"_target_": "mmemo.encoders.llm.CausalLMTextEncoder", "path": str(path), "trainable": trainable,
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": None}}
    return LMLabelClassifier(CLASSES, text=text, generation=generation,
                             optim={"lr": 1e-3, "lora_lr": 3e-2, "encoder_lr": 3e-3, "scheduler": "constant"})


def batch_of(texts, labels) -> dict:
    return {"key": [f"u{i}" for i in range(len(texts))], "text": list(texts), "label": torch.tensor(labels)}


@pytest.mark.parametrize("architecture", ["llama", "qwen2", "gemma3"])
def test_label_scores_equal_the_lms_own_log_likelihoods_and_the_prompting_scorer(architecture, tiny_llm_dirs):
    model = label_lm(tiny_llm_dirs[architecture]).eval()
    with torch.no_grad():
        scores = model(batch_of(TEXTS, [0, 1, 2, 3])).logits
        lm = model.lm_encoder.lm
        for row, text in enumerate(TEXTS):
            prompt = model.prompt_ids(text)
            for c, candidate in enumerate(model.candidates):
                log_probs = lm(torch.tensor([prompt + candidate])).logits[0].float().log_softmax(-1)
                expected = sum(float(log_probs[len(prompt) - 1 + i, t]) for i, t in enumerate(candidate))
                assert float(scores[row, c]) == pytest.approx(expected, abs=1e-4)
        # the same numbers as model=llm_prompt's scorer on the same prompts (one scoring, two uses)
        prompting = TransformersScorer(lm, pad_id=model.pad_id).score([model.prompt_ids(t) for t in TEXTS],
                                                                     model.candidates)
    np.testing.assert_allclose(scores.numpy(), prompting, atol=1e-4)


def train_steps(model, batch: dict, steps: int) -> list[float]:
    optimizer = torch.optim.AdamW(model.parameter_groups())
    model.train()
    losses = []
    for _ in range(steps):
        loss = model.generation_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_lora_training_lowers_the_loss_and_touches_only_the_adapters(tiny_llm_dirs):
    model = label_lm(tiny_llm_dirs["llama"])
    before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    losses = train_steps(model, batch_of(TEXTS, [0, 1, 2, 3]), steps=20)
    # (rank-4 adapters on a random 64-d LM learn slowly; full fine-tuning below reaches a low loss)
    assert losses[-1] < losses[0] - 0.3, losses[::5]
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained and all("lora_" in n for n in trained)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)
    # the adapters are reachable as lm.model.* and model.*: neither name counts them as fixed weights
    assert not [n for n in model.lm_encoder.fixed_weights() if "lora_" in n]


def test_fine_tuning_learns_to_write_each_transcripts_label(tiny_llm_dirs):
    model = label_lm(tiny_llm_dirs["llama"], trainable="full")
    batch = batch_of(TEXTS, [0, 1, 2, 3])
    assert train_steps(model, batch, steps=60)[-1] < 0.5
    with torch.no_grad():
        assert model.eval()(batch).logits.argmax(1).tolist() == [0, 1, 2, 3]


def test_the_loss_is_the_cross_entropy_of_the_label_tokens_only(tiny_llm_dirs):
    model = label_lm(tiny_llm_dirs["qwen2"]).eval()
    batch = batch_of(TEXTS[:2], [3, 1])
    with torch.no_grad():
        loss = float(model.generation_loss(batch))
        lm, nll, count = model.lm_encoder.lm, 0.0, 0
        for text, label in zip(TEXTS[:2], [3, 1]):
            prompt, target = model.prompt_ids(text), model.candidates[label]
            log_probs = lm(torch.tensor([prompt + target])).logits[0].float().log_softmax(-1)
            nll -= sum(float(log_probs[len(prompt) - 1 + i, t]) for i, t in enumerate(target))
            count += len(target)
    assert loss == pytest.approx(nll / count, abs=1e-4)


def test_a_long_transcript_is_cut_and_a_frozen_lm_is_refused(tiny_llm_dirs):
    model = label_lm(tiny_llm_dirs["llama"], max_text_tokens=8)
    short = len(model.prompt_ids("word " * 8))
    assert len(model.prompt_ids("word " * 5000)) <= short + 1
    with pytest.raises(InvalidInput, match="model=llm_prompt"):
        label_lm(tiny_llm_dirs["llama"], trainable="frozen")
    with pytest.raises(InvalidInput, match="unknown model.generation options"):
        label_lm(tiny_llm_dirs["llama"], shots=4)
    with pytest.raises(InvalidInput, match="tokenise identically"):
        label_lm(tiny_llm_dirs["llama"], label_words={"angry": "sad"})

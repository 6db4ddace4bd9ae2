"""Causal LMs as text encoders: tiny Llama / Qwen2 / Gemma3 folders and a GGUF file, through the user's path."""

from __future__ import annotations

import pytest
import torch

from mmemo.encoders.llm import CausalLMTextEncoder, load_causal_lm

SENTENCES = ["I told you twice already.", "What a lovely day it is today, honestly.", "Fine."]


@pytest.mark.parametrize("architecture", ["llama", "qwen2", "gemma3"])
def test_pooling_reads_only_real_tokens_whatever_the_padding(architecture, tiny_llm_dirs):
    tokens = CausalLMTextEncoder(str(tiny_llm_dirs[architecture]), pooling="tokens")
    assert type(tokens.lm).__name__.lower().startswith(architecture)
    batch = tokens(SENTENCES)
    lengths = batch.mask.sum(1)
    assert lengths.tolist() == [len(tokens.tokenizer.encode(s)) for s in SENTENCES]
    mean = CausalLMTextEncoder(str(tiny_llm_dirs[architecture]), pooling="mean")
    last = CausalLMTextEncoder(str(tiny_llm_dirs[architecture]), pooling="last")
    pooled_mean, pooled_last = mean(SENTENCES), last(SENTENCES)
    assert pooled_mean.frames.shape == (3, 1, mean.dim) and pooled_mean.mask.all()
    for i, sentence in enumerate(SENTENCES):
        n = int(lengths[i])
        alone = tokens([sentence]).frames[0, :n]
        # right padding: a sentence's states do not depend on what it was batched with
        torch.testing.assert_close(batch.frames[i, :n], alone, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(pooled_mean.frames[i, 0], alone.mean(0), atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(pooled_last.frames[i, 0], alone[-1], atol=2e-5, rtol=1e-4)


def test_a_missing_transcript_pools_to_an_absent_row(tiny_llm_dirs):
    encoder = CausalLMTextEncoder(str(tiny_llm_dirs["llama"]), pooling="last")
    out = encoder(["Hello there.", ""])
    assert out.mask[:, 0].tolist() == [True, False]
    assert float(out.frames[1].abs().sum()) == 0.0


def test_a_gguf_file_loads_with_its_own_tokenizer_and_chat_template(tiny_gguf):
    tokenizer, lm = load_causal_lm(str(tiny_gguf))
    assert type(lm).__name__ == "LlamaForCausalLM" and lm.config.num_hidden_layers == 2
    assert len(tokenizer) == 2048 and tokenizer.chat_template and tokenizer.pad_token_id is not None
    encoder = CausalLMTextEncoder(str(tiny_gguf), layer=1)
    assert encoder.config()["path"] == str(tiny_gguf) and encoder.dim == 64
    # layer 1 = the first block's output: what the decoder's hidden_states report
    ids = tokenizer(["Fine."], return_tensors="pt")
    expected = lm(**ids, output_hidden_states=True).hidden_states[1].mean(1)
    torch.testing.assert_close(encoder(["Fine."]).frames[:, 0], expected, atol=1e-5, rtol=1e-4)


def test_lora_trains_only_the_attention_adapters(tiny_llm_dirs):
    encoder = CausalLMTextEncoder(str(tiny_llm_dirs["qwen2"]), trainable="lora")
    trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    encoder.train()
    encoder(["Hello there."]).frames.sum().backward()
    assert all(p.grad is not None for n, p in encoder.named_parameters() if p.requires_grad)


def test_bad_paths_and_options_are_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="GGUF file not found"):
        CausalLMTextEncoder(str(tmp_path / "missing.gguf"))
    with pytest.raises(ValueError, match="pooling must be one of"):
        CausalLMTextEncoder(str(tmp_path / "missing.gguf"), pooling="max")
    with pytest.raises(OSError, match="could not load a causal language model"):
        CausalLMTextEncoder(str(tmp_path))


def naive_scores(lm, prompts, candidates):
    """The definition: one full forward per prompt + label, no cache, no padding."""
    import numpy as np

    out = np.zeros((len(prompts), len(candidates)))
    with torch.no_grad():
        for i, prompt in enumerate(prompts):
            for c, candidate in enumerate(candidates):
                ids = torch.tensor([list(prompt) + list(candidate)])
                log_probs = lm(input_ids=ids).logits[0].log_softmax(-1)
                out[i, c] = sum(float(log_probs[len(prompt) - 1 + j, t]) for j, t in enumerate(candidate))
    return out


@pytest.mark.parametrize("architecture", ["llama", "qwen2", "gemma3"])
def test_shared_prompt_scoring_equals_one_forward_per_label(architecture, tiny_llm_dirs):
    import numpy as np

    from mmemo.llm.scoring import TransformersScorer

    tokenizer, lm = load_causal_lm(str(tiny_llm_dirs[architecture]))
    prompts = [tokenizer.encode(s) for s in SENTENCES]               # different lengths: left padding
    candidates = [tokenizer.encode(w, add_special_tokens=False) for w in (" angry\n", " sad", " neutral mood\n")]
    assert len({len(c) for c in candidates}) > 1                     # labels of different lengths
    expected = naive_scores(lm, prompts, candidates)
    for rows in (1, 2, 8):
        got = TransformersScorer(lm, batch_rows=rows, pad_id=tokenizer.pad_token_id).score(prompts, candidates)
        np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-5)

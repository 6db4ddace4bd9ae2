"""Every Whisper checkpoint format loads into openai-whisper exactly.

Tiny random-weight models of the real architectures are saved in the real on-disk
formats (torch.save as openai-whisper does, transformers' save_pretrained, CTranslate2's
own converter) and read back through ``load_whisper``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mmemo.encoders.whisper_checkpoints import (
    CTranslate2FormatError,
    WhisperCheckpointError,
    WhisperDownloadError,
    describe_checkpoint,
    load_whisper,
    read_ctranslate2_model,
    whisper_checkpoint_kind,
)
from mmemo.evaluation.wer import align_words, word_error_rate

SPECIAL_TOKENS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
                  "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
TOKENS = torch.tensor([[30, 31, 5, 7, 9, 11]])  # <|startoftranscript|> <|en|> f h j l

# max|ours - transformers| / max|transformers| allowed per CTranslate2 quantisation: the
# error of rounding the weights themselves. Observed (worst of encoder and logits): float32
# 5.7e-7, float16 1.2e-3, bfloat16 1.3e-2, int16 4.5e-3, int8 2.7e-2; bounds leave 2.5-5x.
RELATIVE_TOLERANCE = {"float32": 3e-6, "float16": 4e-3, "bfloat16": 3e-2, "int16": 2e-2,
                      "int8_float32": 8e-2, "int8_float16": 8e-2}
QUANTIZED_WEIGHT = re.compile(r"(conv[12]|query|key|value|out|mlp\.[02]|token_embedding)\.weight$")


# -- fixtures ------------------------------------------------------------------------------

def _save_tiny_tokenizer(folder: Path) -> None:
    """CTranslate2's converter reads the tokenizer; a byte-level BPE of 38 tokens is enough."""
    from transformers import WhisperTokenizer

    vocab = {token: i for i, token in enumerate([chr(c) for c in range(97, 123)] + ["Ġ", "!", "."])}
    vocab.update({token: len(vocab) + i for i, token in enumerate(SPECIAL_TOKENS)})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    WhisperTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt")).save_pretrained(folder)


def _tiny_hf_model():
    """Every parameter random (biases, norms and both positional tables too), so a swapped or
    regenerated tensor shows; two biases are zero so CTranslate2 stores them as aliases."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(vocab_size=64, num_mel_bins=80, d_model=32, encoder_layers=2, decoder_layers=2,
                           encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                           decoder_ffn_dim=128, max_source_positions=1500, max_target_positions=48,
                           pad_token_id=29, bos_token_id=29, eos_token_id=29, decoder_start_token_id=30)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            centre = 1.0 if "layer_norm" in name and name.endswith("weight") else 0.0
            parameter.copy_(centre + 0.2 * torch.randn_like(parameter))
        model.model.encoder.layers[1].fc2.bias.zero_()
        model.model.decoder.layers[1].fc2.bias.zero_()
    return model


@pytest.fixture(scope="module")
def hf_whisper(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf_whisper")
    model = _tiny_hf_model()
    model.save_pretrained(folder)
    _save_tiny_tokenizer(folder)
    return folder, model


@pytest.fixture(scope="module")
def mel() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(1, 80, 3000)


@pytest.fixture(scope="module")
def hf_outputs(hf_whisper, mel):
    _, model = hf_whisper
    with torch.no_grad():
        encoded = model.model.encoder(mel).last_hidden_state
        logits = model(input_features=mel, decoder_input_ids=TOKENS).logits
    return encoded, logits


@pytest.fixture(scope="module")
def ct2_dirs(hf_whisper, tmp_path_factory):
    """The tiny HF model through CTranslate2's real converter, once per quantisation."""
    import ctranslate2

    root = tmp_path_factory.mktemp("ct2")
    converter = ctranslate2.converters.TransformersConverter(str(hf_whisper[0]))
    return {q: Path(converter.convert(str(root / q), quantization=q)) for q in RELATIVE_TOLERANCE}


def _outputs(model, mel):
    with torch.no_grad():
        encoded = model.encoder(mel)
        return encoded, model.logits(TOKENS, encoded)


def _relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


# -- openai-whisper .pt ----------------------------------------------------------------------

@pytest.mark.parametrize("stored", [torch.float32, torch.float16])
def test_openai_pt_round_trips_exactly(tmp_path, stored):
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(n_mels=80, n_audio_ctx=20, n_audio_state=32, n_audio_head=4, n_audio_layer=2,
                           n_vocab=100, n_text_ctx=16, n_text_state=32, n_text_head=4, n_text_layer=2)
    torch.manual_seed(0)
    original = Whisper(dims)
    torch.nn.init.normal_(original.decoder.positional_embedding, std=0.02)  # torch.empty otherwise (may hold NaN)
    state = {k: v.to(stored) if v.is_floating_point() else v for k, v in original.state_dict().items()}
    path = tmp_path / "tiny.pt"
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": state}, path)  # as openai-whisper ships

    loaded = load_whisper(str(path))
    assert whisper_checkpoint_kind(path) == "openai_pt" and loaded.dims == dims and not loaded.training
    assert set(loaded.state_dict()) == set(state)
    for key, value in loaded.state_dict().items():
        assert value.dtype == torch.float32 and torch.equal(value, state[key].float()), key
    description = describe_checkpoint(path)
    assert description["dims"] == dataclasses.asdict(dims)
    assert description["n_params"] == sum(p.numel() for p in loaded.parameters())
    assert description["dtype"] == str(stored).removeprefix("torch.")


# -- Hugging Face ------------------------------------------------------------------------------

def test_huggingface_folder_matches_transformers(hf_whisper, mel, hf_outputs):
    folder, model = hf_whisper
    loaded = load_whisper(str(folder))
    encoded, logits = _outputs(loaded, mel)
    torch.testing.assert_close(encoded, hf_outputs[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, hf_outputs[1], atol=1e-5, rtol=0)
    assert whisper_checkpoint_kind(folder) == "huggingface"
    assert loaded.dims.n_audio_head == 4 and loaded.dims.n_text_ctx == 48 and loaded.dims.n_vocab == 64
    # The encoder's positional table comes from the file, not regenerated sinusoids.
    assert torch.equal(loaded.encoder.positional_embedding, model.model.encoder.embed_positions.weight)
    description = describe_checkpoint(folder)
    assert description["n_params"] == sum(p.numel() for p in loaded.parameters())
    assert description["dtype"] == "float32"


def test_bare_sharded_whisper_model_loads_too(hf_whisper, mel, hf_outputs, tmp_path):
    """A WhisperModel (no "model." prefix, no proj_out) saved in shards gives the same model."""
    hf_whisper[1].model.save_pretrained(tmp_path, max_shard_size="50KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    encoded, logits = _outputs(load_whisper(str(tmp_path)), mel)
    torch.testing.assert_close(encoded, hf_outputs[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, hf_outputs[1], atol=1e-5, rtol=0)


def _fuse_attention(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fused naming some exports use: q/k/v -> qkv_proj, cross-attention k/v -> kv_proj."""
    fused = dict(state)
    for key in [k for k in state if k.endswith("self_attn.q_proj.weight")]:
        stem = key.removesuffix(".q_proj.weight")
        parts = [fused.pop(f"{stem}.{p}_proj.weight") for p in "qkv"]
        fused[f"{stem}.qkv_proj.weight"] = torch.cat(parts)
        q_bias, v_bias = fused.pop(f"{stem}.q_proj.bias"), fused.pop(f"{stem}.v_proj.bias")
        fused[f"{stem}.qkv_proj.bias"] = torch.cat([q_bias, torch.zeros_like(q_bias), v_bias])
    for key in [k for k in state if k.endswith("encoder_attn.k_proj.weight")]:
        stem = key.removesuffix(".k_proj.weight")
        fused[f"{stem}.kv_proj.weight"] = torch.cat([fused.pop(f"{stem}.k_proj.weight"),
                                                     fused.pop(f"{stem}.v_proj.weight")])
    return fused


@pytest.mark.parametrize("layout", ["pytorch_model.bin", "fused_attention"])
def test_huggingface_legacy_and_fused_layouts_load_the_same(hf_whisper, mel, hf_outputs, tmp_path, layout):
    folder, model = hf_whisper
    shutil.copy(folder / "config.json", tmp_path)
    state = {k: v.clone() for k, v in model.state_dict().items()}  # includes the tied proj_out.weight
    if layout == "pytorch_model.bin":
        torch.save(state, tmp_path / "pytorch_model.bin")  # what transformers 4 wrote
    else:
        from safetensors.torch import save_file

        state.pop("proj_out.weight")
        save_file(_fuse_attention(state), str(tmp_path / "model.safetensors"))
    encoded, logits = _outputs(load_whisper(str(tmp_path)), mel)
    torch.testing.assert_close(encoded, hf_outputs[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, hf_outputs[1], atol=1e-5, rtol=0)


def test_untied_output_projection_is_refused(hf_whisper, tmp_path):
    shutil.copy(hf_whisper[0] / "config.json", tmp_path)
    state = {k: v.clone() for k, v in hf_whisper[1].state_dict().items()}
    state["proj_out.weight"] += 1.0
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(WhisperCheckpointError, match="output projection differs from the token embedding"):
        load_whisper(str(tmp_path))


def test_huggingface_alignment_heads_come_from_generation_config(hf_whisper, tmp_path):
    shutil.copytree(hf_whisper[0], tmp_path / "hf")
    config_file = tmp_path / "hf" / "generation_config.json"
    config = {**json.loads(config_file.read_text()), "alignment_heads": [[1, 2], [0, 3]]}
    config_file.write_text(json.dumps(config))
    heads = load_whisper(str(tmp_path / "hf")).alignment_heads.to_dense()
    assert heads.nonzero().tolist() == [[0, 3], [1, 2]]


# -- CTranslate2 ---------------------------------------------------------------------------------

def _quantised(weight: np.ndarray, quantization: str) -> np.ndarray:
    """What CTranslate2's converter does to one tensor, redone here independently."""
    if quantization.startswith("int8") and weight.ndim >= 2:
        rows = weight.reshape(weight.shape[0], -1)
        amax = np.abs(rows).max(axis=1)
        amax[amax == 0] = 127.0
        amax = np.maximum(amax, np.float32(127) / np.finfo(np.float32).max)
        scale = (np.float32(127.0) / amax).astype(np.float32)
        quantised = np.rint(rows * scale[:, None]).astype(np.int8)
        return (quantised.astype(np.float32) / scale[:, None]).reshape(weight.shape)
    storage = {"float16": torch.float16, "bfloat16": torch.bfloat16, "int8_float16": torch.float16}
    if quantization in storage:
        return torch.from_numpy(weight).to(storage[quantization]).float().numpy()
    return weight


@pytest.mark.parametrize("quantization", ["float32", "float16", "bfloat16", "int8_float32", "int8_float16"])
def test_ctranslate2_weights_equal_the_converters_rounding(hf_whisper, ct2_dirs, quantization):
    expected = load_whisper(str(hf_whisper[0])).state_dict()
    loaded = load_whisper(str(ct2_dirs[quantization])).state_dict()
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        # int8_X: linear, conv and embedding weights are int8; every other tensor is stored as X.
        rule = quantization if QUANTIZED_WEIGHT.search(key) else quantization.removeprefix("int8_")
        assert np.array_equal(loaded[key].numpy(), _quantised(value.numpy(), rule)), key


@pytest.mark.parametrize("quantization", list(RELATIVE_TOLERANCE))
def test_ctranslate2_folder_matches_transformers_and_ctranslate2(ct2_dirs, mel, hf_outputs, quantization):
    import ctranslate2

    folder = ct2_dirs[quantization]
    loaded = load_whisper(str(folder))
    encoded, logits = _outputs(loaded, mel)
    assert _relative_error(encoded, hf_outputs[0]) <= RELATIVE_TOLERANCE[quantization]
    assert _relative_error(logits, hf_outputs[1]) <= RELATIVE_TOLERANCE[quantization]
    # CTranslate2's own encoder on the same weights (dequantised to float32) agrees to float32 noise.
    runtime = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32")
    theirs = np.array(runtime.encode(ctranslate2.StorageView.from_array(mel.numpy()), to_cpu=True))
    np.testing.assert_allclose(encoded.numpy(), theirs, atol=5e-5, rtol=0)
    assert whisper_checkpoint_kind(folder) == "ctranslate2"
    assert loaded.dims == load_whisper(str(ct2_dirs["float32"])).dims
    # Alignment heads come from config.json (the converter's default: the last half of the layers).
    assert loaded.alignment_heads.to_dense()[1].all() and not loaded.alignment_heads.to_dense()[0].any()


def test_ctranslate2_reader_resolves_aliases_and_describes(ct2_dirs):
    model = read_ctranslate2_model(ct2_dirs["int8_float16"])
    assert (model.binary_version, model.spec, model.revision) == (6, "WhisperSpec", 3)
    assert model.resolve("decoder/projection/weight") == "decoder/embeddings/weight"
    assert model.dtypes["decoder/embeddings/weight"] == "int8" and model.scalar("encoder/num_heads") == 4
    zero = model.float32("encoder/layer_1/ffn/linear_1/bias")  # zero, so stored once and aliased
    assert "encoder/layer_1/ffn/linear_1/bias" in model.aliases and not zero.any()
    description = describe_checkpoint(ct2_dirs["float16"])
    assert description["kind"] == "ctranslate2" and description["dtype"] == "float16"
    assert description["dims"]["n_text_layer"] == 2 and description["n_params"] > 0


# -- hand-written model.bin files: format corners and errors ----------------------------------------

def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _model_bin(variables: list[tuple[str, int, np.ndarray]], aliases=(), version=6, spec="WhisperSpec") -> bytes:
    """A model.bin written from the format description (name, dtype code, data)."""
    out = struct.pack("<I", version) + _string(spec) + struct.pack("<II", 3, len(variables))
    for name, code, data in variables:
        out += _string(name) + struct.pack("<B", data.ndim) + struct.pack(f"<{data.ndim}I", *data.shape)
        out += struct.pack("<BI", code, data.nbytes) + data.tobytes()
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases:
        out += _string(alias) + _string(target)
    return out


def test_reader_decodes_bfloat16_scales_and_alias_chains(tmp_path):
    weights = np.array([[1.5, -2.0], [0.25, 3.0]], dtype=np.float32)
    bf16_bits = (weights.view(np.uint32) >> 16).astype(np.uint16)
    quantised = np.array([[3, -4], [1, 12]], dtype=np.int8)
    scale = np.array([2.0, 4.0], dtype=np.float16)
    (tmp_path / "model.bin").write_bytes(_model_bin(
        [("a", 5, bf16_bits), ("q", 1, quantised), ("q_scale", 4, scale), ("heads", 2, np.array(6, np.int16))],
        aliases=[("c", "b"), ("b", "a")]))
    model = read_ctranslate2_model(tmp_path)
    assert np.array_equal(model.float32("c"), weights)
    assert np.array_equal(model.float32("q"), [[1.5, -2.0], [0.25, 3.0]])
    assert model.scalar("heads") == 6 and model.scalar("missing") is None


def test_truncated_model_bin_names_the_file_and_offset(ct2_dirs, tmp_path):
    data = (ct2_dirs["float32"] / "model.bin").read_bytes()
    for cut in (3, 40, len(data) // 2, len(data) - 5):
        folder = tmp_path / f"cut{cut}"
        shutil.copytree(ct2_dirs["float32"], folder)
        (folder / "model.bin").write_bytes(data[:cut])
        with pytest.raises(CTranslate2FormatError, match=r"model\.bin: truncated or corrupt at byte \d+"):
            load_whisper(str(folder))


def test_unknown_dtype_and_version_are_named(tmp_path):
    (tmp_path / "model.bin").write_bytes(_model_bin([("encoder/conv1/weight", 9, np.zeros(4, np.float32))]))
    with pytest.raises(CTranslate2FormatError, match=r"'encoder/conv1/weight' has unknown dtype code 9 at byte"):
        load_whisper(str(tmp_path))
    (tmp_path / "model.bin").write_bytes(_model_bin([], version=7))
    with pytest.raises(CTranslate2FormatError, match="binary version 7"):
        read_ctranslate2_model(tmp_path)
    (tmp_path / "model.bin").write_bytes(_model_bin([], spec="TransformerSpec"))
    with pytest.raises(WhisperCheckpointError, match="TransformerSpec model, not Whisper"):
        load_whisper(str(tmp_path))


def test_paths_that_are_no_whisper_checkpoint_say_what_was_expected(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(WhisperCheckpointError, match="not a Whisper checkpoint folder.*CTranslate2"):
        load_whisper(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(WhisperCheckpointError, match="model_type is 'bert'"):
        load_whisper(str(tmp_path))
    with pytest.raises(WhisperCheckpointError, match="not a PyTorch checkpoint"):
        load_whisper(str(tmp_path / "notes.txt"))
    with pytest.raises(FileNotFoundError, match="not a Whisper model name"):
        load_whisper(str(tmp_path / "missing"))
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(WhisperCheckpointError, match="not an openai-whisper checkpoint"):
        load_whisper(str(tmp_path / "other.pt"))


def test_offline_model_name_fails_fast_and_lists_local_formats(tmp_path, monkeypatch):
    import whisper

    # An address that can never resolve, so the test is offline even on a networked machine.
    monkeypatch.setitem(whisper._MODELS, "tiny.en", "https://whisper-probe.invalid/models/0000/tiny.en.pt")
    assert whisper_checkpoint_kind("tiny.en") == "name"
    start = time.monotonic()
    with pytest.raises(WhisperDownloadError) as caught:
        load_whisper("tiny.en", download_root=str(tmp_path))
    assert time.monotonic() - start < 10
    message = str(caught.value)
    for expected in ("'tiny.en'", ".pt file", "Hugging Face", "CTranslate2/faster-whisper", "model.speech.path="):
        assert expected in message


# -- word error rate ----------------------------------------------------------------------------------

@pytest.mark.parametrize("reference, hypothesis, counts", [
    ("the cat sat", "the cat sat", (0, 0, 0)),
    ("the cat sat", "the bat sat", (1, 0, 0)),
    ("the cat sat on the mat", "the cat on mat", (0, 2, 0)),
    ("the cat", "oh the big cat", (0, 0, 2)),
    ("a b c d e", "x b d e f", (1, 1, 1)),
    ("a b c d", "x b d e", (3, 0, 0)),  # ties with 1 sub + 1 del + 1 ins
    ("a b", "x a", (2, 0, 0)),  # equal cost to 1 ins + 1 del: substitutions are preferred
    ("", "a", (0, 0, 1)),
])
def test_word_alignment_counts(reference, hypothesis, counts):
    assert align_words(reference.split(), hypothesis.split()) == counts


def test_word_error_rate_sums_over_the_corpus_and_normalises():
    result = word_error_rate(["He was not an ill disposed young man", "had he married"],
                             ["He was not an old-sposed young man.", "Had he married?"])
    # normalised: "ill disposed" -> "old sposed" is 2 substitutions out of 11 words
    assert result == {"wer": 2 / 11, "substitutions": 2, "deletions": 0, "insertions": 0, "words": 11}
    assert word_error_rate(["Mr. Smith can't"], ["mister smith can not"])["wer"] == 0.0
    raw = word_error_rate(["Hello world"], ["hello world."], normalize=False)
    assert (raw["substitutions"], raw["wer"]) == (2, 1.0)
    assert word_error_rate([""], [""])["wer"] == 0.0 and word_error_rate([""], ["a"])["wer"] == float("inf")
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        word_error_rate(["a", "b"], ["a"])

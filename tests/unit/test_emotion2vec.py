"""emotion2vec: batched frames and head scores equal funasr's one-clip-at-a-time output.

Tiny random-weight models of funasr's real ``Emotion2vec`` class are written in the FunASR
directory format and loaded through the user-facing ``Emotion2vecEncoder(path=dir)``.
"""

from __future__ import annotations

import inspect
import threading
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from mmemo.encoders import emotion2vec as e2v
from mmemo.encoders import emotion2vec_checkpoints as e2v_checkpoints
from mmemo.encoders.emotion2vec import Emotion2vecEncoder
from mmemo.encoders.emotion2vec_checkpoints import (
    build_funasr_model,
    save_funasr_model_dir,
    tiny_model_conf,
)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "model" / "speech"
#: emotion2vec+ label order, two of them marked unused as some tokens.txt revisions do.
LABELS = ["angry", "unuse_disgusted", "fearful", "happy", "neutral", "unuse_other", "sad", "surprised", "<unk>"]
# Very different lengths: 2 s, one frame (401 samples, just over the 400-sample receptive
# field), two frames, 0.49 s and 1.5 s.
CLIP_SAMPLES = (32_000, 401, 720, 7_777, 24_321)
VARIANTS = {
    # GroupNorm over time, pre-norm blocks, per-layer ALiBi scales, an even positional kernel.
    "groupnorm_prenorm": dict(extractor_mode="default", layer_norm_first=True, alibi_scale_per_layer=True,
                              conv_pos_width=8),
    # The released base model's paths: per-frame LayerNorm extractor, post-norm, per-head scales.
    "like_base": dict(extractor_mode="layer_norm", layer_norm_first=False, alibi_scale_per_layer=False),
}


def _random_model(conf: dict, labels: list[str] | None, seed: int):
    torch.manual_seed(seed)
    model = build_funasr_model(conf, len(labels) if labels else 0)
    with torch.no_grad():  # move every weight (norms, ALiBi scales, extra tokens) off its initial value
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
        model.modality_encoders["AUDIO"].alibi_scale.abs_()
    return model


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("emotion2vec")
    dirs = {}
    for seed, (name, options) in enumerate(VARIANTS.items()):
        conf = tiny_model_conf(**options)
        dirs[name] = save_funasr_model_dir(_random_model(conf, LABELS, seed), conf, root / name, LABELS)
    conf = tiny_model_conf()
    dirs["no_head"] = save_funasr_model_dir(_random_model(conf, None, 7), conf, root / "no_head")
    return dirs


@pytest.fixture(scope="module")
def funasr_outputs(model_dirs) -> dict[str, list[dict]]:
    """funasr's AutoModel.generate on each clip alone, as users run it."""
    from funasr import AutoModel

    threads = torch.get_num_threads()  # AutoModel sets its own thread count; keep the suite's
    outputs = {}
    try:
        for name in VARIANTS:
            model = AutoModel(model=str(model_dirs[name]), disable_update=True, device="cpu", disable_pbar=True,
                              log_level="ERROR")
            outputs[name] = [model.generate(wave.numpy(), granularity="frame", extract_embedding=True,
                                            disable_pbar=True)[0] for wave in _clips()]
    finally:
        torch.set_num_threads(threads)
    return outputs


def _clips() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [0.1 * torch.randn(n, generator=generator) + 0.05 for n in CLIP_SAMPLES]  # with a DC offset


def _batch(waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    wav = torch.zeros(len(waves), max(len(w) for w in waves))
    mask = torch.zeros_like(wav, dtype=torch.bool)
    for i, wave in enumerate(waves):
        wav[i, : len(wave)] = wave
        mask[i, : len(wave)] = True
    wav[~mask] = 3.0  # loud padding: any leak shows
    return wav, mask


# -- exactness against funasr ------------------------------------------------------------
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_batched_frames_equal_funasr_per_clip(variant, model_dirs, funasr_outputs):
    encoder = Emotion2vecEncoder(str(model_dirs[variant]))
    with torch.no_grad():
        output = encoder(*_batch(_clips()))
    assert output.frames.dtype == torch.float32 and output.frames.shape[-1] == encoder.dim == 32
    for i, expected in enumerate(funasr_outputs[variant]):
        feats = torch.from_numpy(expected["feats"])
        n = int(output.mask[i].sum())
        assert n == feats.shape[0] == (CLIP_SAMPLES[i] - 400) // 320 + 1
        assert output.mask[i, :n].all()
        torch.testing.assert_close(output.frames[i, :n], feats, atol=1e-4, rtol=0)
        assert output.frames[i, n:].abs().sum() == 0
        assert all(layer[i, n:].abs().sum() == 0 for layer in output.layers)
    assert encoder.frame_rate == 50.0


def test_funasr_own_batched_forward_leaks_padding(model_dirs, funasr_outputs):
    """Why the masked forward exists: funasr's padding_mask path changes valid frames."""
    encoder = Emotion2vecEncoder(str(model_dirs["groupnorm_prenorm"]))
    wav, mask = _batch(_clips())
    wav = e2v.normalise_waveforms(wav, mask.sum(1))  # even with funasr's per-clip normalisation done right
    with torch.no_grad():
        leaky = encoder.model.extract_features(wav, padding_mask=~mask)["x"]
    feats = torch.from_numpy(funasr_outputs["groupnorm_prenorm"][1]["feats"])  # the one-frame clip
    assert (leaky[1, : len(feats)] - feats).abs().max() > 1e-2


def test_classify_reproduces_funasr_scores_in_tokens_order(model_dirs, funasr_outputs):
    for variant in VARIANTS:
        encoder = Emotion2vecEncoder(str(model_dirs[variant]))
        assert encoder.labels == LABELS and encoder.has_head
        with torch.no_grad():
            output = encoder(*_batch(_clips()))
            logits = encoder.classify(output.frames, output.mask)
        assert logits.shape == (len(CLIP_SAMPLES), len(LABELS))
        used = [i for i, label in enumerate(LABELS) if not label.startswith("unuse")]
        assert torch.isinf(logits[:, [1, 5]]).all()
        probabilities = torch.softmax(logits, -1)
        for i, expected in enumerate(funasr_outputs[variant]):
            assert expected["labels"] == [LABELS[j] for j in used]
            torch.testing.assert_close(probabilities[i, used], torch.tensor(expected["scores"]), atol=1e-5, rtol=0)


def test_model_without_head_has_no_labels(model_dirs):
    encoder = Emotion2vecEncoder(str(model_dirs["no_head"]))
    assert encoder.labels is None and not encoder.has_head
    output = encoder(*_batch(_clips()[:2]))
    with pytest.raises(ValueError, match="no classification head"):
        encoder.classify(output.frames, output.mask)


def test_clip_shorter_than_receptive_field_gives_one_frame(model_dirs):
    encoder = Emotion2vecEncoder(str(model_dirs["like_base"]))
    with torch.no_grad():
        output = encoder(*_batch([torch.randn(300), torch.randn(16_000)]))
    assert int(output.mask[0].sum()) == 1 and torch.isfinite(output.frames).all()


# -- layers and trainable modes ----------------------------------------------------------
def test_layer_selection(model_dirs):
    path = str(model_dirs["like_base"])
    wav, mask = _batch(_clips()[:3])
    last = Emotion2vecEncoder(path)(wav, mask)
    assert len(last.layers) == 3  # prenet output + 2 main blocks
    torch.testing.assert_close(last.layers[-1], last.frames)  # post-norm: no final norm
    first = Emotion2vecEncoder(path, layer=0)(wav, mask)
    torch.testing.assert_close(first.frames, last.layers[0])
    assert not torch.allclose(first.frames, last.frames)
    with pytest.raises(ValueError, match="layer must be"):
        Emotion2vecEncoder(path, layer=3)

    weighted = Emotion2vecEncoder(path, layer="weighted")
    assert [n for n, p in weighted.named_parameters() if p.requires_grad] == ["mixer.weights"]
    output = weighted(wav, mask)
    torch.testing.assert_close(output.frames, torch.stack(last.layers).mean(0))  # uniform mix at init
    (output.frames * torch.randn_like(output.frames)).sum().backward()
    assert weighted.mixer.weights.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="last layer"):
        weighted.classify(output.frames, output.mask)


def test_trainable_modes(model_dirs):
    path = str(model_dirs["like_base"])
    frozen = Emotion2vecEncoder(path)
    assert not any(p.requires_grad for p in frozen.parameters())
    frozen.train()
    assert not frozen.training and not frozen.model.training

    top = Emotion2vecEncoder(path, trainable="top_k", top_k=2)
    assert len(top.layer_stack()) == 3  # 1 prenet block + 2 main blocks
    trained = {n for n, p in top.named_parameters() if p.requires_grad}
    assert trained == {f"model.{n}" for n, _ in top.model.blocks.named_parameters(prefix="blocks")}
    top_one = Emotion2vecEncoder(path, trainable="top_k", top_k=1)
    assert {n.split(".")[2] for n, p in top_one.named_parameters() if p.requires_grad} == {"1"}

    lora = Emotion2vecEncoder(path, trainable="lora", lora={"r": 2})
    trainable = {n: p for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert len(trainable) == 3 * 2 * 2  # 3 blocks x (attn.qkv, attn.proj) x (A, B); the head proj is untouched
    d = 32
    assert sum(p.numel() for p in trainable.values()) == 3 * 2 * (d + 3 * d + d + d)
    wav, mask = _batch(_clips()[:3])
    with torch.no_grad():  # LoRA starts as the identity (B = 0); eval: no dropout
        torch.testing.assert_close(lora.eval()(wav, mask).frames, frozen(wav, mask).frames, atol=1e-5, rtol=0)
    lora.train()
    lora(wav, mask).frames.sum().backward()
    assert all(p.grad is not None for p in trainable.values())

    full = Emotion2vecEncoder(path, trainable="full")
    head = {n for n, _ in full.named_parameters() if n.startswith("model.proj.")}
    assert {n for n, p in full.named_parameters() if not p.requires_grad} == head  # funasr's fixed classifier
    assert full.training


def test_fingerprint_follows_weights_and_layer(model_dirs):
    path = str(model_dirs["like_base"])
    a, b, c = Emotion2vecEncoder(path), Emotion2vecEncoder(path), Emotion2vecEncoder(path)
    assert a.fingerprint() == b.fingerprint()
    with torch.no_grad():  # before c's first fingerprint: a frozen encoder remembers its hash
        c.model.blocks[0].attn.qkv.weight[0, 0] += 1e-3
    assert a.fingerprint() != c.fingerprint()
    assert Emotion2vecEncoder(path, layer=1).fingerprint() != a.fingerprint()
    assert a.config()["path"] == str(Path(path).resolve()) and "conv_spec" in a.config()


def test_bfloat16_compute_runs_and_stays_close(model_dirs):
    path = str(model_dirs["like_base"])
    wav, mask = _batch(_clips())
    with torch.no_grad():
        reference = Emotion2vecEncoder(path)(wav, mask)
        fast = Emotion2vecEncoder(path, compute_dtype="bfloat16")(wav, mask)
    assert fast.frames.dtype == torch.float32 and torch.equal(fast.mask, reference.mask)
    valid = reference.mask
    # Measured on this tiny model: max |diff| ~0.02-0.05 of unit-RMS frames (bf16 has 8 mantissa bits).
    assert (fast.frames - reference.frames)[valid].abs().max() < 0.15
    cosine = torch.nn.functional.cosine_similarity(fast.frames[valid], reference.frames[valid], dim=-1)
    assert cosine.min() > 0.995
    assert fast.frames[~valid].abs().sum() == 0
    with pytest.raises(ValueError, match="compute_dtype"):
        Emotion2vecEncoder(path, compute_dtype="float16")


# -- the model directory and hub ids -----------------------------------------------------
def test_writer_produces_funasr_format(model_dirs):
    directory = model_dirs["like_base"]
    assert sorted(p.name for p in directory.iterdir()) == ["config.yaml", "model.pt", "tokens.txt"]
    config = OmegaConf.load(directory / "config.yaml")
    assert config.model == "Emotion2vec" and config.tokenizer == "CharTokenizer"
    assert config.model_conf.modalities.audio.feature_encoder_spec == e2v_checkpoints.TINY_CONV_SPEC
    assert (directory / "tokens.txt").read_text().splitlines() == LABELS
    assert not (model_dirs["no_head"] / "tokens.txt").exists()


def test_broken_model_dirs_give_errors_naming_file_and_problem(model_dirs, tmp_path):
    import shutil

    def copy(name: str) -> Path:
        return Path(shutil.copytree(model_dirs["like_base"], tmp_path / name))

    no_tokens = copy("no_tokens")
    (no_tokens / "tokens.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"names tokenizer 'CharTokenizer' but .* has no tokens.txt"):
        Emotion2vecEncoder(str(no_tokens))

    no_unk = copy("no_unk")
    (no_unk / "tokens.txt").write_text("angry\nhappy\n")
    with pytest.raises(ValueError, match=r"no_unk/tokens.txt has no '<unk>' line"):
        Emotion2vecEncoder(str(no_unk))

    fewer = copy("fewer_labels")
    (fewer / "tokens.txt").write_text("angry\nhappy\n<unk>\n")
    with pytest.raises(ValueError, match=r"head in model.pt has 9 outputs but tokens.txt lists 3"):
        Emotion2vecEncoder(str(fewer))

    other_shape = copy("other_config")
    config = OmegaConf.load(other_shape / "config.yaml")
    config.model_conf.depth = 3
    config.model_conf.modalities.audio.model_depth = 3
    OmegaConf.save(config, other_shape / "config.yaml")
    with pytest.raises(ValueError, match=r"model.pt: the state dict does not match .*config.yaml.*missing blocks\.2"):
        Emotion2vecEncoder(str(other_shape))

    not_a_model = copy("wrong_model")
    config = OmegaConf.load(not_a_model / "config.yaml")
    config.model = "Paraformer"
    OmegaConf.save(config, not_a_model / "config.yaml")
    with pytest.raises(ValueError, match=r"config.yaml: 'model' is 'Paraformer'"):
        Emotion2vecEncoder(str(not_a_model))

    with pytest.raises(FileNotFoundError, match="config.yaml, model.pt missing"):
        Emotion2vecEncoder(str(tmp_path))


def test_wrapped_state_dict_is_read_like_funasr(model_dirs, tmp_path):
    import shutil

    wrapped = Path(shutil.copytree(model_dirs["like_base"], tmp_path / "wrapped"))
    state = torch.load(wrapped / "model.pt", weights_only=True)
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, wrapped / "model.pt")
    a, b = Emotion2vecEncoder(str(model_dirs["like_base"])), Emotion2vecEncoder(str(wrapped))
    assert a.source_fingerprint() == b.source_fingerprint()


@pytest.mark.parametrize("model_id", ["iic/emotion2vec_plus_base", "emotion2vec/emotion2vec_plus_base"])
def test_offline_hub_id_fails_fast_with_local_dir_instructions(model_id, monkeypatch, tmp_path):
    hang = threading.Event()

    def unreachable(*args, **kwargs):  # a DNS lookup that never answers
        hang.wait(60)
        raise OSError("timed out")

    monkeypatch.setattr(e2v_checkpoints.socket, "create_connection", unreachable)
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    try:
        with pytest.raises(OSError) as error:
            Emotion2vecEncoder(model_id)
    finally:
        hang.set()
    assert time.perf_counter() - started < 10
    message = str(error.value)
    assert repr(model_id) in message and "model.speech.path=/path/to/emotion2vec_plus_base" in message
    assert "config.yaml" in message and "modelscope download --model iic/emotion2vec_plus_base" in message


def test_path_that_is_neither_dir_nor_hub_id(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a model directory nor a hub id"):
        Emotion2vecEncoder(str(tmp_path / "missing" / "dir"))


# -- configs -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["emotion2vec_base", "emotion2vec_plus_seed", "emotion2vec_plus_base",
                                  "emotion2vec_plus_large"])
def test_speech_configs_build_the_encoder(name, model_dirs):
    config = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
    assert config._target_ == "mmemo.encoders.emotion2vec.Emotion2vecEncoder"
    assert config.path == f"iic/{name}" and config.trainable == "frozen" and config.layer == "last"
    accepted = set(inspect.signature(Emotion2vecEncoder).parameters)
    assert set(config) - {"_target_"} <= accepted
    from hydra.utils import instantiate

    encoder = instantiate(config, path=str(model_dirs["like_base"]))  # model.speech.path=/local/dir
    assert isinstance(encoder, Emotion2vecEncoder) and encoder.compute_dtype == config.compute_dtype

"""The frozen-feature cache: keyed by fingerprint, crash-safe, reports failures, feeds training."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from mmemo.data.datamodule import EmotionDataModule
from mmemo.encoders.spectral import SpectralEncoder
from mmemo.encoders.text import TransformersTextEncoder
from mmemo.features.cached import FeatureCache, Serving
from mmemo.features.extract import FeatureSource, Job, extract, open_store
from mmemo.features.store import FeatureStore, list_stores


def tiny_speech_encoder(seed=0, **options):
    torch.manual_seed(seed)
    return SpectralEncoder(dim=16, ff_dim=32, heads=2, transformer_layers=1, trainable="frozen", **options)


OPTIONS = {"cache": "auto", "device": "cpu", "batch_size": 4, "storage": "frames", "dtype": "float32"}
DEFAULT_SERVING = Serving()


def cached_module(corpus, cache_dir, encoder, serving=DEFAULT_SERVING, **options):
    """A data module whose speech is served from ``encoder``'s store (as a training run does)."""
    module = EmotionDataModule(str(corpus), 1, use_text=False, decode_audio=False, **options)
    module.setup()
    cache = FeatureCache({"speech": encoder}, OPTIONS | {"dir": str(cache_dir)}, serving)
    cache.attach(module)
    return module, cache.sources["speech"]


def test_cached_features_equal_the_encoder_and_training_reads_them(tiny_corpus, tmp_path):
    encoder = tiny_speech_encoder()
    module, source = cached_module(tiny_corpus, tmp_path, encoder)
    assert len(source.store) == 64
    batch = next(iter(module.train_dataloader()))
    assert "audio" not in batch and batch["speech_features"].shape[-1] == 16
    train = module.datasets["train"]
    wave = torch.from_numpy(module.load_wave(train.examples[0].utterance))[None]
    with torch.no_grad():
        direct = encoder(wave, torch.ones_like(wave, dtype=torch.bool)).frames[0]
    np.testing.assert_allclose(source.store.get(train.items["speech"][0]), direct.numpy(), atol=1e-5)
    np.testing.assert_allclose(train[0]["speech_features"], direct.numpy(), atol=1e-5)


def test_a_second_run_encodes_nothing(tiny_corpus, tmp_path, monkeypatch):
    cached_module(tiny_corpus, tmp_path, tiny_speech_encoder())
    encoder = tiny_speech_encoder()
    monkeypatch.setattr(encoder, "forward", lambda *a: pytest.fail("the encoder ran although all is cached"))
    module, _ = cached_module(tiny_corpus, tmp_path, encoder)
    assert sum(len(d) for d in module.datasets.values()) == 64


def test_a_fingerprint_change_never_reuses_stale_features(tiny_corpus, tmp_path):
    first = open_store(tiny_speech_encoder(), tmp_path)
    changed = tiny_speech_encoder()
    with torch.no_grad():
        changed.convs[0].weight[0, 0, 0] += 1e-3
    assert open_store(changed, tmp_path).folder != first.folder
    assert open_store(tiny_speech_encoder(features="mfcc"), tmp_path).folder != first.folder
    assert open_store(tiny_speech_encoder(), tmp_path, storage="pooled").folder != first.folder
    assert open_store(tiny_speech_encoder(), tmp_path).folder == first.folder
    with pytest.raises(ValueError, match="only frozen encoders"):
        open_store(SpectralEncoder(dim=16, ff_dim=32, heads=2), tmp_path)


def test_changed_audio_is_encoded_again(tiny_corpus, tmp_path):
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    _, source = cached_module(corpus, tmp_path / "cache", tiny_speech_encoder())
    victim = sorted((corpus / "wav" / "spk01").glob("*.wav"))[0]
    os.utime(victim, ns=(time.time_ns(), time.time_ns() + 10**9))
    _, again = cached_module(corpus, tmp_path / "cache", tiny_speech_encoder())
    assert len(again.store) == 65  # the touched clip got a new entry


def test_a_corrupt_clip_is_reported_and_the_rest_are_cached(tiny_corpus, tmp_path):
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    victim = sorted((corpus / "wav" / "spk02").glob("*.wav"))[3]
    victim.write_bytes(b"RIFF garbage")
    from mmemo.data.audio import UnusableAudioError

    with pytest.raises(UnusableAudioError, match=rf"(?s)1 unusable clip.*{victim.stem}"):
        cached_module(corpus, tmp_path / "cache", tiny_speech_encoder())
    store = open_store(tiny_speech_encoder(), tmp_path / "cache")
    assert len(store) == 63  # everything else was cached before the error
    failures = [json.loads(line) for line in (store.folder / "failures.jsonl").read_text().splitlines()]
    assert failures[0]["key"] == victim.stem and "corrupt" in failures[0]["reason"]
    module, _ = cached_module(corpus, tmp_path / "cache", tiny_speech_encoder(), on_bad_audio="skip",
                              output_dir=str(tmp_path / "run"))
    assert sum(len(d) for d in module.datasets.values()) == 63
    assert victim.stem in (tmp_path / "run" / "skipped_audio.tsv").read_text()


KILLED_EXTRACTION = textwrap.dedent("""
    import sys, time, torch
    from mmemo.data.datamodule import EmotionDataModule
    from mmemo.encoders.spectral import SpectralEncoder
    from mmemo.features.cached import FeatureCache, Serving
    torch.manual_seed(0)
    encoder = SpectralEncoder(dim=16, ff_dim=32, heads=2, transformer_layers=1, trainable="frozen")
    forward = encoder.forward
    def slow_forward(*args):
        time.sleep(0.25)
        return forward(*args)
    encoder.forward = slow_forward
    module = EmotionDataModule(sys.argv[1], 1, use_text=False, decode_audio=False)
    module.setup()
    import mmemo.features.cached as cached
    original = cached.extract
    cached.extract = lambda *a, **k: original(*a, **{**k, "shard_items": 4})
    options = {"cache": "auto", "device": "cpu", "batch_size": 2, "storage": "frames", "dtype": "float32",
               "dir": sys.argv[2]}
    FeatureCache({"speech": encoder}, options, Serving()).attach(module)
""")


def test_an_extraction_killed_halfway_resumes_to_identical_features(tiny_corpus, tmp_path):
    script = tmp_path / "extract.py"
    script.write_text(KILLED_EXTRACTION)
    cache = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, str(script), str(tiny_corpus), str(cache)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cache.glob("*/*/shard-*.index.json"))) < 3:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    [folder] = cache.glob("*/*")
    partial = FeatureStore(folder)
    assert 0 < len(partial) < 64, "the child was killed before it finished"
    (folder / "shard-000099.tmp1234.npy").write_bytes(b"half a file")  # debris of a killed write

    _, resumed = cached_module(tiny_corpus, cache, tiny_speech_encoder(), )
    assert not list(folder.glob("*.tmp*"))
    _, clean = cached_module(tiny_corpus, tmp_path / "clean", tiny_speech_encoder())
    assert len(resumed.store) == len(clean.store) == 64
    for item in clean.store._entries:
        assert np.array_equal(resumed.store.get(item), clean.store.get(item)), item


def test_pooled_float16_and_all_layer_storage(tiny_bert_dir, tmp_path):
    texts = ["so angry today", "what a happy trip", "the report is on the desk"]
    jobs = [Job(f"t{i}", len(t), (lambda t=t: t)) for i, t in enumerate(texts)]
    encoder = TransformersTextEncoder(str(tiny_bert_dir), memory_size=0)
    pooled = FeatureSource("text", encoder, open_store(encoder, tmp_path, storage="pooled", dtype="float16"))
    extract(pooled, jobs)
    with torch.no_grad():
        out = encoder(texts)
    mean = (out.frames.sum(1) / out.mask.sum(1, keepdim=True)).numpy()
    assert pooled.store.get("t1").shape == (1, 32) and pooled.store.get("t1").dtype == np.float16
    np.testing.assert_allclose(pooled.store.get("t1")[0].astype(np.float32), mean[1], atol=2e-3)

    weighted = TransformersTextEncoder(str(tiny_bert_dir), layer="weighted")
    layered = FeatureSource("text", weighted, open_store(weighted, tmp_path))
    extract(layered, jobs)
    stored = layered.store.get("t0")
    assert stored.shape[1:] == (3, 32)  # [T, layers, D]
    features = torch.from_numpy(stored)[None]
    rebuilt = weighted.from_features(features, torch.ones(1, stored.shape[0], dtype=torch.bool))
    with torch.no_grad():
        direct = weighted([texts[0]])
    torch.testing.assert_close(rebuilt.frames, direct.frames, atol=1e-5, rtol=1e-5)
    rows = list_stores(tmp_path)
    assert {r["storage"] for r in rows} == {"pooled", "frames"} and all(r["items"] == 3 for r in rows)


def test_pooled_serving_gives_a_pooling_head_the_same_input(tiny_corpus, tmp_path):
    from mmemo.data.datasets import collate
    from mmemo.fusion import build_fusion
    from mmemo.fusion.base import head_needs_frames

    assert not head_needs_frames("late") and head_needs_frames("cross_attention") and head_needs_frames("emobox")
    encoder = tiny_speech_encoder()
    frames_module, source = cached_module(tiny_corpus, tmp_path, encoder)
    pooled_module, _ = cached_module(tiny_corpus, tmp_path, encoder, serving=Serving(pooled=True))
    torch.manual_seed(0)
    head = build_fusion("gated", {"speech": 16}, 4).eval()
    items = list(range(6))
    outputs = []
    for module in (frames_module, pooled_module):
        batch = collate([module.datasets["test"][i] for i in items])
        from mmemo.encoders.base import EncoderOutput

        feats = {"speech": EncoderOutput(batch["speech_features"], batch["speech_features_mask"],
                                         moments=batch.get("speech_features_moments", False))}
        with torch.no_grad():
            outputs.append(head(feats).logits)
            training = copy.deepcopy(head).train()  # standardised with the batch's own statistics: the same too
            torch.manual_seed(1)  # the same dropout draws
            outputs.append(training(feats).logits)
    pooled = collate([pooled_module.datasets["test"][0]])
    assert pooled["speech_features"].shape[1] == 2 and pooled["speech_features_moments"]  # mean, mean of squares
    torch.testing.assert_close(outputs[0], outputs[2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outputs[1], outputs[3], atol=1e-4, rtol=1e-4)


def test_windowed_serving_gives_cross_attention_the_same_input(tiny_corpus, tmp_path):
    """Frames averaged in windows where they are read == the head averaging full-rate frames itself."""
    from mmemo.data.datasets import collate
    from mmemo.fusion import build_fusion
    from mmemo.fusion.layers import downsample
    from mmemo.training.module import EmotionClassifier

    encoder = tiny_speech_encoder()
    frames_module, source = cached_module(tiny_corpus, tmp_path, encoder)
    windowed_module, _ = cached_module(tiny_corpus, tmp_path, encoder, serving=Serving(frame_stride={"speech": 3}))
    items = list(range(6))
    full = collate([frames_module.datasets["test"][i] for i in items])
    windowed = collate([windowed_module.datasets["test"][i] for i in items])
    assert windowed["speech_features_stride"] == 3 and "speech_features_stride" not in full
    expected, expected_mask = downsample(full["speech_features"], full["speech_features_mask"], 3)
    assert torch.equal(windowed["speech_features_mask"], expected_mask)
    torch.testing.assert_close(windowed["speech_features"][expected_mask], expected[expected_mask],
                               atol=1e-6, rtol=1e-6)

    torch.manual_seed(0)
    spec = {"_target_": "mmemo.encoders.spectral.SpectralEncoder", "dim": 16, "ff_dim": 32, "heads": 2,
            "transformer_layers": 1, "trainable": "frozen"}
    model = EmotionClassifier(["a", "b", "c", "d"], speech=spec, text=None,
                              fusion={"name": "cross_attention", "frame_stride": {"speech": 3}})
    model.encoders["speech"] = encoder  # the weights whose features the store holds
    model.eval()
    with torch.no_grad():
        assert model.encode(windowed)["speech"].stride == 3
        torch.testing.assert_close(model(windowed).logits, model(full).logits, atol=1e-5, rtol=1e-5)
    # windows of 3 cannot be re-averaged into windows of 2: a clear error, not a silent mismatch
    head = build_fusion("cross_attention", {"speech": 16}, 4, frame_stride={"speech": 2})
    with pytest.raises(ValueError, match="re-windowed"):
        head(model.encode(windowed))


def test_windows_of_all_layer_features_and_their_memory_budget(tmp_path, monkeypatch):
    import mmemo.features.store as store_module

    store = FeatureStore(tmp_path / "s", {"fingerprint": "f", "dtype": "float32"})
    layered = np.arange(7 * 2 * 3, dtype=np.float32).reshape(7, 2, 3)  # [T, L, D]
    store.write_shard(["a", "b"], [layered, layered[:2]])
    windows = store.get_windows("a", 3)
    assert windows.shape == (3, 2, 3)
    np.testing.assert_allclose(windows[0], layered[:3].mean(0))
    np.testing.assert_allclose(windows[2], layered[6])  # the ragged last window averages what is left
    assert store.get_windows("a", 1) is not None and store.get_windows("a", 1).shape == (7, 2, 3)
    monkeypatch.setattr(store_module, "WINDOW_MEMORY_BUDGET", 0)  # over budget: recomputed, still correct
    np.testing.assert_allclose(store.get_windows("b", 3), layered[:2].mean(0, keepdims=True))
    assert ("b", 3) not in store._windows and ("a", 3) in store._windows


def test_jobs_in_one_process_share_a_store_and_see_other_writers(tmp_path):
    encoder = tiny_speech_encoder()
    first = open_store(encoder, tmp_path)
    assert open_store(encoder, tmp_path) is first  # a multirun's next job reuses what the store remembers
    other_process = FeatureStore(first.folder)  # e.g. a parallel job filling the same cache
    other_process.write_shard(["late-item"], [np.ones((3, 16), dtype=np.float32)])
    assert "late-item" not in first
    reopened = open_store(encoder, tmp_path)
    assert reopened is first and "late-item" in first and first.get("late-item").shape == (3, 16)
    first.write_shard(["mine"], [np.zeros((2, 16), dtype=np.float32)])  # no shard-number clash
    assert len(list(first.folder.glob("shard-*.index.json"))) == 2

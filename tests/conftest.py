"""Shared fixtures. Tiny corpora and models are *built* here, never downloaded or committed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

SR = 16_000


def tone(seconds: float = 1.0, freq: float = 220.0, sr: int = SR, channels: int = 1, amplitude: float = 0.3):
    t = np.arange(int(seconds * sr)) / sr
    wave = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def write_wav(path: Path, wave=None, sr: int = SR, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), tone() if wave is None else wave, sr, subtype=subtype)
    return path


def write_jsonl(path: Path, rows: list) -> Path:
    """Rows may be dicts (dumped as JSON) or raw strings (written as-is, for malformed lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """The real demo-corpus generator at toy size: 4 speakers x 16 utterances, 2 folds."""
    from mmemo.data.synthetic import synthesize_corpus

    return synthesize_corpus(tmp_path_factory.mktemp("corpus") / "demo", seed=3, speakers=4,
                             utterances_per_speaker=16)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A random-weight BERT (2 layers, 32-d) saved with its tokenizer in the transformers format."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny_bert")
    words = ("the a i you we is are not so very happy sad angry calm meeting report car trip today "
             "about this that what can't believe it again love hate good bad tired fine .").split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(words))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


TINY_SPECTRAL = ["++model.speech.dim=32", "++model.speech.ff_dim=64", "++model.speech.transformer_layers=1",
                 "++model.speech.heads=2"]


@pytest.fixture
def tiny_base_overrides(tiny_corpus, tiny_bert_dir, tmp_path) -> list[str]:
    """Data, text encoder, logging and paths for the tiny fixtures (no speech-encoder options)."""
    return [
        f"data.root={tiny_corpus}", "data.batch_size=8",  # the corpus exists: data=demo never synthesises
        f"++model.text.path={tiny_bert_dir}", "logger=csv", "callbacks.progress_bar.refresh_rate=0",
        f"paths.root_dir={tmp_path}",
    ]


@pytest.fixture
def tiny_overrides(tiny_base_overrides) -> list[str]:
    """Hydra overrides that make the default (spectral + text) config run in seconds on the fixtures."""
    return [*tiny_base_overrides, *TINY_SPECTRAL]


@pytest.fixture(scope="session")
def tiny_whisper_pt(tmp_path_factory) -> Path:
    """A random-weight openai-whisper model (3 encoder layers, 32-d) saved as openai-whisper saves it."""
    from dataclasses import asdict

    import torch
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2, n_audio_layer=3,
                           n_vocab=51864, n_text_ctx=16, n_text_state=32, n_text_head=2, n_text_layer=1)
    torch.manual_seed(0)
    model = Whisper(dims)
    torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)  # torch.empty otherwise (may hold NaN)
    path = tmp_path_factory.mktemp("whisper") / "tiny.pt"
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def emobox_dir(tmp_path_factory) -> Path:
    """The real EmoBox split files (metadata only) for IEMOCAP, MELD, RAVDESS and CREMA-D.

    They are committed compressed (tests/data/emobox.tar.xz, 0.5 MB, EmoBox's MIT-licensed
    metadata, unmodified) so the tests read the files exactly as EmoBox ships them on any machine.
    """
    import tarfile

    target = tmp_path_factory.mktemp("emobox_data")
    with tarfile.open(Path(__file__).parent / "data" / "emobox.tar.xz") as archive:
        archive.extractall(target, filter="data")
    return target / "emobox"


@pytest.fixture(scope="session")
def tiny_e2v_dir(tmp_path_factory) -> Path:
    """funasr's real Emotion2vec at toy size (random weights, 9-label head) as a FunASR model folder."""
    import torch

    from mmemo.encoders.emotion2vec_checkpoints import (
        build_funasr_model,
        save_funasr_model_dir,
        tiny_model_conf,
    )

    labels = ["angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "<unk>"]
    torch.manual_seed(0)
    conf = tiny_model_conf()
    return save_funasr_model_dir(build_funasr_model(conf, num_labels=len(labels)), conf,
                                 tmp_path_factory.mktemp("e2v") / "tiny", labels)


# -- databases: every results-store and monitor test runs on SQLite and on PostgreSQL -----------
@pytest.fixture(scope="session")
def postgres_server():
    """One throw-away PostgreSQL server for the session (tests/pg_server.py)."""
    from pg_server import REQUIRED, start_server

    try:
        server = start_server()
    except (FileNotFoundError, RuntimeError) as error:
        if REQUIRED:
            pytest.fail(f"MMEMO_REQUIRE_POSTGRES=1 but no PostgreSQL server could be started: {error}")
        pytest.skip(f"PostgreSQL not available ({error})")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty results database: a SQLite file, or a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'results.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = server.create_database()
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> Path:
    """A tiny random llama GGUF (F32) with SmolLM2's tokenizer cut to 2,048 tokens (tests/tiny_llms.py)."""
    from tiny_llms import write_tiny_gguf

    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def tiny_llm_tokenizer(tiny_gguf):
    from mmemo.encoders.llm import load_causal_lm

    return load_causal_lm(str(tiny_gguf))[0]


@pytest.fixture(scope="session")
def tiny_llm_dirs(tmp_path_factory, tiny_llm_tokenizer) -> dict[str, Path]:
    """Tiny random Llama, Qwen2 and Gemma3 causal LMs saved with save_pretrained."""
    from tiny_llms import save_tiny_hf

    root = tmp_path_factory.mktemp("tiny_llms")
    return {arch: save_tiny_hf(root / arch, arch, tiny_llm_tokenizer) for arch in ("llama", "qwen2", "gemma3")}

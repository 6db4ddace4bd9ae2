"""Audio loading: formats, mono, 16 kHz, cropping, and clear errors for bad files."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile
from conftest import tone, write_wav

from mmemo.data.audio import AudioError, load_audio


def test_stereo_44k_flac_becomes_mono_16k(tmp_path):
    stereo = tone(2.0, sr=44_100, channels=2)
    stereo[:, 1] *= 0.5
    path = write_wav(tmp_path / "x.flac", stereo, sr=44_100)
    clip = load_audio(path)
    assert clip.wave.ndim == 1 and clip.wave.dtype == np.float32
    assert abs(len(clip.wave) - 32_000) <= 2
    assert (clip.source_rate, clip.source_channels) == (44_100, 2)
    # The downmix is the channel mean: 0.75 of the left channel's amplitude.
    assert np.abs(clip.wave).max() == pytest.approx(0.75 * 0.3, rel=0.02)


@pytest.mark.parametrize("policy, expected_start", [("start", 0.0), ("center", 3.0)])
def test_long_clips_are_cropped_by_policy(tmp_path, policy, expected_start):
    ramp = np.linspace(0.0, 0.9, 8 * 16_000, dtype=np.float32)  # value encodes position
    path = write_wav(tmp_path / "long.wav", ramp, subtype="FLOAT")
    clip = load_audio(path, max_seconds=2.0, crop=policy)
    assert clip.cropped and clip.seconds == 2.0 and clip.source_seconds == 8.0
    assert clip.wave[0] == pytest.approx(0.9 * expected_start / 8.0, abs=1e-3)


def test_segment_is_read_from_start_to_end(tmp_path):
    ramp = np.linspace(0.0, 0.9, 4 * 16_000, dtype=np.float32)
    path = write_wav(tmp_path / "dialog.wav", ramp, subtype="FLOAT")
    clip = load_audio(path, start=1.0, end=2.5)
    assert clip.seconds == 1.5
    assert clip.wave[0] == pytest.approx(0.9 / 4, abs=1e-3)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(AudioError, match=r"key 'k1', file .*empty.wav\): empty file"):
        load_audio(path, key="k1")


def test_header_only_wav_has_no_samples(tmp_path):
    path = tmp_path / "header.wav"
    soundfile.write(str(path), np.zeros(0, np.float32), 16_000)
    with pytest.raises(AudioError, match="no audio samples"):
        load_audio(path, key="k2")


def test_all_zero_clip(tmp_path):
    path = write_wav(tmp_path / "zero.wav", np.zeros(16_000, np.float32))
    with pytest.raises(AudioError, match="all samples are zero"):
        load_audio(path, key="k3")


def test_non_audio_and_truncated_files(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all\n" * 50)
    with pytest.raises(AudioError, match=r"notes.wav\): corrupt or not an audio file"):
        load_audio(text, key="k4")
    good = write_wav(tmp_path / "good.wav")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(good.read_bytes()[:30])  # a header cut in the middle
    with pytest.raises(AudioError, match=r"key 'k5', file .*broken.wav\)"):
        load_audio(broken, key="k5")


def test_nan_samples(tmp_path):
    wave = tone()
    wave[100] = np.nan
    path = write_wav(tmp_path / "nan.wav", wave, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "nope.wav", key="k6")


def test_formats_libsndfile_cannot_read_go_through_ffmpeg(tmp_path):
    source = write_wav(tmp_path / "src.wav", tone(1.5, sr=48_000), sr=48_000)
    target = tmp_path / "clip.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(source), "-c:a", "aac", str(target)], check=True)
    clip = load_audio(target, max_seconds=1.0)
    assert clip.cropped and clip.seconds == 1.0
    assert np.abs(clip.wave).max() > 0.1

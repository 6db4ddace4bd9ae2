"""Predictor and StreamSession on tiny models: labels, frame/utterance agreement, errors, streaming."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmemo.inference import Predictor, StreamSession
from mmemo.inference.outputs import INDEX_FILE, render_predictions, save_embeddings
from mmemo.inference.timeline import Segment, merge_segments, window_bounds
from mmemo.training.module import EmotionClassifier
from tests.conftest import write_jsonl, write_wav

SR = 16_000
TINY_SPECTRAL = {"_target_": "mmemo.encoders.spectral.SpectralEncoder", "dim": 32, "ff_dim": 64,
                 "transformer_layers": 1, "heads": 2, "dropout": 0.0}


def noise(seconds: float, seed: int, amplitude: float = 0.1) -> np.ndarray:
    """Amplitude-modulated noise: stationary enough for windowed encoders, varied enough to score."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t + seed)
    return (amplitude * envelope * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def e2v(tiny_e2v_dir) -> Predictor:
    return Predictor.from_source(tiny_e2v_dir, batch_seconds=8.0)


def classifier(fusion: str, seed: int = 0) -> EmotionClassifier:
    torch.manual_seed(seed)
    model = EmotionClassifier(["angry", "happy", "neutral", "sad"], speech=dict(TINY_SPECTRAL),
                              fusion={"name": fusion, "dropout": 0.0})
    return model.eval()


# -- loading -------------------------------------------------------------------------------
def test_funasr_dir_gives_the_nine_labels_in_tokens_txt_order(e2v, tiny_e2v_dir):
    tokens = (tiny_e2v_dir / "tokens.txt").read_text().split()
    assert e2v.classes == tokens == ["angry", "disgusted", "fearful", "happy", "neutral", "other", "sad",
                                     "surprised", "<unk>"]
    (prediction,) = e2v.predict_waveforms([noise(1.0, 0)], ["x"])
    assert list(prediction.scores) == tokens
    assert prediction.label == max(prediction.scores, key=prediction.scores.get)
    assert prediction.confidence == pytest.approx(max(prediction.scores.values()))
    assert sum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert e2v.frame_rate == 50.0 and e2v.model_id == str(tiny_e2v_dir)


def test_bilingual_funasr_labels_become_their_english_names_in_the_same_order(tmp_path):
    from mmemo.encoders.emotion2vec_checkpoints import build_funasr_model, save_funasr_model_dir, tiny_model_conf

    tokens = ["生气/angry", "厌恶/disgusted", "恐惧/fearful", "开心/happy", "中立/neutral", "其他/other", "难过/sad",
              "吃惊/surprised", "<unk>"]  # the released emotion2vec+ tokens.txt
    conf = tiny_model_conf()
    folder = save_funasr_model_dir(build_funasr_model(conf, num_labels=9), conf, tmp_path / "plus", tokens)
    predictor = Predictor.from_source(folder)
    assert predictor.classes == [t.split("/")[-1] for t in tokens] and predictor.model.raw_labels == tokens


def test_hub_id_offline_fails_fast_with_instructions(monkeypatch):
    from mmemo.encoders import emotion2vec_checkpoints

    monkeypatch.setattr(emotion2vec_checkpoints, "_host_reachable", lambda host, timeout=3.0: False)
    monkeypatch.setattr(emotion2vec_checkpoints, "_cached_snapshot", lambda model_id, hub: None)
    with pytest.raises(OSError, match="cannot be reached.*modelscope download"):
        Predictor.from_source("iic/emotion2vec_plus_base")
    with pytest.raises(FileNotFoundError, match="model not found"):
        Predictor.from_source("/nonexistent/best.ckpt")


# -- frame and utterance agreement ---------------------------------------------------------
def test_e2v_frame_and_utterance_output_agree(e2v):
    """The head is linear on mean-pooled frames: utterance logits = head(pooled frames) = mean of frame logits."""
    waves = [noise(1.3, 1), noise(0.6, 2)]
    predictions = e2v.predict_waveforms(waves, ["a", "b"], granularity="frame", embeddings=True)
    for wave, prediction in zip(waves, predictions):
        frames = e2v.speech_frames(wave)
        timeline = prediction.timeline
        assert timeline.scores.shape == (len(frames), 9) and timeline.times.shape == (len(frames),)
        np.testing.assert_allclose(prediction.embedding, frames.mean(0), atol=1e-5)
        np.testing.assert_allclose(e2v.utterance_logits_of_frames(frames), prediction.logits, atol=1e-5)
        np.testing.assert_allclose(timeline.logits.mean(0), prediction.logits, atol=1e-5)
        # A window covering the whole clip at every frame is the utterance itself.
        whole = e2v.frame_logits(wave, smooth=2 * len(frames))[1]
        np.testing.assert_allclose(whole, np.repeat(prediction.logits[None], len(frames), 0), atol=1e-5)
        assert not np.allclose(timeline.scores, timeline.scores[:1])  # frames do differ


def test_smoothing_is_the_head_on_a_moving_window(e2v):
    wave = noise(1.0, 4)
    _, single = e2v.frame_logits(wave, smooth=1)
    _, smoothed = e2v.frame_logits(wave, smooth=5)
    starts, stops = window_bounds(len(single), 5)
    expected = np.stack([single[a:b].mean(0) for a, b in zip(starts, stops)])  # linear head: mean of logits
    np.testing.assert_allclose(smoothed, expected, atol=1e-5)
    assert np.abs(np.diff(smoothed, axis=0)).mean() < np.abs(np.diff(single, axis=0)).mean()


@pytest.mark.parametrize("fusion", ["cross_attention", "concat"])
def test_mmemo_heads_frame_windows_are_the_head_on_that_stretch_of_frames(fusion):
    """For any head, frame t's score is the head on its window of frames; the whole clip gives the utterance."""
    predictor = Predictor.from_classifier(classifier(fusion), "tiny")
    wave = noise(1.2, 5)
    (prediction,) = predictor.predict_waveforms([wave], ["x"], granularity="frame", smooth=3)
    frames = predictor.speech_frames(wave)
    starts, stops = window_bounds(len(frames), 3)
    for t in (0, len(frames) // 2, len(frames) - 1):
        np.testing.assert_allclose(prediction.timeline.logits[t],
                                   predictor.utterance_logits_of_frames(frames[starts[t]:stops[t]]), atol=1e-4)
    whole = predictor.frame_logits(wave, smooth=2 * len(frames))[1]
    np.testing.assert_allclose(whole, np.repeat(prediction.logits[None], len(frames), 0), atol=1e-4)


def test_batched_prediction_equals_one_clip_at_a_time(e2v):
    waves = [noise(s, i) for i, s in enumerate((0.4, 1.7, 0.9, 1.1))]
    together = e2v.predict_waveforms(waves, list("abcd"), granularity="frame", embeddings=True)
    for wave, batched in zip(waves, together):
        (alone,) = e2v.predict_waveforms([wave], ["x"], granularity="frame", embeddings=True)
        np.testing.assert_allclose(batched.logits, alone.logits, atol=1e-4)
        np.testing.assert_allclose(batched.timeline.scores, alone.timeline.scores, atol=1e-4)
        np.testing.assert_allclose(batched.embedding, alone.embedding, atol=1e-4)
    assert [p.audio_id for p in together] == list("abcd")  # input order, whatever the batching


def test_long_clip_is_cropped_for_the_utterance_but_fully_timed(tiny_e2v_dir):
    predictor = Predictor.from_source(tiny_e2v_dir, max_seconds=2.0)
    wave = noise(5.0, 6)
    (utterance,) = predictor.predict_waveforms([wave], ["long"])
    (cropped,) = predictor.predict_waveforms([wave[: 2 * SR]], ["first 2 s"])
    assert utterance.cropped and not cropped.cropped and utterance.duration == pytest.approx(5.0)
    np.testing.assert_allclose(utterance.logits, cropped.logits, atol=1e-5)
    (framed,) = predictor.predict_waveforms([wave], ["long"], granularity="frame")
    assert len(framed.timeline.times) == (len(wave) - 400) // 320 + 1  # every frame of the 5 s, none twice
    assert np.all(np.diff(framed.timeline.times) > 0) and framed.timeline.segments[-1].end == pytest.approx(5.0)


# -- segments and outputs ------------------------------------------------------------------
def test_segments_merge_runs_of_the_same_top_label():
    classes = ["angry", "neutral"]
    scores = np.array([[0.2, 0.8], [0.1, 0.9], [0.7, 0.3], [0.9, 0.1], [0.4, 0.6]])
    times = (np.arange(5) + 0.5) / 2.0  # 2 frames/s
    segments = merge_segments(times, scores, classes, 2.0, duration=2.6)
    assert segments == [Segment(0.0, 1.0, "neutral", pytest.approx(0.85)),
                        Segment(1.0, 2.0, "angry", pytest.approx(0.8)),
                        Segment(2.0, 2.6, "neutral", pytest.approx(0.6))]
    assert str(segments[0]) == "0.0–1.0 s neutral (0.85)"


def test_bad_waveforms_are_reported_and_the_rest_scored(e2v):
    waves = [noise(0.5, 1), np.full(800, np.nan, np.float32), np.zeros(0, np.float32), noise(0.5, 2)]
    predictions = e2v.predict_waveforms(waves, ["ok1", "nan", "empty", "ok2"])
    assert [p.error is None for p in predictions] == [True, False, False, True]
    assert "nan: waveform contains NaN" in predictions[1].error and "empty waveform" in predictions[2].error
    assert predictions[1].label is None and predictions[1].scores == {}
    with pytest.raises(ValueError, match="granularity"):
        e2v.predict_waveforms(waves[:1], ["x"], granularity="word")


def test_corrupt_and_empty_files_in_a_folder_are_reported_and_the_rest_succeed(e2v, tmp_path):
    folder = tmp_path / "calls"
    for i in range(3):
        write_wav(folder / "day1" / f"clip{i}.wav", noise(0.5 + 0.3 * i, i))
    (folder / "day1" / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.txt").write_text("not audio, not picked up")
    predictions = e2v.predict_files([folder], progress=False)
    by_id = {p.audio_id.removeprefix(str(folder) + "/"): p for p in predictions}
    assert sorted(by_id) == ["day1/clip0.wav", "day1/clip1.wav", "day1/clip2.wav", "day1/corrupt.wav", "empty.wav"]
    assert "corrupt.wav" in by_id["day1/corrupt.wav"].error and "corrupt" in by_id["day1/corrupt.wav"].error
    assert "empty file" in by_id["empty.wav"].error and "empty.wav" in by_id["empty.wav"].error
    for i in range(3):
        assert by_id[f"day1/clip{i}.wav"].error is None and by_id[f"day1/clip{i}.wav"].label in e2v.classes
    text = render_predictions(predictions, "csv", e2v.classes)
    assert text.count("\n") == 6 and "empty file" in text


def test_manifest_lines_are_predicted_and_bad_lines_named_by_file_and_line(e2v, tmp_path):
    write_wav(tmp_path / "wav" / "a.wav", noise(0.6, 1))
    write_wav(tmp_path / "wav" / "b.wav", noise(2.0, 2))
    manifest = write_jsonl(tmp_path / "test.jsonl", [
        {"key": "a", "wav": "wav/a.wav", "emo": "hap"},
        "{not json",
        {"key": "gone", "wav": "wav/missing.wav", "emo": "ang"},
        {"key": "b_part", "wav": "wav/b.wav", "emo": "sad", "start": 0.5, "end": 1.5},
    ])
    predictions = e2v.predict_files([manifest], progress=False, granularity="frame")
    assert [p.audio_id for p in predictions] == ["a", f"{manifest}:2", "gone", "b_part"]
    assert predictions[1].error.startswith(f"{manifest}:2: bad JSON")
    assert predictions[2].error == (f"{manifest}:3: audio file not found: {tmp_path / 'wav' / 'missing.wav'} "
                                    "(key 'gone')")
    assert predictions[3].duration == pytest.approx(1.0) and predictions[3].timeline.times[-1] < 1.0


def test_embeddings_are_saved_one_npy_per_clip_with_an_index(e2v, tmp_path):
    predictions = e2v.predict_waveforms([noise(0.5, 1), noise(0.7, 2)], ["calls/a.wav", "b"], embeddings=True)
    predictions.append(e2v.predict_waveforms([np.zeros(0, np.float32)], ["broken"], embeddings=True)[0])
    index = save_embeddings(predictions, tmp_path / "emb", e2v.model_id)
    rows = [json.loads(line) for line in index.read_text().splitlines()]
    assert index.name == INDEX_FILE and [r["audio_id"] for r in rows] == ["calls/a.wav", "b"]
    for row, prediction in zip(rows, predictions):
        stored = np.load(tmp_path / "emb" / row["path"])
        assert row["dims"] == stored.shape[0] == 32 and row["model_id"] == e2v.model_id
        np.testing.assert_array_equal(stored, prediction.embedding.astype(np.float32))


# -- streaming -----------------------------------------------------------------------------
def stream(predictor: Predictor, wave: np.ndarray, chunk_samples: list[int], **options):
    session = StreamSession(predictor, **options)
    pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16).tobytes()
    parts, position, index = [], 0, 0
    while position < len(pcm):
        size = 2 * chunk_samples[index % len(chunk_samples)]
        parts.append(session.push(pcm[position: position + size]))
        position += size
        index += 1
    parts.append(session.finish())
    assert session.seconds == pytest.approx(len(wave) / SR)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_stream_equals_offline_frame_scores_away_from_the_edges(e2v):
    """Context and lookahead bring streamed frames close to the offline pass; a segment spanning it all is exact."""
    wave = noise(4.0, 7)
    wave16 = (np.clip(wave, -1, 1) * 32767).astype(np.int16).astype(np.float32) / 32768
    times, offline = e2v.frame_scores(wave16)
    options = dict(hop_seconds=1.5, context_seconds=1.0, lookahead_seconds=0.5)
    streamed_times, streamed = stream(e2v, wave, [1601, 333, 4000], **options)
    np.testing.assert_allclose(streamed_times, times)  # every frame once, on the offline time grid
    interior = slice(50, -50)  # 1 s from either end of the recording
    error = np.abs(streamed[interior] - offline[interior]).max()
    _, blind = stream(e2v, wave, [16000], hop_seconds=1.5, context_seconds=0.0, lookahead_seconds=0.0)
    assert error < 0.02 and error < np.abs(blind[interior] - offline[interior]).max() / 3
    # The result does not depend on how the audio was chunked.
    _, rechunked = stream(e2v, wave, [16000], **options)
    np.testing.assert_allclose(rechunked, streamed, atol=1e-6)
    # A hop longer than the recording sees it whole: exactly the offline scores.
    _, whole = stream(e2v, wave, [1234], hop_seconds=10.0)
    np.testing.assert_allclose(whole, offline, atol=1e-5)


def test_stream_emits_frames_within_hop_plus_lookahead(e2v):
    session = StreamSession(e2v, hop_seconds=0.5, context_seconds=0.5, lookahead_seconds=0.25)
    times, probs = session.push(noise(0.7, 1))
    assert len(times) == 0 and probs.shape == (0, 9)  # 0.75 s needed for the first hop
    times, probs = session.push(noise(0.1, 2))
    assert len(times) == 25 and times[-1] < 0.5 and probs.shape == (25, 9)
    assert session.latency_seconds == pytest.approx(0.75)


def test_malformed_chunks_raise_and_leave_the_session_usable(e2v):
    session = StreamSession(e2v)
    session.push(np.zeros(1600, np.int16).tobytes())
    with pytest.raises(ValueError, match="odd byte count"):
        session.push(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="NaN"):
        session.push(np.array([0.1, np.nan], np.float32))
    with pytest.raises(ValueError, match="mono"):
        session.push(np.zeros((2, 10), np.float32))
    with pytest.raises(ValueError, match="multiple of 4"):
        StreamSession(e2v, encoding="f32le").push(b"\x00" * 6)
    assert session.seconds == pytest.approx(0.1)
    session.push(noise(2.0, 1))
    times, _ = session.finish()
    assert session.frames_emitted == 104 and len(times) > 0
    with pytest.raises(ValueError, match="finished"):
        session.push(b"\x00\x00")


def test_stream_of_an_mmemo_model_emits_the_offline_frame_grid():
    predictor = Predictor.from_classifier(classifier("concat"), "tiny")  # spectral encoder, 25 frames/s
    for seconds in (3.37, 0.3):
        wave = noise(seconds, 3)
        times, _ = predictor.frame_scores((np.clip(wave, -1, 1) * 32767).astype(np.int16).astype(np.float32) / 32768)
        streamed_times, streamed = stream(predictor, wave, [1000, 3000])
        np.testing.assert_allclose(streamed_times, times)
        assert streamed.shape == (len(times), 4)

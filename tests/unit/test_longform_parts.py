"""The pure parts of the long-form pipeline: long-segment splitting, window votes into turns, clustering."""

from __future__ import annotations

import numpy as np
import pytest

from mmemo.errors import InvalidInput
from mmemo.longform.speakers import cluster, turns_from_windows, windows_of
from mmemo.longform.vad import VadOptions, VoiceActivity, segments_of, split_long

WINDOW = 0.032


def test_split_long_cuts_at_the_quietest_window_and_respects_the_limit():
    energy = np.ones(1000, np.float32)
    energy[400] = 0.0  # 12.8 s: inside the second half of a 20 s span
    pieces = split_long(0.0, 30.0, energy, WINDOW, 20.0)
    assert pieces[0] == (0.0, pytest.approx((400 + 0.5) * WINDOW))
    assert pieces[-1][1] == 30.0 and all(b - a <= 20.0 + 1e-9 for a, b in pieces)
    assert split_long(1.0, 5.0, energy, WINDOW, 20.0) == [(1.0, 5.0)]


def test_segments_follow_the_probabilities_with_padding_and_minimum_speech():
    probs = np.zeros(400, np.float32)
    probs[50:150] = 0.9     # 3.2 s of speech from 1.6 s
    probs[200:203] = 0.9    # a 0.1 s click: shorter than min_speech
    activity = VoiceActivity(probs, np.ones(400, np.float32), 400 * WINDOW)
    [(start, end)] = segments_of(activity, VadOptions(padding=0.1, min_speech=0.25))
    assert start == pytest.approx(1.6 - 0.1, abs=0.04) and end == pytest.approx(4.8 + 0.1, abs=0.04)
    with pytest.raises(InvalidInput, match="threshold"):
        VadOptions(threshold=1.5)


def test_windows_cover_each_segment_and_votes_make_turns_with_short_runs_absorbed():
    segments = [(0.0, 6.0)]
    windows = windows_of(segments, window=1.6, hop=0.4)
    assert windows[0] == (0.0, 1.6) and windows[-1][1] == pytest.approx(6.0)
    centres = np.array([(a + b) / 2 for a, b in windows])
    labels = (centres > 3.0).astype(int)
    labels[2] = 1  # one stray window inside speaker 0's part: not enough for a turn
    turns = turns_from_windows(segments, windows, labels, min_turn=0.5)
    assert [t.speaker for t in turns] == ["SPEAKER_00", "SPEAKER_01"]
    assert turns[0].end == pytest.approx(3.0, abs=0.5) and turns[-1].end == 6.0


def test_clustering_separates_two_voices_and_honours_a_given_count():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=256), rng.normal(size=256)
    points = np.stack([a + 0.3 * rng.normal(size=256) for _ in range(12)] +
                      [b + 0.3 * rng.normal(size=256) for _ in range(12)])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    labels = cluster(points, None)
    assert labels[:12].tolist() == [0] * 12 and labels[12:].tolist() == [1] * 12
    assert set(cluster(points, 1).tolist()) == {0}
    with pytest.raises(InvalidInput, match="num-speakers"):
        cluster(points, 0)


def test_asymmetric_padding_shares_short_pauses_and_never_overlaps():
    from mmemo.longform.vad import pad_spans

    spans = [(1.0, 2.0), (2.4, 3.0), (5.0, 6.0)]
    padded = pad_spans(spans, 0.2, 0.6, 6.3)
    assert padded[0] == (0.8, pytest.approx(2.3))   # the 0.4 s pause split 1:3 (0.2 before : 0.6 after)
    assert padded[1][0] == pytest.approx(2.3) and padded[1][1] == pytest.approx(3.6)
    assert padded[2] == (pytest.approx(4.8), 6.3)  # clipped to the file's end
    assert all(a[1] <= b[0] + 1e-9 for a, b in zip(padded, padded[1:]))
    probs = np.zeros(200, np.float32)
    probs[50:100] = 0.9
    activity = VoiceActivity(probs, np.ones(200, np.float32), 200 * WINDOW)
    [(start, end)] = segments_of(activity, VadOptions(padding=0.2, padding_after=0.6))
    assert start == pytest.approx(1.6 - 0.2, abs=0.04) and end == pytest.approx(3.2 + 0.6, abs=0.04)


def test_loading_silero_leaves_torch_threads_alone():
    """In a fresh process: the package alone drops torch to one thread; mmemo's loader keeps the setting."""
    import subprocess
    import sys

    def threads_after(code: str) -> str:
        return subprocess.run([sys.executable, "-c", "import torch; torch.set_num_threads(2); " + code +
                               "; print(torch.get_num_threads())"], capture_output=True, text=True,
                              check=True).stdout.split()[-1]

    assert threads_after("import silero_vad") == "1"  # the hazard is real
    assert threads_after("from mmemo.longform.vad import SileroVad; SileroVad()") == "2"

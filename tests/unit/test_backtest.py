"""Rule backtesting on synthetic frame scores with known events: precision, recall, latency, sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmemo.errors import InvalidInput
from mmemo.monitor.backtest import Recording, backtest, find_recordings, parse_sweep, write_report

CLASSES = ["angry", "happy", "neutral", "sad"]
RATE = 50.0


def frames(seconds: float, angry: list[tuple[float, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    times = (np.arange(int(seconds * RATE)) + 0.5) / RATE
    probs = np.tile([0.0, 0.0, 1.0, 0.0], (len(times), 1))
    for start, end, score in angry:
        rows = (times >= start) & (times < end)
        probs[rows] = [score, 0.0, 1.0 - score, 0.0]
    return times, probs


def recording() -> Recording:
    """Two angry events (2-5 s, 10-11 s) and one neutral stretch where the model is fooled (15-17 s)."""
    reference = [(0.0, 2.0, "neutral"), (2.0, 5.0, "angry"), (5.0, 10.0, "neutral"), (10.0, 11.0, "angry"),
                 (11.0, 20.0, "neutral")]
    scored = frames(20.0, [(2.2, 5.0, 0.95), (10.0, 11.0, 0.7), (15.0, 17.0, 0.8)])
    return Recording(Path("call.wav"), reference, [scored])


def rules_file(tmp_path, **changes) -> Path:
    rule = {"name": "anger", "type": "threshold", "emotion": "angry", "threshold": 0.75, "duration": 1.0,
            "cooldown": 10, **changes}
    path = tmp_path / "rules.yaml"
    path.write_text(json.dumps({"rules": [rule]}))
    return path


def test_precision_recall_and_latency_of_a_rule(tmp_path):
    [row] = backtest(rules_file(tmp_path), [recording()], CLASSES)
    # events lasting >= 1 s: both angry spans; alerts: 3.2 s (hit, 1.2 s after onset) and 16 s (false)
    assert (row["events"], row["alerts"], row["hits"], row["detected"]) == (2, 2, 1, 1)
    assert row["precision"] == 0.5 and row["recall"] == 0.5
    assert row["latency_median"] == pytest.approx(1.2, abs=0.03)
    [strict] = backtest(rules_file(tmp_path, threshold=0.9), [recording()], CLASSES)
    assert (strict["precision"], strict["recall"]) == (1.0, 0.5)
    [loose] = backtest(rules_file(tmp_path, threshold=0.6, cooldown=0), [recording()], CLASSES)
    assert loose["recall"] == 1.0 and loose["precision"] < 1.0


def test_sweep_traces_the_trade_off_and_plots_it(tmp_path):
    sweep = parse_sweep("threshold=0.5:0.95:0.05")
    assert sweep[1][0] == 0.5 and sweep[1][-1] == 0.95 and len(sweep[1]) == 10
    rows = backtest(rules_file(tmp_path, cooldown=0), [recording()], CLASSES, sweep=sweep)
    recalls = [r["recall"] for r in rows]
    assert recalls == sorted(recalls, reverse=True) and recalls[0] == 1.0 and recalls[-1] == 0.5
    paths = write_report(rows, tmp_path / "out", sweep)
    assert [p.name for p in paths] == ["backtest.json", "backtest.csv", "backtest_tradeoff.png"]
    assert paths[2].stat().st_size > 10_000
    for bad in ("threshold=0.9:0.5:0.1", "gain=1,2", "threshold=0:1:0.5", "duration=a,b"):
        with pytest.raises(InvalidInput, match="--sweep"):
            parse_sweep(bad)


def test_a_rules_file_with_classes_is_backtested_as_the_service_would_serve_it(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(json.dumps({"classes": ["angry", "neutral"], "rules": [
        {"name": "anger", "type": "threshold", "emotion": "angry", "threshold": 0.75, "duration": 1.0}]}))
    record = recording()
    times, probs = record.segments[0]
    probs = probs * 0.5
    probs[:, 1] += 0.5  # half of every frame's mass on "happy", which the file does not watch
    record.segments = [(times, probs)]
    [row] = backtest(path, [record], CLASSES)
    assert row["detected"] == 1  # renormalised over angry + neutral, the 0.95 span still fires


def test_recordings_are_found_by_rttm_and_missing_pieces_are_named(tmp_path):
    (tmp_path / "call.rttm").write_text("EMOTION call 1 0.0 1.0 <NA> angry <NA> <NA> <NA>\n")
    with pytest.raises(InvalidInput, match="no audio beside it"):
        find_recordings([tmp_path])
    (tmp_path / "call.wav").write_bytes(b"")
    assert find_recordings([tmp_path]) == [(tmp_path / "call.wav", tmp_path / "call.rttm")]
    (tmp_path / "other.wav").write_bytes(b"")
    with pytest.raises(InvalidInput, match="reference RTTM"):
        find_recordings([tmp_path / "other.wav"])

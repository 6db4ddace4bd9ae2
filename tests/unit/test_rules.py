"""Alert rules and the alert engine on synthetic frame-score timelines (no model needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mmemo.monitor.engine import AlertEngine, frames_needed
from mmemo.monitor.rules import RulesError, default_rules_path, load_rules, parse_rules
from mmemo.monitor.rules_file import RulesFile

CLASSES = ["angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "<unk>"]
RATE = 50.0  # frames per second, emotion2vec's
DT = 1 / RATE


def timeline(seconds: float, **spans: list[tuple[float, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Neutral everywhere except ``emotion=[(start_s, end_s, score), ...]`` spans (frame-aligned)."""
    frames = int(round(seconds * RATE))
    probs = np.zeros((frames, len(CLASSES)))
    probs[:, CLASSES.index("neutral")] = 1.0
    for emotion, items in spans.items():
        for start, end, score in items:
            rows = slice(int(round(start * RATE)), int(round(end * RATE)))
            probs[rows, CLASSES.index("neutral")] -= score
            probs[rows, CLASSES.index(emotion)] = score
    return (np.arange(frames) + 0.5) * DT, probs  # frame centres


def engine_for(rules: list[dict]) -> AlertEngine:
    return AlertEngine(parse_rules({"rules": rules}).fit_classes(CLASSES), CLASSES)


ANGER = {"name": "anger", "type": "threshold", "emotion": "angry", "threshold": 0.75, "duration": 2.0, "cooldown": 0}


def test_default_rules_file_is_angry_075_for_2s():
    ruleset = load_rules(default_rules_path(), CLASSES)
    (rule,) = ruleset.rules
    assert (rule.emotions, rule.threshold, rule.duration, rule.type) == (("angry",), 0.75, 2.0, "threshold")


@pytest.mark.parametrize("held_seconds, fires", [(1.98, False), (2.0, True), (3.0, True)])
def test_threshold_rule_fires_exactly_when_window_holds(held_seconds, fires):
    """100 frames (2.0 s at 50 Hz) at >= 0.75 fire; 99 frames do not."""
    times, probs = timeline(6.0, angry=[(1.0, 1.0 + held_seconds, 0.8)])
    alerts = engine_for([ANGER]).session("line-1", "call-1", DT, start_time=0.0).feed(times, probs)
    if not fires:
        assert alerts == []
        return
    assert len(alerts) == (2 if held_seconds >= 4.0 else 1)
    alert = alerts[0]
    # fires on the last frame of the first full window: frame 1.0 s + 99 frames
    assert alert.end == pytest.approx(3.0, abs=1e-6) and alert.start == pytest.approx(1.0, abs=1e-6)
    assert alert.fired_at == pytest.approx(1.0 + 99.5 * DT)
    assert alert.score == pytest.approx(0.8) and alert.rule == "anger" and alert.channel == "line-1"


def test_threshold_is_inclusive_and_a_single_dip_breaks_the_window():
    times, probs = timeline(4.0, angry=[(0.0, 2.0, 0.75)])
    assert len(engine_for([ANGER]).session("c", "a", DT, 0.0).feed(times, probs)) == 1
    probs[50, CLASSES.index("angry")] = 0.74  # one frame below the threshold at 1.0 s
    assert engine_for([ANGER]).session("c", "a", DT, 0.0).feed(times, probs) == []


def test_mean_aggregate_tolerates_a_dip():
    rule = {**ANGER, "aggregate": "mean"}
    times, probs = timeline(3.0, angry=[(0.0, 2.0, 0.8)])
    probs[50, CLASSES.index("angry")] = 0.74
    assert len(engine_for([rule]).session("c", "a", DT, 0.0).feed(times, probs)) == 1


def test_window_spans_chunks_of_a_stream():
    """Feeding the same frames in small chunks gives the same firing as one call."""
    times, probs = timeline(5.0, angry=[(0.5, 3.0, 0.9)])
    session = engine_for([ANGER]).session("c", "a", DT, 0.0)
    alerts = [a for i in range(0, len(times), 7) for a in session.feed(times[i:i + 7], probs[i:i + 7])]
    assert [round(a.end, 4) for a in alerts] == [2.5]


def test_combination_rule_fires_on_a_sum_of_emotions():
    rule = {"name": "hostile", "type": "combination", "emotions": ["angry", "disgusted"], "threshold": 0.7,
            "duration": 1.0, "cooldown": 0}
    times, probs = timeline(3.0, angry=[(0.0, 3.0, 0.4)], disgusted=[(1.0, 3.0, 0.35)])
    alerts = engine_for([rule, ANGER]).session("c", "a", DT, 0.0).feed(times, probs)
    assert [a.rule for a in alerts] == ["hostile", "hostile"]  # anger alone (0.4) never reaches 0.75
    assert alerts[0].start == pytest.approx(1.0) and alerts[0].score == pytest.approx(0.75)
    times, probs = timeline(3.0, angry=[(0.0, 3.0, 0.4)], disgusted=[(1.0, 3.0, 0.25)])  # sum 0.65
    assert engine_for([rule]).session("c", "a", DT, 0.0).feed(times, probs) == []


def test_cooldown_is_per_rule_and_channel_across_sessions():
    engine = engine_for([{**ANGER, "cooldown": 30}])
    times, probs = timeline(10.0, angry=[(0.0, 10.0, 0.9)])
    first = engine.session("line-1", "call-1", DT, start_time=1000.0).feed(times, probs)
    assert len(first) == 1  # held for 10 s, but the cooldown stops repeats
    assert engine.session("line-2", "call-2", DT, start_time=1005.0).feed(times, probs)  # other channel
    # ends before 1001.98 + 30 s
    assert engine.session("line-1", "call-3", DT, start_time=1020.0).feed(times, probs) == []
    later = engine.session("line-1", "call-4", DT, start_time=1031.0).feed(times, probs)
    # frames before 1031.98 s are cooling down; the first full window after it fires
    assert len(later) == 1 and later[0].fired_at >= 1032.0


def test_zero_cooldown_fires_again_after_a_fresh_window():
    times, probs = timeline(6.0, angry=[(0.0, 6.0, 0.9)])
    alerts = engine_for([ANGER]).session("c", "a", DT, 0.0).feed(times, probs)
    assert [round(a.end, 3) for a in alerts] == [2.0, 4.0, 6.0]


def test_rules_apply_per_channel():
    engine = engine_for([{**ANGER, "channels": ["vip"]}])
    times, probs = timeline(3.0, angry=[(0.0, 3.0, 0.9)])
    assert engine.session("support", "a", DT, 0.0).feed(times, probs) == []
    assert len(engine.session("vip", "b", DT, 0.0).feed(times, probs)) == 1


def test_frames_needed_rounds_up():
    assert frames_needed(2.0, 0.02) == 100
    assert frames_needed(0.0, 0.02) == 1
    assert frames_needed(0.05, 0.02) == 3


@pytest.mark.parametrize("change, message", [
    ({"threshold": 1.5}, "rule 'anger' (#1), field 'threshold': must be in [0, 1], got 1.5"),
    ({"type": "thresh"}, "rule 'anger' (#1), field 'type': must be one of threshold, combination"),
    ({"treshold": 0.5}, "rule 'anger' (#1), field 'treshold': unknown field"),
    ({"priority": "urgent"}, "rule 'anger' (#1), field 'priority': must be one of low, medium, high, critical"),
    ({"duration": -1}, "rule 'anger' (#1), field 'duration': must be in [0, 86400]"),
    ({"actions": [{"type": "webhook", "url": "ftp://x"}]}, "field 'actions[0].url': must be an http"),
    ({"actions": [{"type": "webhook", "url": "http://x", "retries": -1}]}, "field 'actions[0].retries'"),
])
def test_validation_errors_name_rule_and_field(change, message):
    with pytest.raises(RulesError) as error:
        parse_rules({"rules": [{**ANGER, **change}]}, "rules.yaml")
    assert message in str(error.value) and str(error.value).startswith("rules.yaml:")


def test_unknown_emotion_is_named_with_the_model_classes():
    ruleset = parse_rules({"rules": [{**ANGER, "emotion": "furious"}]}, "r.yaml")
    with pytest.raises(RulesError, match=r"rule 'anger' \(#1\), field 'emotion': 'furious' is not a class"):
        ruleset.fit_classes(CLASSES)


def test_hot_reload_swaps_rules_and_keeps_old_ones_on_error(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {name: anger, type: threshold, emotion: angry, threshold: 0.75, duration: 2}\n")
    rules_file = RulesFile(path, CLASSES)
    engine = AlertEngine(lambda: rules_file.ruleset, CLASSES)
    times, probs = timeline(3.0, sad=[(0.0, 3.0, 0.6)])
    assert engine.session("c", "a", DT, 0.0).feed(times, probs) == []
    assert rules_file.poll() is None  # unchanged file: nothing happens

    path.write_text("rules:\n  - {name: sadness, type: threshold, emotion: sad, threshold: 0.5, duration: 1}\n")
    os.utime(path, ns=(1, 10**18))  # a distinct mtime even on coarse-grained filesystems
    result = rules_file.poll()
    assert result is not None and result.changed and rules_file.version == 2
    assert [a.rule for a in engine.session("c", "b", DT, 0.0).feed(times, probs)] == ["sadness"]

    path.write_text("rules:\n  - {name: broken, type: threshold, emotion: sad, threshold: 7}\n")
    os.utime(path, ns=(1, 2 * 10**18))
    result = rules_file.poll()
    assert result.error and "rule 'broken' (#1), field 'threshold'" in result.error
    assert [r.name for r in rules_file.ruleset.rules] == ["sadness"] and rules_file.last_error

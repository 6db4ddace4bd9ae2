"""Alert rules on predicted dimensions (``type: dimensions``): validation and exact window semantics."""

from __future__ import annotations

import numpy as np
import pytest

from mmemo.monitor.engine import AlertEngine
from mmemo.monitor.rules import RulesError, load_rules, parse_rules

CLASSES = ["angry", "happy", "neutral", "sad"]
DIMENSIONS = ["arousal", "valence"]
RATE = 50.0
DT = 1 / RATE
AGITATED = {"name": "agitated", "type": "dimensions", "when": "arousal >= 0.7 and valence <= 0.3",
            "duration": 3.0, "cooldown": 0}


def frames(seconds: float, spans: list[tuple[float, float, float, float]]) -> tuple:
    """Calm (arousal 0.4, valence 0.6) except ``(start, end, arousal, valence)`` spans, frame-aligned."""
    count = int(round(seconds * RATE))
    values = np.tile([0.4, 0.6], (count, 1))
    for start, end, arousal, valence in spans:
        values[int(round(start * RATE)): int(round(end * RATE))] = [arousal, valence]
    probs = np.full((count, len(CLASSES)), 1 / len(CLASSES))
    return (np.arange(count) + 0.5) * DT, probs, values


def session(rules: list[dict]):
    ruleset = parse_rules({"rules": rules}, "rules.yaml").fit_classes(CLASSES, dimensions=DIMENSIONS)
    return AlertEngine(ruleset, CLASSES, dimensions=DIMENSIONS).session("line", "call", DT, start_time=0.0)


@pytest.mark.parametrize("held, fires", [(2.98, False), (3.0, True)])
def test_an_arousal_rule_fires_exactly_at_its_window_boundary(held, fires):
    """150 frames (3.0 s at 50 Hz) meeting both conditions fire, on the 150th frame; 149 frames do not."""
    times, probs, values = frames(8.0, [(1.0, 1.0 + held, 0.8, 0.2)])
    alerts = session([AGITATED]).feed(times, probs, values)
    if not fires:
        assert alerts == []
        return
    (alert,) = alerts
    assert alert.start == pytest.approx(1.0) and alert.end == pytest.approx(4.0)
    assert alert.fired_at == pytest.approx(1.0 + 149.5 * DT)   # the centre of the window's last frame
    assert alert.emotions == DIMENSIONS and alert.score == pytest.approx(1.0)
    assert alert.description == "arousal >= 0.7 and valence <= 0.3 for >= 3 s (every frame)"


def test_both_conditions_must_hold_bounds_are_inclusive_and_one_frame_breaks_the_window():
    times, probs, values = frames(6.0, [(0.0, 3.0, 0.7, 0.3)])      # exactly on both bounds: holds
    assert len(session([AGITATED]).feed(times, probs, values)) == 1
    values[75] = [0.9, 0.31]                                          # valence a hair above at 1.5 s
    assert session([AGITATED]).feed(times, probs, values) == []
    times, probs, values = frames(6.0, [(0.0, 4.0, 0.95, 0.5)])      # aroused but not negative
    assert session([AGITATED]).feed(times, probs, values) == []


def test_mean_aggregate_tests_the_window_means_and_windows_span_chunks():
    times, probs, values = frames(6.0, [(0.0, 3.0, 0.8, 0.2)])
    values[75] = [0.5, 0.5]                                           # a dip the window mean absorbs
    assert session([AGITATED]).feed(times, probs, values) == []
    assert len(session([{**AGITATED, "aggregate": "mean"}]).feed(times, probs, values)) == 1
    times, probs, values = frames(6.0, [(0.0, 3.0, 0.8, 0.2)])
    live = session([AGITATED])
    fired = [a for part in np.array_split(np.arange(len(times)), 7)    # the same frames in 7 chunks
             for a in live.feed(times[part], probs[part], values[part])]
    assert len(fired) == 1 and fired[0].end == pytest.approx(3.0)


def test_audio_without_dimension_values_never_fires_a_dimensions_rule_but_emotion_rules_still_run():
    times, probs, _ = frames(4.0, [])
    probs[:] = [0.9, 0.05, 0.03, 0.02]
    angry = {"name": "anger", "type": "threshold", "emotion": "angry", "threshold": 0.8, "duration": 1.0,
             "cooldown": 0}
    alerts = session([AGITATED, angry]).feed(times, probs)
    assert [a.rule for a in alerts] == ["anger", "anger", "anger", "anger"]


@pytest.mark.parametrize("change, message", [
    ({"when": "arousal >= 1.7"}, "field 'when': 'arousal >= 1.7': dimensions are predicted on the normalised "
                                 "[0, 1] scale"),
    ({"when": "arousal => 0.7"}, "field 'when': 'arousal => 0.7' is not '<dimension> <op> <number>'"),
    ({"when": "arousal >= 0.7 or valence <= 0.3"}, "is not '<dimension> <op> <number>'"),
    ({"when": ""}, "field 'when': needs conditions like"),
    ({"when": None}, "field 'when': needs conditions like"),
    ({"threshold": 0.5}, "field 'threshold': a dimensions rule states its condition in 'when'"),
    ({"emotion": "angry"}, "field 'emotion': a dimensions rule states its condition in 'when'"),
])
def test_dimension_rule_validation_names_the_file_rule_and_field(change, message):
    with pytest.raises(RulesError) as error:
        parse_rules({"rules": [{**AGITATED, **change}]}, "rules.yaml")
    assert str(error.value).startswith("rules.yaml: rule 'agitated' (#1)") and message in str(error.value)


def test_when_is_only_for_dimension_rules_and_names_must_be_the_models_dimensions(tmp_path):
    with pytest.raises(RulesError, match="field 'when': only a 'type: dimensions' rule"):
        parse_rules({"rules": [{"name": "x", "type": "threshold", "emotion": "angry", "threshold": 0.5,
                                "when": "arousal >= 0.5"}]}, "r.yaml")
    ruleset = parse_rules({"rules": [{**AGITATED, "when": "Arousal >= 0.7 and valance <= 0.3"}]}, "r.yaml")
    with pytest.raises(RulesError, match=r"field 'when': 'valance' is not a dimension of the model; did you mean "
                                         r"'valence'\? \(dimensions: arousal, valence\)"):
        ruleset.fit_classes(CLASSES, dimensions=DIMENSIONS)
    with pytest.raises(RulesError, match=r"'arousal' is not a dimension of the model \(dimensions: none\)"):
        parse_rules({"rules": [AGITATED]}, "r.yaml").fit_classes(CLASSES)   # a categorical model
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: agitated\n    type: dimensions\n    when: AROUSAL >= 0.7 and valence <= 0.3\n"
                    "    duration: 3\n")
    (rule,) = load_rules(path, CLASSES, dimensions=DIMENSIONS).rules   # spelled as the model's names
    assert rule.conditions == (("arousal", ">=", 0.7), ("valence", "<=", 0.3)) and rule.dimensions == ("arousal",
                                                                                                       "valence")
    assert not load_rules(path, CLASSES, strict=False).rules            # a default file skips what does not fit

"""Accuracy per cue (which modality carries the label) and the subset-gain lines of sweep tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmemo.data.manifest import Utterance
from mmemo.evaluation.breakdown import accuracy_by_field, field_values, pooled_by_field, render_breakdown
from mmemo.evaluation.sweep_report import modality_set, subset_gains
from mmemo.evaluation.tables import Run, build_table


def test_accuracy_by_field_counts_each_value():
    utterances = [Utterance(f"u{i}", "x.wav", "a", extra={"cue": cue}) for i, cue in enumerate("ssff")]
    utterances.append(Utterance("u4", "x.wav", "a"))  # no cue: left out
    values = field_values(utterances)
    assert values == {"u0": "s", "u1": "s", "u2": "f", "u3": "f"}
    rows = [{"key": f"u{i}", "label": "a", "prediction": p} for i, p in enumerate(["a", "b", "a", "a", "b"])]
    assert accuracy_by_field(rows, values) == {"f": {"accuracy": 1.0, "n": 2}, "s": {"accuracy": 0.5, "n": 2}}


def run(head, modalities, fold, ua, cues=None):
    test = {"UA": ua, "WA": ua, "macro_F1": ua}
    if cues:
        test["accuracy_by_cue"] = cues
    return Run(Path(f"/runs/{head}/{modalities}/{fold}"), test,
               {"fold": fold, "seed": 42, "config": {"model": {"fusion": {"name": head}}, "modalities": modalities}})


def test_pooled_accuracy_weights_runs_by_their_utterances():
    runs = [run("late", "all", 1, 0.9, {"face": {"accuracy": 1.0, "n": 30}}),
            run("late", "all", 2, 0.8, {"face": {"accuracy": 0.5, "n": 10}})]
    pooled = pooled_by_field(runs, lambda r: r.config["model"]["fusion"]["name"], lambda r: r.config["modalities"])
    assert pooled[("late", "all")]["face"] == pytest.approx(100 * 35 / 40)
    text = render_breakdown(pooled, ["late"], ["all"])
    assert "| late | all | 87.5 |" in text and "cue=face" in text


def test_subset_gains_compare_with_the_best_strict_subset_of_the_same_head():
    runs = [run("late", m, f, ua) for f in (1, 2) for m, ua in
            (("speech", 0.6), ("both", 0.7), ("speech+video", 0.75), ("text+video", 0.72), ("all", 0.85))]
    runs += [run("gated", "all", f, 0.5) for f in (1, 2)]  # no subset of its own: no line
    table = build_table(runs, row=lambda r: r.config["model"]["fusion"]["name"],
                        column=lambda r: r.config["modalities"])
    lines = subset_gains(table, ["all"])
    assert lines[1] == "- late: all 85.00 vs best subset speech+video 75.00 (+10.00)"
    assert len(lines) == 2
    assert modality_set("both") == {"speech", "text"} and modality_set("text+video") == {"text", "video"}
    assert modality_set("all") > modality_set("speech+video")

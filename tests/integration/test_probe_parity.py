"""mmemo's heads against the linear probe on the same frozen features (the demo corpus, 5 folds).

The probe is the baseline of SSL papers: a logistic regression (C picked on the validation
speakers) on every modality's standardised mean and std over frames. ``linear`` is that probe
trained the mmemo way, so the two must agree; a fusion head's default that loses to it would
mean the head wastes what the encoders give (which they did, by 4-20 points, before heads
standardised their inputs: docs/decisions.md, issue 13).
"""

from __future__ import annotations

import statistics

import pytest

from mmemo.config import compose
from mmemo.recipes import run_config as train

FOLDS = (1, 2, 3, 4, 5)
#: experiment=fusion_comparison's encoders (Whisper tiny.en layer 2, MiniLM) and training settings
ENCODERS = ["model/speech=whisper_tiny_en", "model.speech.layer=2"]
HEADS = ["experiment=fusion_comparison", "reuse_finished=false"]
#: How far the linear head may sit from the probe. Measured (UA, mean of 5 folds): speech 69.8 vs 71.1,
#: fused 85.6 vs 85.5; speech's wider gap is the early-stopped minibatch fit against an exact L2 optimum
#: (an exact fit of the same loss gives 71.1, docs/decisions.md).
TOLERANCE = {"speech": 1.5, "both": 1.0}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The full demo corpus (1,000 utterances, 10 voices, 5 speaker-independent folds) and a shared cache."""
    from mmemo.data.synthetic import synthesize_corpus

    root = tmp_path_factory.mktemp("parity")
    return {"corpus": synthesize_corpus(root / "demo", seed=13), "root": root}


def test_ua(demo, overrides: list[str], fold: int, name: str) -> float:
    root = demo["root"]
    cfg = compose("train", [f"data.root={demo['corpus']}", "data.synthesize_if_missing=false", f"data.fold={fold}",
                            *ENCODERS, "logger=csv", "callbacks.progress_bar.refresh_rate=0",
                            f"paths.root_dir={root}", f"features.dir={root}/cache", *overrides],
                  output_dir=str(root / name / f"fold{fold}"))
    return 100 * train(cfg)["test"]["UA"]


test_ua.__test__ = False  # a helper, not a test


def mean_ua(demo, overrides: list[str], name: str) -> float:
    return statistics.mean(test_ua(demo, overrides, fold, name) for fold in FOLDS)


@pytest.fixture(scope="module")
def probe(demo) -> dict[str, float]:
    return {modalities: mean_ua(demo, ["experiment=classical_baseline", "classical.features=encoders",
                                       "classical.classifier=logistic_regression", f"modalities={modalities}"],
                                f"probe-{modalities}")
            for modalities in ("speech", "both")}


@pytest.mark.parametrize("modalities", ["speech", "both"])
def test_the_linear_head_matches_the_logistic_regression_probe(demo, probe, modalities):
    linear = mean_ua(demo, [*HEADS, "model/fusion=linear", f"modalities={modalities}"], f"linear-{modalities}")
    assert abs(linear - probe[modalities]) <= TOLERANCE[modalities], (linear, probe[modalities])


@pytest.mark.parametrize("head", ["concat", pytest.param("late", marks=pytest.mark.slow),
                                  pytest.param("gated", marks=pytest.mark.slow),
                                  pytest.param("joint_embedding", marks=pytest.mark.slow)])
def test_pooling_heads_are_at_least_as_good_as_the_probe(demo, probe, head):
    """concat (the default head) in the default suite; the others with pytest -m slow (about 1 minute each)."""
    for modalities in ("both", "speech"):  # the fused run first: it must pass whatever the unimodal one does
        ua = mean_ua(demo, [*HEADS, f"model/fusion={head}", f"modalities={modalities}"], f"{head}-{modalities}")
        if head == "gated" and modalities == "speech" and ua < probe[modalities]:
            # a known gap, published in experiments/fusion_comparison/README.md (70.3 vs 71.1): a gate over
            # one modality is not where the head helps. Its fused run (above) must beat the probe.
            pytest.xfail(f"gated on speech alone: {ua:.1f} < probe {probe[modalities]:.1f} (issue 13, open)")
        assert ua >= probe[modalities], (head, modalities, ua, probe[modalities])


@pytest.mark.slow
def test_cross_attention_is_at_least_as_good_as_the_probe(demo, probe):
    """Frame-level, fused (its speech-only run, 68.8, is below the probe's 71.1: see the experiment README).
    About 10 minutes on 2 cores (pytest -m slow)."""
    ua = mean_ua(demo, [*HEADS, "model/fusion=cross_attention", "modalities=both"], "cross_attention-both")
    assert ua >= probe["both"], (ua, probe["both"])

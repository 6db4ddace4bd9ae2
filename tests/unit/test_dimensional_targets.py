"""Issue 17 foundations: dimensional targets and label distributions validated per line; CCC and soft losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmemo.data.manifest import Source, Utterance
from mmemo.data.targets import dimensional_targets, label_distribution, parse_dimensions
from mmemo.errors import InvalidInput
from mmemo.evaluation.metrics import concordance
from mmemo.training.losses import UncertaintyWeighting, ccc_loss, concordance_batch, soft_cross_entropy

CLASSES = ["angry", "happy", "neutral", "sad"]


def line(number: int = 3, **extra) -> Utterance:
    return Utterance(key="u", wav="u.wav", emo="happy", extra=extra, source=Source("m.jsonl", number))


def test_dimensions_are_normalised_by_their_declared_scale_and_checked_per_line():
    dims = parse_dimensions({"arousal": [1, 5], "valence": [-1, 1]})
    values, issues = dimensional_targets(line(arousal=4, valence=0.5), dims)
    assert issues == [] and values == pytest.approx([0.75, 0.75])
    _, issues = dimensional_targets(line(arousal=7, valence=float("nan")), dims)
    assert [str(i) for i in issues] == ["m.jsonl:3: dimension 'arousal' = 7 is outside its declared scale [1, 5]",
                                        "m.jsonl:3: dimension 'valence' must be a finite number, got nan"]
    _, issues = dimensional_targets(line(arousal=2), dims)
    assert "missing dimension 'valence'" in str(issues[0])
    assert dimensional_targets(line(), dims, required=False) == (None, [])
    for bad in ({"arousal": [5, 1]}, {"arousal": [1]}, {"arousal": ["1", 5]}, {"not a name": [0, 1]}):
        with pytest.raises(InvalidInput, match="dimension"):
            parse_dimensions(bad)
    assert parse_dimensions({"arousal": [1, 7]})[0].denormalise(0.5) == 4.0


def test_label_distributions_become_probabilities_over_the_label_map():
    dist, issues = label_distribution(line(emo_dist={"angry": 2, "neutral": 1, "happy": 1}), CLASSES)
    assert issues == [] and dist == [0.5, 0.25, 0.25, 0.0]
    for raw, problem in (({"joyful": 1}, "'joyful', not a class"), ({"angry": -1}, ">= 0"),
                         ({"angry": 0}, "no votes"), ([1, 2], "must map class names"),
                         ({"angry": float("inf")}, "finite number")):
        _, issues = label_distribution(line(emo_dist=raw), CLASSES)
        assert issues and problem in str(issues[0]) and str(issues[0]).startswith("m.jsonl:3:")


def test_ccc_loss_and_metric_equal_a_hand_computation_and_torchmetrics():
    from torchmetrics.functional.regression import concordance_corrcoef

    rng = np.random.default_rng(0)
    t = rng.normal(size=(64, 3))
    p = 0.6 * t + rng.normal(scale=0.5, size=(64, 3)) + 0.2
    by_hand = []
    for d in range(3):
        mp, mt = p[:, d].mean(), t[:, d].mean()
        cov = ((p[:, d] - mp) * (t[:, d] - mt)).mean()
        by_hand.append(2 * cov / (p[:, d].var() + t[:, d].var() + (mp - mt) ** 2))
    ours = concordance_batch(torch.tensor(p), torch.tensor(t)).numpy()
    assert ours == pytest.approx(by_hand, abs=1e-6)
    # torchmetrics uses sample (n - 1) moments; with them our formula gives its number exactly
    n = len(t)
    sample = [2 * np.cov(p[:, d], t[:, d])[0, 1] / (p[:, d].var(ddof=1) + t[:, d].var(ddof=1)
                                                     + (p[:, d].mean() - t[:, d].mean()) ** 2) for d in range(3)]
    assert concordance_corrcoef(torch.tensor(p), torch.tensor(t)).numpy() == pytest.approx(sample, abs=1e-6)
    assert ours == pytest.approx(sample, abs=2 / n)  # the two conventions differ by O(1/n)
    assert [concordance(p[:, d], t[:, d]) for d in range(3)] == pytest.approx(by_hand, abs=1e-9)
    loss = ccc_loss(torch.tensor(p), torch.tensor(t))
    assert float(loss) == pytest.approx(1 - np.mean(by_hand), abs=1e-6)
    assert float(ccc_loss(torch.tensor(t), torch.tensor(t))) == pytest.approx(0.0, abs=1e-6)
    mask = torch.ones(64, 3)
    mask[:10, 0] = 0  # ten values of the first dimension missing
    masked = ccc_loss(torch.tensor(p), torch.tensor(t), mask)
    first = concordance(p[10:, 0], t[10:, 0])
    assert float(masked) == pytest.approx(1 - np.mean([first, *by_hand[1:]]), abs=1e-6)


def test_soft_cross_entropy_is_cross_entropy_for_one_hot_and_weighting_learns():
    logits = torch.randn(8, 4)
    labels = torch.randint(0, 4, (8,))
    assert float(soft_cross_entropy(logits, F.one_hot(labels, 4).float())) == pytest.approx(
        float(F.cross_entropy(logits, labels)), abs=1e-6)
    uniform = torch.full((8, 4), 0.25)
    assert float(soft_cross_entropy(torch.zeros(8, 4), uniform)) == pytest.approx(math.log(4), abs=1e-6)
    weighting = UncertaintyWeighting(["categorical", "dimensional"])
    total = weighting({"categorical": torch.tensor(2.0), "dimensional": torch.tensor(0.5)})
    assert float(total) == pytest.approx(2.5)  # log-variances start at 0: plain sum
    total.backward()
    assert weighting.log_variance.grad.tolist() == pytest.approx([1 - 2.0, 1 - 0.5])
    with pytest.raises(InvalidInput, match="missing"):
        weighting({"categorical": torch.tensor(1.0)})


def test_epoch_metrics_equal_a_hand_computation_over_batches_with_missing_values():
    """DimensionalMetrics (what metrics.json reports) over 3 batches and a mask = the formulas on the kept values."""
    from scipy.stats import pearsonr

    from mmemo.evaluation.dimensional import DimensionalMetrics

    rng = np.random.default_rng(1)
    t = rng.uniform(size=(90, 2))
    p = np.clip(0.7 * t + rng.normal(scale=0.15, size=(90, 2)) + 0.05, 0, 1)
    mask = np.ones((90, 2), bool)
    mask[rng.choice(90, 20, replace=False), 1] = False
    metric = DimensionalMetrics(["arousal", "valence"])
    for rows in np.array_split(np.arange(90), 3):
        metric.update(torch.tensor(p[rows]), torch.tensor(np.where(mask[rows], t[rows], 99.0)),
                      torch.tensor(mask[rows]))
    out = metric.summary()
    for d, name in enumerate(["arousal", "valence"]):
        keep = mask[:, d]
        assert out[f"n_{name}"] == keep.sum()
        assert out[f"CCC_{name}"] == pytest.approx(concordance(p[keep, d], t[keep, d]), abs=1e-9)
        assert out[f"Pearson_{name}"] == pytest.approx(pearsonr(p[keep, d], t[keep, d])[0], abs=1e-9)
        assert out[f"MAE_{name}"] == pytest.approx(np.abs(p[keep, d] - t[keep, d]).mean(), abs=1e-9)
    assert out["CCC"] == pytest.approx((out["CCC_arousal"] + out["CCC_valence"]) / 2)
    assert out["dimensions"] == ["arousal", "valence"]


def test_soft_label_metrics_are_kl_and_js_to_the_annotators_distribution():
    from scipy.spatial.distance import jensenshannon
    from scipy.special import softmax
    from scipy.stats import entropy

    from mmemo.evaluation.dimensional import SoftLabelMetrics

    rng = np.random.default_rng(2)
    logits = rng.normal(size=(12, 4))
    votes = rng.integers(0, 4, size=(12, 4)).astype(float)
    votes[:, 0] += 1                                     # every line has a vote; zeros (0 log 0) occur
    q = votes / votes.sum(1, keepdims=True)
    metric = SoftLabelMetrics()
    metric.update(torch.tensor(logits[:5]), torch.tensor(q[:5]))
    metric.update(torch.tensor(logits[5:]), torch.tensor(q[5:]))
    out = metric.summary()
    p = softmax(logits, axis=1)
    assert out["KL"] == pytest.approx(np.mean([entropy(q[i], p[i]) for i in range(12)]), abs=1e-9)
    assert out["JS"] == pytest.approx(np.mean([jensenshannon(q[i], p[i], base=2) ** 2 for i in range(12)]), abs=1e-9)
    perfect = SoftLabelMetrics()
    perfect.update(torch.log(torch.tensor(q)), torch.tensor(q))
    assert perfect.summary()["KL"] == pytest.approx(0.0, abs=1e-9) and perfect.summary()["JS"] == pytest.approx(0.0,
                                                                                                                abs=1e-9)

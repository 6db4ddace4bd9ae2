from pytest import approx

from mmemo.evaluation.metrics import compute_metrics


def test_ua_wa_f1_match_a_hand_computation():
    classes = ["ang", "hap", "neu", "sad"]
    targets = [0, 0, 0, 0, 1, 1, 2, 2, 2, 3]
    predictions = [0, 0, 0, 1, 1, 2, 2, 2, 2, 0]
    result = compute_metrics(predictions, targets, classes)
    assert result["WA"] == approx(7 / 10)
    recalls = [3 / 4, 1 / 2, 3 / 3, 0 / 1]
    assert result["UA"] == approx(sum(recalls) / 4)
    precisions = [3 / 4, 1 / 2, 3 / 4, 0]
    f1 = [2 * p * r / (p + r) if p + r else 0 for p, r in zip(precisions, recalls)]
    assert result["macro_F1"] == approx(sum(f1) / 4)
    assert result["weighted_F1"] == approx(sum(f * n for f, n in zip(f1, [4, 2, 3, 1])) / 10)
    assert result["per_class_recall"] == approx({"ang": 0.75, "hap": 0.5, "neu": 1.0, "sad": 0.0})
    assert result["confusion"][0] == [3, 1, 0, 0] and result["confusion"][3] == [1, 0, 0, 0]
    assert result["n"] == 10

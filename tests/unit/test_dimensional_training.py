"""Dimensional, multi-task and soft-label runs through the data module and the classifier (issue 17)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import tone, write_jsonl, write_wav

from mmemo.data.datamodule import EmotionDataModule
from mmemo.data.demo_corpus import annotate_corpus
from mmemo.data.demo_dimensions import NEUTRAL_VALENCE, WORDING_VALENCE
from mmemo.data.manifest import ManifestError, read_manifest
from mmemo.training.module import EmotionClassifier
from mmemo.training.objectives import Objective

TINY_SPECTRAL = {"_target_": "mmemo.encoders.spectral.SpectralEncoder", "dim": 32, "ff_dim": 64,
                 "transformer_layers": 1, "heads": 2, "dropout": 0.0}
LABELS = ("ang", "hap", "neu", "sad")


def rated_corpus(root, *, scale=(1, 5), rows_extra=None):
    """5 speakers x 4 clips with arousal/valence on ``scale`` and annotator votes; s5 is the test speaker."""
    rows = {"train": [], "test": []}
    for number, speaker in enumerate(("s1", "s2", "s3", "s4", "s5")):
        for i in range(4):
            key = f"{speaker}_{i}"
            write_wav(root / "wav" / f"{key}.wav", tone(0.4 + 0.1 * i, freq=150 + 40 * i + 7 * number))
            row = {"key": key, "wav": f"wav/{key}.wav", "emo": LABELS[i], "speaker": speaker, "text": f"s {i}",
                   "arousal": 1 + i, "valence": 5 - i, "emo_dist": {LABELS[i]: 2, LABELS[(i + 1) % 4]: 1}}
            row.update((rows_extra or {}).get(key, {}))
            rows["test" if speaker == "s5" else "train"].append(row)
    write_jsonl(root / "fold_1" / "toy_train_fold_1.jsonl", rows["train"])
    write_jsonl(root / "fold_1" / "toy_test_fold_1.jsonl", rows["test"])
    (root / "corpus.json").write_text(json.dumps({"dimensions": {"arousal": list(scale), "valence": list(scale)}}))
    return root


def module(root, **options) -> EmotionDataModule:
    dm = EmotionDataModule(str(root), 1, use_text=False, batch_size=8, bucket_by_length=False, **options)
    dm.setup("fit")
    return dm


def test_dimensional_batches_carry_normalised_values_masks_and_distributions(tmp_path):
    dm = module(rated_corpus(tmp_path), task="dimensional")
    assert [(d.name, d.low, d.high) for d in dm.dimensions] == [("arousal", 1, 5), ("valence", 1, 5)]
    batch = next(iter(dm.test_dataloader()))
    by_key = {e.utterance.key: e.utterance for e in dm.datasets["test"].examples}
    for row, key in enumerate(batch["key"]):
        u = by_key[key]
        assert batch["dimensions"][row].tolist() == pytest.approx([(u.extra["arousal"] - 1) / 4,
                                                                   (u.extra["valence"] - 1) / 4])
    assert batch["dimensions_mask"].all()
    soft = module(rated_corpus(tmp_path / "soft"), task="soft")
    batch = next(iter(soft.test_dataloader()))
    first = {c: p for c, p in zip(soft.classes, batch["distribution"][0].tolist())}
    assert sum(first.values()) == pytest.approx(1.0) and sorted(first.values())[-2:] == pytest.approx([1 / 3, 2 / 3])


def test_missing_values_are_masked_for_multitask_and_refused_by_default(tmp_path):
    gaps = {"s1_0": {"valence": None}, "s2_1": {"arousal": None}}
    root = rated_corpus(tmp_path, rows_extra={k: {d: None for d in v} for k, v in gaps.items()})
    for path in root.glob("fold_1/*.jsonl"):   # drop the keys (a JSON null is not "missing")
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if v is not None}) + "\n" for r in rows))
    with pytest.raises(ManifestError) as error:
        module(root, task="multitask")
    assert "toy_train_fold_1.jsonl:1: missing dimension 'valence'" in str(error.value)
    assert "toy_train_fold_1.jsonl:6: missing dimension 'arousal'" in str(error.value)
    dm = module(root, task="multitask", missing_dimensions="allow")
    examples = {e.utterance.key: e for split in dm.datasets.values() for e in split.examples}
    assert math.isnan(examples["s1_0"].dimensions[1]) and examples["s1_0"].dimensions[0] == 0.0
    from mmemo.data.datasets import collate

    dataset = dm.datasets["train"]
    batch = collate([dataset[i] for i in range(len(dataset))])
    row = batch["key"].index("s1_0")
    assert batch["dimensions_mask"][row].tolist() == [True, False] and batch["dimensions"][row, 1] == 0.0


def test_values_outside_the_declared_scale_and_corpora_without_dimensions_are_clear_errors(tmp_path):
    root = rated_corpus(tmp_path / "a", rows_extra={"s3_2": {"arousal": 9}})
    with pytest.raises(ManifestError, match=r"toy_train_fold_1.jsonl:11: dimension 'arousal' = 9 is outside its "
                                            r"declared scale \[1, 5\]"):
        module(root, task="dimensional")
    root = rated_corpus(tmp_path / "b")
    (root / "corpus.json").unlink()
    with pytest.raises(ValueError, match="corpus.json declares none; set data.dimensions"):
        module(root, task="dimensional")
    dm = module(root, task="dimensional", dimensions={"arousal": [1, 5]})   # scales given in the config
    assert [d.name for d in dm.dimensions] == ["arousal"]


def _train(model: EmotionClassifier, batch: dict, steps: int = 5) -> dict[str, torch.Tensor]:
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.log = lambda *a, **k: None
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        model.training_step(batch, 0).backward()
        optimiser.step()
    return {k: (v.detach() - before[k]).abs().max() for k, v in model.named_parameters()}


@pytest.mark.parametrize("weighting", ["fixed", "uncertainty"])
def test_a_multitask_run_trains_the_classifier_and_the_regression_head(tmp_path, weighting):
    dm = module(rated_corpus(tmp_path), task="multitask")
    torch.manual_seed(0)
    model = EmotionClassifier(list(dm.classes), speech=dict(TINY_SPECTRAL), fusion={"name": "concat"},
                              task="multitask", dimensions=[d.name for d in dm.dimensions],
                              loss={"weighting": weighting})
    changed = _train(model, next(iter(dm.train_dataloader())))
    assert changed["head.classifier.weight" if "head.classifier.weight" in changed else
                   next(k for k in changed if k.startswith("head.") and "classifier" in k)] > 0
    regressor = [k for k in changed if k.startswith("objective.regressor.")]
    assert regressor and all(changed[k] > 0 for k in regressor if k.endswith("weight"))
    assert (weighting == "uncertainty") == any(k.startswith("objective.uncertainty.") and changed[k] > 0
                                               for k in changed)
    # a dimensional-only run has no class loss: its classifier never moves
    dims = EmotionClassifier(list(dm.classes), speech=dict(TINY_SPECTRAL), fusion={"name": "concat"},
                             task="dimensional", dimensions=["arousal", "valence"])
    changed = _train(dims, next(iter(module(rated_corpus(tmp_path / "d"), task="dimensional").train_dataloader())))
    assert all(changed[k] == 0 for k in changed if k.startswith("head.") and "classifier" in k)
    assert all(changed[k] > 0 for k in changed if k.startswith("objective.regressor.") and k.endswith("weight"))


def test_objective_validates_its_options_and_scores_each_task():
    head = EmotionClassifier(list(LABELS), speech=dict(TINY_SPECTRAL)).head
    with pytest.raises(ValueError, match="model.loss.regression must be one of"):
        Objective("dimensional", list(LABELS), ["arousal"], head, {"regression": "huber"})
    with pytest.raises(ValueError, match="task=dimensional needs the corpus's dimensions"):
        Objective("dimensional", list(LABELS), [], head, {})
    with pytest.raises(ValueError, match="task_weights takes 'classes' and 'dimensions'"):
        Objective("multitask", list(LABELS), ["arousal"], head, {"task_weights": {"arousal": 2}})
    assert Objective("multitask", list(LABELS), ["arousal"], head, {}).selection == "UA_CCC"
    assert Objective("dimensional", list(LABELS), ["arousal"], head, {}).selection == "CCC"


def test_demo_ratings_follow_the_delivery_and_the_words_and_old_corpora_are_annotated(tiny_corpus, tmp_path):
    lines = read_manifest(tiny_corpus / "manifest.jsonl")
    info = json.loads((tiny_corpus / "corpus.json").read_text())
    assert info["dimensions"] == {"arousal": [0.0, 1.0], "valence": [0.0, 1.0]} and info["version"] == 2
    for u in lines:
        emotional = u.extra["cue"] in ("text", "both")
        assert u.extra["wording"] == ("emotional" if emotional else "ambiguous")
        assert u.extra["valence"] == (WORDING_VALENCE[u.emo] if emotional else NEUTRAL_VALENCE)
        assert set(u.extra["prosody"]) == {"rate", "pitch", "pitch_range", "amplitude", "word_gap"}
    # the delivery, not the label, sets arousal: angry/happy delivery is aroused, sad is not, text cues are neutral
    mean = lambda picked: sum(u.extra["arousal"] for u in picked) / len(picked)  # noqa: E731
    spoken = [u for u in lines if u.extra["cue"] in ("speech", "both")]
    assert mean([u for u in spoken if u.emo == "angry"]) > 0.6 > 0.35 > mean([u for u in spoken if u.emo == "sad"])
    neutral_delivery = [u for u in lines if u.extra["cue"] == "text"]
    assert all(0.2 < u.extra["arousal"] < 0.8 for u in neutral_delivery)
    # a corpus written before the ratings is brought up to date in place, to the same values
    import shutil

    old = shutil.copytree(tiny_corpus, tmp_path / "old")
    for path in [old / "manifest.jsonl", *old.glob("fold_*/*.jsonl")]:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({k: v for k, v in r.items()
                                            if k not in ("arousal", "valence", "prosody", "wording")}) + "\n"
                                for r in rows))
    stale = {k: v for k, v in info.items() if k not in ("dimensions", "dimension_rules")}
    (old / "corpus.json").write_text(json.dumps(stale | {"version": 1}))
    assert annotate_corpus(old) and not annotate_corpus(old)
    for path in [tiny_corpus / "manifest.jsonl", *sorted(tiny_corpus.glob("fold_*/*.jsonl"))]:
        mine = {u.key: u.extra for u in read_manifest(old / path.relative_to(tiny_corpus))}
        assert mine == {u.key: u.extra for u in read_manifest(path)}


def test_the_regressor_predicts_standardised_targets_scaled_back_with_training_statistics(tmp_path):
    from mmemo.training.objectives import dimension_stats, legacy_state_keys

    stats = dimension_stats([[0.2, 0.9], [0.4, float("nan")], [0.6, 0.7]])
    assert stats["mean"] == pytest.approx([0.4, 0.8]) and stats["std"] == pytest.approx([0.163299, 0.1], abs=1e-6)
    assert dimension_stats([[0.5, 0.3], [0.5, 0.3]])["std"] == [1.0, 1.0]       # no spread: identity scale
    model = EmotionClassifier(list(LABELS), speech=dict(TINY_SPECTRAL), fusion={"name": "concat"},
                              task="dimensional", dimensions=["arousal", "valence"], dimension_stats=stats).eval()
    last = [m for m in model.objective.regressor.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([1.0, -2.0]))    # +1 and -2 standard deviations
    from mmemo.fusion.base import FusionOutput

    fused = FusionOutput(torch.zeros(3, 4), embeddings={"fused": torch.randn(3, model.head.fused_dim())})
    torch.testing.assert_close(model.objective.regress(fused), torch.tensor([[0.4 + 0.163299, 0.8 - 0.2]] * 3))
    # a checkpoint from before the scale keeps its weights under the new key, and the identity scale
    old = {"objective.regressor.net.5.weight": 1, "loss_fn.weight": 2, "head.classifier.0.weight": 3}
    assert legacy_state_keys(old) == {"objective.regressor.regressor.net.5.weight": 1,
                                      "objective.cross_entropy.weight": 2, "head.classifier.0.weight": 3}
    assert legacy_state_keys({"objective.regressor.mean": 0}) == {"objective.regressor.mean": 0}


def test_late_fusion_regression_weights_each_modality_per_dimension():
    from mmemo.fusion.base import FusionOutput
    from mmemo.fusion.late import LateFusion

    head = LateFusion({"speech": 4, "text": 3}, 4, dropout=0.0)
    regressor = head.regressor(2).eval()
    speech, text = torch.randn(3, 8), torch.randn(3, 6)
    present = {"speech": torch.tensor([True, True, False]), "text": torch.tensor([True, False, True])}
    output = FusionOutput(torch.zeros(3, 4), embeddings={"speech": speech, "text": text}, present=present)
    own = {"speech": regressor.nets["speech"](speech), "text": regressor.nets["text"](text)}
    got = regressor(output)
    torch.testing.assert_close(got[0], (own["speech"][0] + own["text"][0]) / 2)   # equal at the start
    torch.testing.assert_close(got[1], own["speech"][1])                           # only what is present
    torch.testing.assert_close(got[2], own["text"][2])
    with torch.no_grad():
        regressor.weights.copy_(torch.tensor([[0.5, -0.5], [-0.5, 0.5]]))       # arousal: speech, valence: text
    got = regressor(output)
    mix = torch.softmax(torch.tensor([5.0, -5.0]), 0)
    torch.testing.assert_close(got[0, 0], mix[0] * own["speech"][0, 0] + mix[1] * own["text"][0, 0])
    torch.testing.assert_close(got[0, 1], mix[1] * own["speech"][0, 1] + mix[0] * own["text"][0, 1])
    torch.testing.assert_close(got[1], own["speech"][1])                           # still only what is present

"""Every leakage guard has a test that triggers it; the real EmoBox folders are checked as shipped."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
from conftest import write_jsonl, write_wav

from mmemo.data.check import check_corpus
from mmemo.data.datamodule import EmotionDataModule
from mmemo.data.folds import read_fold
from mmemo.data.labels import LabelMap
from mmemo.data.leakage import check_monitor, check_pretraining_overlap
from mmemo.data.manifest import ManifestError


def _corpus(root, *, test_speaker="s3", text=lambda s, i: f"{s} says thing {i}", duplicate=False, corpus_json=None):
    rows = {"train": [], "test": []}
    for n, speaker in enumerate(("s1", "s2", "s3")):
        for i in range(3):
            key = f"{speaker}_{i}"
            write_wav(root / f"{key}.wav", __import__("conftest").tone(0.5, freq=200 + 30 * i + 11 * n))
            split = "test" if speaker == test_speaker else "train"
            rows[split].append({"key": key, "wav": f"{key}.wav", "emo": "neu", "speaker": speaker,
                                "text": text(speaker, i)})
    if duplicate:
        shutil.copy(root / "s1_0.wav", root / "copy.wav")
        rows["test"].append({"key": "copy", "wav": "copy.wav", "emo": "neu", "speaker": "s3", "text": "x"})
    write_jsonl(root / "fold_1" / "c_train_fold_1.jsonl", rows["train"])
    write_jsonl(root / "fold_1" / "c_test_fold_1.jsonl", rows["test"])
    if corpus_json is not None:
        (root / "corpus.json").write_text(corpus_json)
    return root


def test_speaker_overlap_is_an_error_unless_the_protocol_declares_it(tmp_path):
    root = _corpus(tmp_path / "a")
    rows = (root / "fold_1" / "c_train_fold_1.jsonl").read_text().replace('"speaker": "s2"', '"speaker": "s3"')
    (root / "fold_1" / "c_train_fold_1.jsonl").write_text(rows)
    with pytest.raises(ManifestError, match=r"c_train_fold_1.jsonl:4: speaker 's3' is in both (train|valid) and test"):
        read_fold(root, 1, valid_from="utterances")
    (root / "corpus.json").write_text('{"speaker_independent": false}')
    splits = read_fold(root, 1, valid_from="utterances")
    assert any("speaker-dependent" in w for w in splits.warnings)
    with pytest.raises(ManifestError):
        read_fold(root, 1, valid_from="utterances", speaker_overlap="error")


def test_identical_audio_across_splits_is_an_error(tmp_path):
    root = _corpus(tmp_path, duplicate=True)
    with pytest.raises(ManifestError, match=r"c_test_fold_1.jsonl:4: audio of 'copy' \(test\) is identical to 's1_0'"):
        EmotionDataModule(str(root), 1, use_text=False).setup()


def test_identical_transcripts_warn_with_counts(tmp_path, caplog):
    root = _corpus(tmp_path, text=lambda s, i: f"the same sentence {i}")
    with caplog.at_level("WARNING"):
        splits = read_fold(root, 1)
    assert ("3 of 3 test utterances (100%) have a transcript that also occurs in training (3 distinct"
            in splits.warnings[0])
    assert "memorise" in caplog.text


def test_checkpoint_selection_on_test_is_refused(tiny_overrides, tmp_path):
    check_monitor("val/UA")
    with pytest.raises(ValueError, match="test-split metric"):
        check_monitor("test/UA")
    from mmemo.config import compose
    from mmemo.recipes import run_config as train

    cfg = compose("train", [*tiny_overrides, "callbacks.model_checkpoint.monitor=test/UA"], output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="checkpoints are selected on 'test/UA'"):
        train(cfg)


def test_emotion2vec_plus_on_its_training_corpora_warns():
    assert ("fine-tuned on data that includes iemocap"
            in check_pretraining_overlap("iic/emotion2vec_plus_base", "iemocap"))
    assert check_pretraining_overlap("iic/emotion2vec_base", "iemocap") is None
    assert check_pretraining_overlap("/models/emotion2vec_plus_large", "demo") is None


def test_real_emobox_iemocap_counts_and_speakers(emobox_dir):
    root = emobox_dir / "iemocap"
    label_map = LabelMap.build(root / "label_map.json")
    totals, speakers = Counter(), set()
    for fold in range(1, 6):
        splits = read_fold(root, fold)
        test = {u.speaker for u in splits.test}
        assert not test & {u.speaker for u in splits.train + splits.valid}
        assert len(test) == 2 and {s[:5] for s in test} == {f"Ses0{fold}"}
        totals.update(label_map.target(u.emo) for u in splits.test)
        speakers |= test
    assert sum(totals.values()) == 5531 and totals["Happy"] == 1636
    assert speakers == {f"Ses0{n}{g}" for n in range(1, 6) for g in "FM"}
    # EmoBox's stm names the dialog's owner; mmemo reads the utterance's own speaker
    splits = read_fold(root, 1)
    male = next(u for u in splits.test if "_M0" in u.key)
    assert male.speaker == "Ses01M"


# Test-split sizes and speaker counts of EmoBox's own files (RAVDESS: 24 actors x 60 speech clips in 6 folds;
# CREMA-D: 91 actors, one stratified 25% fold; MELD: the official split, speakers are character names).
@pytest.mark.parametrize("name, folds, test_size, speakers, independent", [
    ("ravdess", 6, 1440, 24, True),
    ("cremad", 1, 1856, 91, False),
    ("meld", 1, 2610, 304, False),
])
def test_real_emobox_folders_are_read_as_shipped(emobox_dir, name, folds, test_size, speakers, independent):
    report = check_corpus(emobox_dir / name, audio=False, allow_speaker_overlap=None if independent else True)
    assert report.ok, report.render()
    assert len(report.folds) == folds
    test_counts = Counter()
    all_speakers = set()
    for fold in report.folds:
        test_counts.update(fold.classes["test"])
        for split_speakers in fold.speakers.values():
            all_speakers |= set(split_speakers)
        overlap = set(fold.speakers["test"]) & (set(fold.speakers["train"]) | set(fold.speakers["valid"]))
        assert bool(overlap) != independent
        assert any("speaker-dependent" in w for w in fold.warnings) == (not independent)
    assert sum(test_counts.values()) == test_size
    assert len(all_speakers) == speakers
    if not independent:
        with pytest.raises(ManifestError, match="is in both"):
            read_fold(emobox_dir / name, 1)

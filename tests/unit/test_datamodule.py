"""Folds, validation carving, transcripts and the bad-audio policy, through the data module."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tone, write_jsonl, write_wav

from mmemo.data.audio import UnusableAudioError
from mmemo.data.datamodule import EmotionDataModule
from mmemo.data.datasets import collate
from mmemo.data.folds import read_fold, read_stm_speakers
from mmemo.data.manifest import ManifestError
from mmemo.data.sampling import LengthBucketSampler

LABELS = ("ang", "hap", "neu", "sad")


def make_corpus(root, *, speakers=("s1", "s2", "s3", "s4", "s5"), test_speakers=("s5",), per_speaker=4,
                valid=False, text=True, extra_train=()):
    rows = {"train": [], "test": []}
    for number, speaker in enumerate(speakers):
        for i in range(per_speaker):
            key = f"{speaker}_{i}"
            write_wav(root / "wav" / f"{key}.wav", tone(0.5 + 0.1 * i, freq=150 + 40 * i + 7 * number))
            row = {"key": key, "dataset": "toy", "wav": f"wav/{key}.wav", "emo": LABELS[i % 4], "speaker": speaker}
            if text:
                row["text"] = f"sentence {i}"
            rows["test" if speaker in test_speakers else "train"].append(row)
    rows["train"] += list(extra_train)
    if valid:  # the first training speaker becomes the validation file
        held = [r for r in rows["train"] if r["speaker"] == speakers[0]]
        rows["train"] = [r for r in rows["train"] if r["speaker"] != speakers[0]]
        write_jsonl(root / "fold_1" / "toy_valid_fold_1.jsonl", held)
    write_jsonl(root / "fold_1" / "toy_train_fold_1.jsonl", rows["train"])
    write_jsonl(root / "fold_1" / "toy_test_fold_1.jsonl", rows["test"])
    return root


def test_validation_is_carved_from_training_speakers_only(tmp_path):
    root = make_corpus(tmp_path)
    module = EmotionDataModule(str(root), 1, use_text=False, valid_fraction=0.25)
    module.setup()
    speakers = {split: {e.utterance.speaker for e in ds.examples} for split, ds in module.datasets.items()}
    assert speakers["test"] == {"s5"}
    assert len(speakers["valid"]) == 1 and speakers["valid"] <= {"s1", "s2", "s3", "s4"}
    assert not speakers["valid"] & speakers["train"]
    assert "training speakers" in module.splits.valid_origin
    batch = next(iter(module.train_dataloader()))
    assert batch["audio"].shape == batch["audio_mask"].shape and batch["audio_mask"].any(1).all()


def test_a_valid_file_is_used_as_is(tmp_path):
    root = make_corpus(tmp_path, valid=True)
    splits = read_fold(root, 1)
    assert splits.valid_origin == "file" and {u.speaker for u in splits.valid} == {"s1"}


def test_splits_sharing_an_utterance_are_refused(tmp_path):
    root = make_corpus(tmp_path)
    test_file = root / "fold_1" / "toy_test_fold_1.jsonl"
    train_line = (root / "fold_1" / "toy_train_fold_1.jsonl").read_text().splitlines()[0]
    test_file.write_text(test_file.read_text() + train_line.replace('"s1"', '"s5"') + "\n")
    with pytest.raises(ManifestError, match=rf"{test_file}:5: key 's1_0' is in both train and test"):
        read_fold(root, 1)


def test_missing_speakers_cannot_be_carved(tmp_path):
    root = make_corpus(tmp_path, extra_train=[{"key": "x", "wav": "wav/s1_0.wav", "emo": "ang"}])
    with pytest.raises(ValueError, match="have no speaker .*data.valid_from=utterances"):
        read_fold(root, 1)
    splits = read_fold(root, 1, valid_from="utterances")
    assert "speaker-dependent" in splits.valid_origin


def test_speaker_overlap_between_train_and_test_is_refused(tmp_path):
    root = make_corpus(tmp_path, extra_train=[{"key": "leak", "wav": "wav/s5_0.wav", "emo": "ang", "speaker": "s5"}])
    with pytest.raises(ManifestError, match="speaker 's5' is in both train and test"):
        read_fold(root, 1)


def test_speakers_come_from_the_emobox_stm_file(tmp_path):
    root = make_corpus(tmp_path)
    for split in ("train", "test"):
        path = root / "fold_1" / f"toy_{split}_fold_1.jsonl"
        path.write_text(path.read_text().replace('"speaker"', '"spk_removed"'))
    (root / "data.seg.wrd.stm").write_text("".join(
        f"{s}_{i} 1 {s} 0 1.0 <id={s}_{i},lang=en,spk=SPK-{s},emotion=neu> neu\n"
        for s in ("s1", "s2", "s3", "s4", "s5") for i in range(4)))
    assert read_stm_speakers(root / "data.seg.wrd.stm")["s3_1"] == "SPK-s3"
    splits = read_fold(root, 1)
    assert {u.speaker for u in splits.test} == {"SPK-s5"}


def test_missing_transcript_names_file_and_line(tmp_path):
    root = make_corpus(tmp_path)
    path = root / "fold_1" / "toy_test_fold_1.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"text": "sentence 2"', '"text": ""')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=rf"{path}:3: missing transcript \('text'\) for key 's5_2'"):
        EmotionDataModule(str(root), 1, use_audio=False).setup()
    EmotionDataModule(str(root), 1, use_text=False).setup()  # speech-only runs do not need it
    allowed = EmotionDataModule(str(root), 1, use_audio=False, missing_text="allow")
    allowed.setup()
    assert "" in {e.utterance.text or "" for e in allowed.datasets["test"].examples}


def test_unknown_label_is_reported_before_training(tmp_path):
    root = make_corpus(tmp_path, extra_train=[{"key": "odd", "wav": "wav/s1_0.wav", "emo": "fru", "speaker": "s1"}])
    module = EmotionDataModule(str(root), 1, label_map={"ang": "ang", "hap": "hap", "neu": "neu", "sad": "sad"})
    with pytest.raises(ManifestError, match=r"toy_train_fold_1.jsonl:17: unknown label 'fru'"):
        module.setup()


def _break_some_audio(root):
    (root / "wav" / "s2_1.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    write_wav(root / "wav" / "s5_3.wav", np.zeros(8000, np.float32))


def test_bad_audio_error_policy_names_every_bad_clip(tmp_path):
    root = make_corpus(tmp_path)
    _break_some_audio(root)
    with pytest.raises(UnusableAudioError) as error:
        EmotionDataModule(str(root), 1, use_text=False).setup()
    message = str(error.value)
    assert "2 unusable clip(s)" in message
    assert "key 's2_1'" in message and "s2_1.wav" in message and "corrupt or not an audio file" in message
    assert "key 's5_3'" in message and "all samples are zero" in message
    assert "data.on_bad_audio=skip" in message


def test_bad_audio_skip_policy_keeps_the_rest_and_writes_a_report(tmp_path):
    root = make_corpus(tmp_path / "corpus")
    _break_some_audio(root)
    module = EmotionDataModule(str(root), 1, use_text=False, on_bad_audio="skip", output_dir=str(tmp_path / "run"))
    module.setup()
    keys = {e.utterance.key for ds in module.datasets.values() for e in ds.examples}
    assert len(keys) == 18 and "s2_1" not in keys and "s5_3" not in keys
    report = (tmp_path / "run" / "skipped_audio.tsv").read_text().splitlines()
    assert report[0] == "split\tkey\tfile\treason"
    assert {line.split("\t")[1] for line in report[1:]} == {"s2_1", "s5_3"}


def test_long_clips_are_cropped_and_counted(tmp_path, caplog):
    root = make_corpus(tmp_path)
    write_wav(root / "wav" / "s1_0.wav", tone(12.0))
    module = EmotionDataModule(str(root), 1, use_text=False, max_seconds=2.0)
    with caplog.at_level("INFO"):
        module.setup()
    assert "cropped 1 clip(s) longer than data.max_seconds=2.0" in caplog.text
    assert max(e.seconds for ds in module.datasets.values() for e in ds.examples) == 2.0


def test_collate_pads_and_masks():
    batch = collate([{"key": "a", "speaker": "s", "text": "x", "label": 1, "audio": np.ones(3, np.float32)},
                     {"key": "b", "speaker": "s", "text": "y", "label": 0, "audio": np.ones(5, np.float32)}])
    assert batch["audio"].shape == (2, 5)
    assert batch["audio_mask"].sum(1).tolist() == [3, 5]
    assert batch["audio"][0, 3:].abs().sum() == 0


def test_length_buckets_cover_every_index_once_and_reshuffle():
    lengths = list(np.random.default_rng(0).uniform(1, 8, 103))
    sampler = LengthBucketSampler(lengths, 8, shuffle=True, seed=1, bucket_batches=4)
    first, second = list(sampler), list(sampler)
    assert sorted(i for b in first for i in b) == list(range(103)) and len(first) == len(sampler)
    assert first != second
    spread = np.mean([np.ptp([lengths[i] for i in b]) for b in first])
    assert spread < 0.5 * np.ptp(lengths)  # buckets group similar lengths

"""`mmemo data synth|check|folds`, and the demo corpus being made on first use."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter

from conftest import write_jsonl, write_wav

from mmemo.config import compose
from mmemo.data.check import check_corpus, write_group_folds
from mmemo.data.folds import read_fold
from mmemo.data.manifest import read_manifest
from mmemo.data.synthetic import synthesize_corpus
from mmemo.recipes import run_config as train


def _digest(root):
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(root.rglob("*.wav")))).hexdigest()


def test_synth_is_deterministic_complementary_and_speaker_independent(tiny_corpus, tmp_path):
    again = synthesize_corpus(tmp_path / "again", seed=3, speakers=4, utterances_per_speaker=16)
    assert (again / "manifest.jsonl").read_text() == (tiny_corpus / "manifest.jsonl").read_text()
    assert _digest(again) == _digest(tiny_corpus)
    utterances = read_manifest(tiny_corpus / "manifest.jsonl")
    assert Counter(u.emo for u in utterances) == {"angry": 16, "happy": 16, "neutral": 16, "sad": 16}
    cues = Counter(u.extra["cue"] for u in utterances)
    assert set(cues) == {"speech", "text", "both"} and min(cues.values()) >= 12
    assert all(u.text and u.speaker and u.session for u in utterances)
    for fold in (1, 2):
        splits = read_fold(tiny_corpus, fold)
        assert not {u.speaker for u in splits.test} & {u.speaker for u in splits.train + splits.valid}
    info = json.loads((tiny_corpus / "corpus.json").read_text())
    assert info["fold_groups"] == [["spk01", "spk02"], ["spk03", "spk04"]]


def test_synth_cli_refuses_to_overwrite(tmp_path):
    command = [sys.executable, "-m", "mmemo.cli", "data", "synth", "--out", str(tmp_path / "c"), "--speakers", "2",
               "--per-speaker", "4"]
    assert subprocess.run(command, capture_output=True, text=True).returncode == 0
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr and "--overwrite" in again.stderr


def test_check_reports_folds_and_bad_audio(tiny_corpus, tmp_path):
    report = check_corpus(tiny_corpus)
    assert report.ok and [f.fold for f in report.folds] == [1, 2]
    assert report.folds[0].sizes["test"] == 32 and report.folds[0].with_text == 64
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in tiny_corpus.iterdir():
        target = broken / item.name
        if item.name == "wav":
            subprocess.run(["cp", "-r", str(item), str(target)], check=True)
        else:
            target.symlink_to(item)
    victim = next((broken / "wav" / "spk01").glob("*.wav"))
    victim.write_bytes(b"not audio")
    result = subprocess.run([sys.executable, "-m", "mmemo.cli", "data", "check", str(broken), "--fold", "1"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert victim.stem in result.stdout and "corrupt or not an audio file" in result.stdout
    assert "PROBLEMS FOUND" in result.stdout


def test_folds_command_groups_whole_speakers(tmp_path):
    rows = []
    for speaker in ("a", "b", "c", "d", "e", "f"):
        for i in range(3):
            wav = write_wav(tmp_path / "audio" / f"{speaker}{i}.wav")
            rows.append({"key": f"{speaker}{i}", "wav": f"audio/{wav.name}", "emo": "neu", "speaker": speaker,
                         "session": "s1" if speaker in "ab" else "s2" if speaker in "cd" else "s3"})
    manifest = write_jsonl(tmp_path / "manifest.jsonl", rows)
    write_group_folds(manifest, tmp_path, group_by="session", name="toy")
    assert sorted(p.name for p in tmp_path.glob("fold_*")) == ["fold_1", "fold_2", "fold_3"]
    splits = read_fold(tmp_path, 2)
    assert {u.speaker for u in splits.test} == {"c", "d"}
    assert (splits.test[0].wav).startswith("audio/")  # written next to the manifest: paths stay relative
    elsewhere = write_group_folds(manifest, tmp_path / "out", group_by="speaker", n_folds=2)
    assert len(elsewhere) == 4 and read_fold(tmp_path / "out", 1).test[0].wav.startswith("/")


def test_default_train_synthesises_the_demo_corpus_on_first_use(tiny_bert_dir, tmp_path):
    cfg = compose("train", [f"paths.root_dir={tmp_path}", "data.synth.speakers=4",
                            "data.synth.utterances_per_speaker=8",
                            f"model.text.path={tiny_bert_dir}", "++trainer.fast_dev_run=true", "logger=csv",
                            "callbacks.progress_bar.refresh_rate=0"], output_dir=str(tmp_path / "run"))
    train(cfg)
    assert (tmp_path / "data" / "demo" / "fold_2" / "demo_test_fold_2.jsonl").is_file()

"""`mmemo data prepare` adapters: each corpus read from a fake tree in its original layout.

The fake trees (tests/fake_corpora.py) return the truth they encode; every
test compares the prepared manifests with it exactly, checks the folds, and
reads the outputs back with mmemo's own readers.
"""

from __future__ import annotations

import filecmp
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import fake_corpora as fake
import pytest
import soundfile
from conftest import write_wav

from mmemo.data.audio import AUDIO_SUFFIXES, load_audio
from mmemo.data.check import check_corpus
from mmemo.data.corpora import (
    CorpusLayoutError,
    adapters,
    available_corpora,
    get_adapter,
    prepare_corpus,
)
from mmemo.data.corpora.files import AudioIndex, audio_stem, is_audio
from mmemo.data.corpora.fold_rule import plan_folds, speaker_groups
from mmemo.data.corpora.meld import fix_text
from mmemo.data.folds import available_folds, fold_files, read_fold, read_stm_speakers
from mmemo.data.labels import LabelMap, load_label_map_file
from mmemo.data.manifest import ManifestError, Utterance, read_manifest

# --------------------------------------------------------------------------- helpers


def manifest_by_key(out: Path) -> dict[str, Utterance]:
    return {u.key: u for u in read_manifest(out / "manifest.jsonl")}


def fold_splits(out: Path, k: int) -> dict[str, list[Utterance]]:
    return {split: read_manifest(path) for split, path in fold_files(out, k).items()}


def check_outputs(out: Path, summary, *, speaker_independent: bool = True) -> list[dict[str, list[Utterance]]]:
    """Every fold reads back; folds cover the manifest; speaker independence as claimed; no '..' paths."""
    manifest = manifest_by_key(out)
    meta = json.loads((out / "corpus.json").read_text())
    assert meta["status"] == "complete" and meta["speaker_independent"] is speaker_independent
    assert summary.speaker_independent is speaker_independent
    assert meta["counts"]["total"] == len(manifest) == summary.total
    assert available_folds(out) == list(range(1, summary.n_folds + 1))
    label_map = LabelMap.build(out / "label_map.json")
    folds = []
    for k in available_folds(out):
        splits = fold_splits(out, k)
        keys = [u.key for us in splits.values() for u in us]
        assert sorted(keys) == sorted(manifest), f"fold {k} does not partition the manifest"
        test_speakers = {u.speaker for u in splits["test"]}
        other = {u.speaker for s in ("train", "valid") for u in splits.get(s, [])}
        assert bool(test_speakers & other) is (not speaker_independent)
        if speaker_independent:
            read = read_fold(out, k)
            assert {u.key for u in read.test} == {u.key for u in splits["test"]}
        for us in splits.values():
            label_map.apply(us)  # every label is known to label_map.json
        folds.append(splits)
    for u in manifest.values():
        assert Path(u.wav).is_absolute() or ".." not in Path(u.wav).parts
        assert (out / u.wav).is_file() if not Path(u.wav).is_absolute() else Path(u.wav).is_file()
        assert u.length and u.length > 0
    assert (out / "README.md").read_text().startswith("# ")
    return folds


def test_groups(folds) -> list[list[str]]:
    return [sorted({u.speaker for u in f["test"]}) for f in folds]


test_groups.__test__ = False  # a helper, not a test


# --------------------------------------------------------------------------- registry and errors


def test_registry_knows_every_corpus_and_names_them_on_error(tmp_path):
    assert {"cremad", "emobox", "emodb", "esd", "iemocap", "meld", "msppodcast", "ravdess"} <= set(available_corpora())
    assert get_adapter("CREMA-D") is adapters()["cremad"] and get_adapter("MSP-Podcast") is adapters()["msppodcast"]
    with pytest.raises(ValueError, match="unknown corpus 'msp'.*cremad, emobox, emodb, esd, iemocap, meld, msppodcast"):
        prepare_corpus("msp", tmp_path, tmp_path / "out")


@pytest.mark.parametrize("name, expected, source", [
    ("iemocap", "Session1/dialog/EmoEvaluation", "sail.usc.edu/iemocap"),
    ("meld", "train_sent_emo.csv", "affective-meld.github.io"),
    ("ravdess", "Actor_01", "zenodo.org/records/1188976"),
    ("cremad", "AudioWAV", "github.com/CheyneyComputerScience/CREMA-D"),
    ("emodb", "wav", "emodb.bilderbar.info"),
    ("esd", "0001/", "hltsingapore.github.io/ESD"),
    ("emobox", "fold_1", "github.com/emo-box/EmoBox"),
    ("msppodcast", "labels_consensus.csv", "ecs.utdallas.edu"),
])
def test_a_root_that_is_not_the_corpus_says_what_is_missing_and_where_to_get_it(tmp_path, name, expected, source):
    raw = tmp_path / "raw"
    (raw / "something_else").mkdir(parents=True)
    with pytest.raises(CorpusLayoutError) as error:
        prepare_corpus(name, raw, tmp_path / "out")
    assert expected in str(error.value) and source in str(error.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", sorted(adapters()))
def test_every_adapter_describes_itself_and_refuses_what_is_not_its_corpus(tmp_path, name):
    """The adapter contract, for every adapter found in mmemo/data/corpora/ (a new one the day it is added)."""
    adapter = adapters()[name]
    assert adapter.name == name and all((adapter.title, adapter.obtain, adapter.licence, adapter.layout))
    raw = tmp_path / "raw"
    write_wav(raw / "something_else" / "clip.wav")
    with pytest.raises(CorpusLayoutError) as error:
        prepare_corpus(name, raw, tmp_path / "out")
    assert adapter.title in str(error.value) and adapter.obtain.split()[0] in str(error.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="unknown option"):
        prepare_corpus(name, raw, tmp_path / "out", no_such_option="1")


def test_options_are_checked_and_coerced_from_strings(tmp_path):
    root, truth = fake.build_ravdess(tmp_path, actors=4)
    with pytest.raises(ValueError, match="unknown option.*'subset'.*its options are: folds, merge_calm, video_root"):
        prepare_corpus("ravdess", root, tmp_path / "out", subset="full")
    with pytest.raises(ValueError, match="'folds' must be one of emobox, speakers, loso"):
        prepare_corpus("ravdess", root, tmp_path / "out", folds="session")
    with pytest.raises(ValueError, match="takes true or false"):
        prepare_corpus("ravdess", root, tmp_path / "out", merge_calm="maybe")
    summary = prepare_corpus("ravdess", root, tmp_path / "out", merge_calm="true")  # as typed on a command line
    assert summary.options == {"merge_calm": True, "folds": "emobox", "video_root": None}
    assert "calm" not in summary.classes


def test_out_must_be_empty_or_an_earlier_prepare_of_the_same_corpus(tmp_path):
    root, _ = fake.build_ravdess(tmp_path, actors=5)
    with pytest.raises(FileExistsError, match="must differ from --root"):
        prepare_corpus("ravdess", root, root)
    foreign = tmp_path / "foreign"
    (foreign / "fold_1").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="did not write"):
        prepare_corpus("ravdess", root, foreign)
    out = tmp_path / "out"
    assert prepare_corpus("ravdess", root, out).n_folds == 5          # 5 speakers: leave-one-out
    assert prepare_corpus("ravdess", root, out, folds="emobox").n_folds == 5
    emodb_root, _ = fake.build_emodb(tmp_path)
    with pytest.raises(FileExistsError, match="holds a prepared 'ravdess' corpus"):
        prepare_corpus("emodb", emodb_root, out)


# --------------------------------------------------------------------------- the EmoBox fold rule


def _utterances(per_speaker: dict[str, Counter]) -> list[Utterance]:
    return [Utterance(key=f"{s}_{emo}_{i}", wav=f"/x/{s}_{emo}_{i}.wav", emo=emo, speaker=s)
            for s, counts in per_speaker.items() for emo, n in counts.items() for i in range(n)]


def test_emobox_rule_branches():
    label = lambda u: u.emo  # noqa: E731
    balanced = Counter({"ang": 4, "hap": 4, "neu": 8})
    three = plan_folds(_utterances({s: balanced for s in "abc"}), "emobox", label)
    assert len(three.folds) == 1 and not three.speaker_independent
    assert Counter(u.emo for u in three.folds[0]["test"]) == {"ang": 3, "hap": 3, "neu": 6}  # floor(25%)
    five = plan_folds(_utterances({s: balanced for s in "abcde"}), "emobox", label)
    assert five.speaker_independent and five.test_groups == [["a"], ["b"], ["c"], ["d"], ["e"]]
    nine = plan_folds(_utterances({s: balanced for s in "abcdefghi"}), "emobox", label)
    assert nine.test_groups == [["a", "c", "e", "g", "i"], ["b", "d", "f", "h"]]  # 9 // 4 = 2, dealt by id
    uneven = {s: balanced for s in "abcdefghi"} | {"i": Counter({"ang": 4, "hap": 3, "neu": 8})}
    one = plan_folds(_utterances(uneven), "emobox", label)
    assert len(one.folds) == 1 and "differs between speakers" in one.description
    assert Counter(u.emo for u in one.folds[0]["test"]) == {"ang": 9, "hap": 8, "neu": 18}
    again = plan_folds(list(reversed(_utterances(uneven))), "emobox", label)
    assert {u.key for u in again.folds[0]["test"]} == {u.key for u in one.folds[0]["test"]}
    assert plan_folds(_utterances(uneven), "speakers", label).test_groups == nine.test_groups
    assert speaker_groups(["m1", "f1", "m2", "f2"], 2, {"m1": "M", "m2": "M", "f1": "F", "f2": "F"}) == \
        [["f1", "m1"], ["f2", "m2"]]
    with pytest.raises(ValueError, match="at least 4 speakers"):
        plan_folds(_utterances({s: balanced for s in "abc"}), "speakers", label)


def test_emobox_rule_reproduces_emobox_splits_for_cremad_and_ravdess(emobox_dir):
    for name, test_counts in (("cremad", [1856]), ("ravdess", [240] * 6)):
        utterances = read_manifest(emobox_dir / name / f"{name}.jsonl")
        speakers = read_stm_speakers(emobox_dir / name / "data.seg.wrd.stm")
        for u in utterances:
            u.speaker = speakers[u.key]
        plan = plan_folds(utterances, "emobox", lambda u: u.emo)
        assert [len(f["test"]) for f in plan.folds] == test_counts
        emobox_test = Counter(u.emo for u in read_manifest(fold_files(emobox_dir / name, 1)["test"]))
        if name == "cremad":  # the same per-class test sizes as EmoBox's own CREMA-D fold
            assert Counter(u.emo for u in plan.folds[0]["test"]) == emobox_test
            assert not plan.speaker_independent
        else:
            assert plan.speaker_independent and all(len(g) == 4 for g in plan.test_groups)


# --------------------------------------------------------------------------- IEMOCAP


def test_iemocap_four_class_session_folds(tmp_path):
    root, truth = fake.build_iemocap(tmp_path)
    out = tmp_path / "out"
    summary = prepare_corpus("iemocap", root.parent, out)  # the folder holding IEMOCAP_full_release works too
    expected = {k: t for k, t in truth.items() if t["emo"] in ("ang", "hap", "exc", "neu", "sad")
                and k != fake.IEMOCAP_MISSING_WAV}
    manifest = manifest_by_key(out)
    assert sorted(manifest) == sorted(expected)
    for key, u in manifest.items():
        t = expected[key]
        assert (u.emo, u.text, u.speaker, u.session, u.gender) == (t["emo"], t["text"], t["speaker"],
                                                                   t["session"], t["gender"])
        assert u.extra["vad"] == t["vad"] and u.extra["improvised"] is t["improvised"]
        assert [u.extra["valence"], u.extra["arousal"], u.extra["dominance"]] == t["vad"]   # targets, 1-5
        assert u.length == pytest.approx(t["length"])
        assert u.wav == str(root / t["session"] / "sentences" / "wav" / key.rsplit("_", 1)[0] / f"{key}.wav")
    assert json.loads((out / "label_map.json").read_text()) == {"ang": "ang", "exc": "hap", "hap": "hap",
                                                                "neu": "neu", "sad": "sad"}
    merged = Counter({"ang": "ang", "exc": "hap", "hap": "hap", "neu": "neu", "sad": "sad"}[t["emo"]]
                     for t in expected.values())
    assert summary.class_counts == dict(merged) and summary.classes == ["ang", "hap", "neu", "sad"]
    folds = check_outputs(out, summary)
    assert test_groups(folds) == [[f"Ses0{n}F", f"Ses0{n}M"] for n in range(1, 6)]
    assert [len(f["test"]) for f in folds] == [8, 7, 8, 8, 8]  # session 2 lost its missing WAV
    failures = (out / "prepare_failures.tsv").read_text().splitlines()
    assert len(failures) == 2 and failures[1].startswith(f"{fake.IEMOCAP_MISSING_WAV}\t")
    assert "audio file not found" in failures[1] and "Ses02M_script01_1.txt:" in failures[1]
    meta = json.loads((out / "corpus.json").read_text())
    assert meta["options"] == {"subset": "four_class", "improvised_only": False, "folds": "session"}
    assert meta["counts"]["folds"]["2"]["test"] == summary.fold_counts[1]["test"]


def test_iemocap_full_subset_improvised_only_and_speaker_folds(tmp_path):
    root, truth = fake.build_iemocap(tmp_path)
    summary = prepare_corpus("iemocap", root, tmp_path / "full", subset="full")
    expected = {k for k in truth if k != fake.IEMOCAP_MISSING_WAV}
    assert set(manifest_by_key(tmp_path / "full")) == expected
    labels = json.loads((tmp_path / "full" / "label_map.json").read_text())
    assert labels == {e: e for e in ("ang", "exc", "fru", "hap", "neu", "sad", "sur", "xxx")}
    assert summary.raw_counts == dict(Counter(truth[k]["emo"] for k in expected))

    summary = prepare_corpus("iemocap", root, tmp_path / "impro", improvised_only="true", folds="speaker")
    manifest = manifest_by_key(tmp_path / "impro")
    assert set(manifest) == {k for k, t in truth.items() if t["improvised"] and t["emo"] in
                             ("ang", "hap", "exc", "neu", "sad")}
    assert all("_impro" in k for k in manifest)
    folds = check_outputs(tmp_path / "impro", summary)
    assert test_groups(folds) == [[f"Ses0{n}{g}"] for n in range(1, 6) for g in "FM"]
    assert summary.n_folds == 10


def test_iemocap_malformed_label_line_is_reported_with_file_and_line(tmp_path):
    root, _ = fake.build_iemocap(tmp_path)
    path = root / "Session3" / "dialog" / "EmoEvaluation" / "Ses03F_impro01.txt"
    lines = path.read_text().splitlines()
    lines[2] = "[6.2901 - 8.2357]\tSes03F_impro01_F000\tneu"            # the V, A, D part is missing
    lines[9] = lines[9].replace("\tang\t", "\tanger\t")                    # not an IEMOCAP label
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError) as error:
        prepare_corpus("iemocap", root, tmp_path / "out")
    message = str(error.value)
    assert f"{path}:3: malformed evaluation line" in message
    assert f"{path}:10: unknown label 'anger'" in message
    assert "2 manifest problems" in message


# --------------------------------------------------------------------------- MELD


@pytest.fixture(scope="module")
def meld_tree(tmp_path_factory):
    return fake.build_meld(tmp_path_factory.mktemp("meld"))


def test_meld_official_split_converted_audio_and_text(meld_tree, tmp_path):
    root, truth = meld_tree
    out = tmp_path / "out"
    summary = prepare_corpus("meld", root, out, jobs=2)
    left_out = {f"dia{d}_utt{u}-{s}" for s, d, u in (fake.MELD_MISSING, fake.MELD_CORRUPT)}
    manifest = manifest_by_key(out)
    assert sorted(manifest) == sorted(set(truth) - left_out)
    for key, u in manifest.items():
        t = truth[key]
        assert (u.emo, u.text, u.speaker, u.extra["sentiment"], u.extra["split"]) == \
            (t["emo"], t["text"], t["speaker"], t["sentiment"], t["split"])
        assert u.wav == f"wav/{t['split']}/{key.rsplit('-', 1)[0]}.wav"
        info = soundfile.info(str(out / u.wav))
        assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
        assert u.length == pytest.approx(info.duration) and 0.25 < u.length < 0.45
    assert manifest["dia0_utt1-train"].text == "You must’ve had your hands full."   # Windows-1252 CSV
    assert manifest["dia0_utt0-dev"].text == "Oh my God, that’s so sweet…"         # C1 mojibake
    assert manifest["dia1_utt0-test"].text == "I’m scared, okay?"                  # UTF-8 read as 1252
    folds = check_outputs(out, summary, speaker_independent=False)
    assert len(folds) == 1 and set(folds[0]) == {"train", "valid", "test"}
    assert {u.key for u in folds[0]["valid"]} == {k for k in manifest if k.endswith("-dev")}
    assert {u.key for u in folds[0]["test"]} == {k for k in manifest if k.endswith("-test")}
    meta = json.loads((out / "corpus.json").read_text())
    assert "official" in meta["speaker_independent_reason"] and meta["speaker_overlap"] == ["Chandler", "Rachel"]
    assert meta["audio_conversion"] == {"converted": 9, "reused": 0, "failed": 1}
    rows = [line.split("\t") for line in (out / "prepare_failures.tsv").read_text().splitlines()[1:]]
    by_key = {r[0]: r for r in rows}
    assert set(by_key) == left_out
    missing = by_key["dia1_utt1-train"]
    assert missing[3] == "clip not found" and missing[4] == f"{truth['dia1_utt1-train']['csv']}:5"
    assert "ffmpeg could not read it" in by_key["dia0_utt1-dev"][3]
    assert summary.class_counts["joy"] == 2 and summary.classes == list(
        ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"))

    before = {p: p.stat().st_mtime_ns for p in (out / "wav").rglob("*.wav")}
    again = prepare_corpus("meld", root, out, label="sentiment")   # a rerun reuses the converted clips
    assert json.loads((out / "corpus.json").read_text())["audio_conversion"] == {
        "converted": 0, "reused": 9, "failed": 1}
    assert {p: p.stat().st_mtime_ns for p in (out / "wav").rglob("*.wav")} == before
    assert again.classes == ["negative", "neutral", "positive"]
    assert {k: u.emo for k, u in manifest_by_key(out).items()} == {k: truth[k]["sentiment"] for k in manifest}


def test_meld_malformed_csv_row_is_reported_with_file_and_line(meld_tree, tmp_path):
    root = tmp_path / "MELD.Raw"
    shutil.copytree(meld_tree[0], root)
    rows = list(fake.MELD_ROWS["dev"])
    rows[1] = ("Get out!", "Ross", "angry", "negative", 0, 1)   # MELD says "anger"
    rows[2] = ("Eww.", "Monica", "disgust", "negative", "one", 0)
    (root / "dev_sent_emo.csv").write_bytes(fake.meld_csv_text("dev", rows).encode("utf-8"))
    with pytest.raises(ManifestError) as error:
        prepare_corpus("meld", root, tmp_path / "out")
    csv_path = root / "dev_sent_emo.csv"
    assert f"{csv_path}:3: unknown Emotion 'angry'" in str(error.value)
    assert f"{csv_path}:4: Dialogue_ID/Utterance_ID must be integers" in str(error.value)


def test_meld_text_repair():
    assert fix_text("It\x92s") == "It’s"
    assert fix_text("Itâ€™s â€” fine") == "It’s — fine"
    assert fix_text("  café  ") == "café"


# --------------------------------------------------------------------------- RAVDESS


def test_ravdess_speech_files_labels_texts_and_emobox_folds(tmp_path):
    root, truth = fake.build_ravdess(tmp_path)
    out = tmp_path / "out"
    summary = prepare_corpus("ravdess", tmp_path, out)   # the folder above Actor_* is found too
    manifest = manifest_by_key(out)
    assert sorted(manifest) == sorted(truth)              # song and hidden files are ignored
    for key, u in manifest.items():
        t = truth[key]
        assert (u.emo, u.text, u.speaker, u.gender, u.lang) == (t["emo"], t["text"], t["speaker"],
                                                                t["gender"], "en")
        assert u.wav == str(root / f"Actor_{t['speaker']}" / f"{key}.wav")
    folds = check_outputs(out, summary)
    # 24 balanced actors -> 24 // 4 = 6 folds; sorted by (gender, id) and dealt: 2 women + 2 men each
    assert test_groups(folds) == [sorted([f"{2 * k - 1:02d}", f"{2 * k:02d}", f"{2 * k + 11:02d}",
                                          f"{2 * k + 12:02d}"]) for k in range(1, 7)]
    assert summary.class_counts == {e: 24 for e in fake.RAVDESS_EMOTIONS.values()}
    assert "no emotion signal" in (out / "README.md").read_text()

    merged = prepare_corpus("ravdess", root, tmp_path / "merged", merge_calm=True, folds="loso")
    assert merged.classes == sorted(set(fake.RAVDESS_EMOTIONS.values()) - {"calm"})
    assert merged.class_counts["neutral"] == 48 and merged.n_folds == 24
    assert json.loads((tmp_path / "merged" / "label_map.json").read_text())["calm"] == "neutral"


def test_ravdess_badly_coded_file_name_is_reported(tmp_path):
    root, _ = fake.build_ravdess(tmp_path, actors=4)
    bad = fake.write_wav(root / "Actor_02" / "03-01-09-01-01-01-02.wav")
    wrong_actor = fake.write_wav(root / "Actor_03" / "03-01-01-01-01-02-04.wav")
    with pytest.raises(ManifestError) as error:
        prepare_corpus("ravdess", root, tmp_path / "out")
    assert f"{bad}: emotion code 09 is not 01-08" in str(error.value)
    assert f"{wrong_actor}: actor 04 in the name but the file is in Actor_03" in str(error.value)


# --------------------------------------------------------------------------- CREMA-D


def test_cremad_default_matches_emobox_single_stratified_fold(tmp_path):
    root, truth = fake.build_cremad(tmp_path)
    out = tmp_path / "out"
    summary = prepare_corpus("cremad", root, out)
    manifest = manifest_by_key(out)
    assert sorted(manifest) == sorted(truth)
    for key, u in manifest.items():
        t = truth[key]
        assert (u.emo, u.text, u.speaker, u.gender) == (t["emo"], t["text"], t["speaker"], t["gender"])
        assert u.extra["sentence"] == key.split("_")[1]
    folds = check_outputs(out, summary, speaker_independent=False)
    per_class = Counter(t["emo"] for t in truth.values())
    assert len(folds) == 1
    assert Counter(u.emo for u in folds[0]["test"]) == {e: n // 4 for e, n in per_class.items()}
    assert "one fold with floor(25%)" in summary.protocol
    first = (out / "fold_1" / "cremad_test_fold_1.jsonl").read_bytes()
    prepare_corpus("cremad", root, out)
    assert (out / "fold_1" / "cremad_test_fold_1.jsonl").read_bytes() == first   # deterministic


def test_cremad_speaker_folds_and_balanced_corpus(tmp_path):
    root, truth = fake.build_cremad(tmp_path)
    summary = prepare_corpus("cremad", root, tmp_path / "out", folds="speakers")
    folds = check_outputs(tmp_path / "out", summary)
    # women 1002 1003 1004 1008, then men 1001 1005 1006 1007, dealt into 8 // 4 = 2 folds
    assert test_groups(folds) == [["1001", "1002", "1004", "1006"], ["1003", "1005", "1007", "1008"]]
    balanced_root, _ = fake.build_cremad(tmp_path / "balanced", balanced=True)
    assert prepare_corpus("cremad", balanced_root, tmp_path / "out2").n_folds == 2


# --------------------------------------------------------------------------- EmoDB


def test_emodb_labels_texts_and_fold_schemes(tmp_path):
    root, truth = fake.build_emodb(tmp_path)
    summary = prepare_corpus("emodb", root, tmp_path / "rule")
    manifest = manifest_by_key(tmp_path / "rule")
    assert sorted(manifest) == sorted(truth)
    for key, u in manifest.items():
        t = truth[key]
        assert (u.emo, u.text, u.speaker, u.gender, u.lang) == (t["emo"], t["text"], t["speaker"],
                                                                t["gender"], "de")
    check_outputs(tmp_path / "rule", summary, speaker_independent=False)    # unbalanced -> one stratified fold
    assert summary.n_folds == 1

    loso = prepare_corpus("emodb", root, tmp_path / "loso", folds="loso")
    assert test_groups(check_outputs(tmp_path / "loso", loso)) == [[s] for s in sorted(fake.EMODB_SPEAKERS)]
    two = prepare_corpus("emodb", root, tmp_path / "two", folds="speakers")
    assert test_groups(check_outputs(tmp_path / "two", two)) == [["08", "10", "12", "13", "16"],
                                                                 ["03", "09", "11", "14", "15"]]


def test_emodb_unknown_speaker_is_reported(tmp_path):
    root, _ = fake.build_emodb(tmp_path)
    bad = fake.write_wav(root / "wav" / "99a01Wa.wav")
    with pytest.raises(ManifestError, match=re.escape(f"{bad}: unknown speaker 99")):
        prepare_corpus("emodb", root, tmp_path / "out")


# --------------------------------------------------------------------------- ESD


def test_esd_flat_layout_encodings_languages_and_folds(tmp_path):
    root, truth = fake.build_esd(tmp_path)
    out = tmp_path / "out"
    summary = prepare_corpus("esd", tmp_path, out)
    manifest = manifest_by_key(out)
    assert sorted(manifest) == sorted(truth)
    for key, u in manifest.items():
        t = truth[key]
        assert (u.emo, u.text, u.speaker, u.lang) == (t["emo"], t["text"], t["speaker"], t["lang"])
    assert manifest["0001_000351"].text == "打远一看，它们的确很是美丽，"        # GB18030 transcript
    folds = check_outputs(out, summary)
    # Mandarin 0001-0010 then English 0011-0020, dealt into 20 // 4 = 5 folds: 2 + 2 per fold
    assert test_groups(folds) == [[f"{s:04d}" for s in (k, k + 5, k + 10, k + 15)] for k in range(1, 6)]
    assert "mismatched_transcript_emotions" in json.loads((out / "corpus.json").read_text())
    assert not summary.notes or "disagree" not in " ".join(summary.notes)

    english = prepare_corpus("esd", root, tmp_path / "en", language="en")
    assert english.speakers == [f"{s:04d}" for s in range(11, 21)] and english.n_folds == 2


def test_esd_split_subfolders_and_official_fold(tmp_path):
    root, truth = fake.build_esd(tmp_path, layout="split", speakers=range(9, 13))
    summary = prepare_corpus("esd", root, tmp_path / "official", folds="official")
    folds = check_outputs(tmp_path / "official", summary, speaker_independent=False)
    for split, sub in (("train", "train"), ("valid", "evaluation"), ("test", "test")):
        assert {u.key for u in folds[0][split]} == {k for k, t in truth.items() if t["split"] == sub}
    assert manifest_by_key(tmp_path / "official")["0009_000001"].extra["split"] == "evaluation"
    rule = prepare_corpus("esd", root, tmp_path / "rule")          # 4 balanced speakers: leave-one-out
    assert test_groups(check_outputs(tmp_path / "rule", rule)) == [["0009"], ["0010"], ["0011"], ["0012"]]
    flat_root, _ = fake.build_esd(tmp_path / "flat", speakers=range(11, 15))
    with pytest.raises(ValueError, match="folds=official needs the train/ evaluation/ test/ subfolders"):
        prepare_corpus("esd", flat_root, tmp_path / "flat_out", folds="official")


def test_esd_malformed_transcript_line_is_reported(tmp_path):
    root, _ = fake.build_esd(tmp_path, speakers=range(11, 15))
    path = root / "0012" / "0012.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[4] = "0012_000352 the emotion column and the tab are missing"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=re.escape(f"{path}:5: malformed transcript line")):
        prepare_corpus("esd", root, tmp_path / "out")


# --------------------------------------------------------------------------- EmoBox folders


def _same_files(source: Path, copy: Path) -> list[str]:
    """EmoBox's files as copied: byte for byte, but for RAVDESS lines, which gain the 'text' their names give."""
    from mmemo.data.corpora.ravdess import transcript_of

    names = [p.relative_to(source).as_posix() for p in sorted(source.rglob("*")) if p.is_file()]
    for name in names:
        if name.endswith(".jsonl") and "ravdess" in name:
            for new, old in zip(_rows(copy / name), _rows(source / name), strict=True):
                assert new.pop("text") == transcript_of(old["wav"]) and "text" not in old, name
                assert new == old, name
            continue
        assert filecmp.cmp(source / name, copy / name, shallow=False), name
    return names


def test_emobox_iemocap_copied_byte_for_byte_with_standard_counts(emobox_dir, tmp_path):
    source = emobox_dir / "iemocap"
    out = tmp_path / "iemocap"
    summary = prepare_corpus("emobox", source, out, audio_root=str(tmp_path))
    copied = _same_files(source, out)
    assert "fold_5/iemocap_test_fold_5.jsonl" in copied and "data.seg.wrd.stm" in copied
    label_map = LabelMap.build(load_label_map_file(out / "label_map.json"))
    tests = []
    for k in range(1, 6):
        kept, targets, _ = label_map.apply(read_fold(out, k).test)   # resolves no audio
        tests.append(Counter(label_map.classes[t] for t in targets))
        assert len(kept) == [1085, 1023, 1151, 1031, 1241][k - 1]
    total = sum(tests, Counter())
    assert sum(total.values()) == 5531 and total["Happy"] == 1636
    assert summary.total == 5531 and summary.class_counts["Happy"] == 1636 and summary.speaker_independent
    meta = json.loads((out / "corpus.json").read_text())
    assert meta["audio_root"] == str(tmp_path) and meta["audio_missing"] == 5531
    assert str(tmp_path) in (out / "README.md").read_text()


@pytest.mark.parametrize("name, total, folds, independent", [
    ("meld", 13706, 1, False), ("ravdess", 1440, 6, True), ("cremad", 7442, 1, False)])
def test_emobox_other_datasets(emobox_dir, tmp_path, name, total, folds, independent):
    out = tmp_path / name
    summary = prepare_corpus("emobox", emobox_dir / name, out)
    _same_files(emobox_dir / name, out)
    assert (summary.total, summary.n_folds, summary.speaker_independent) == (total, folds, independent)
    meta = json.loads((out / "corpus.json").read_text())
    assert meta["speaker_independent"] is independent and meta["dataset"] == name
    assert ("valid" in summary.fold_counts[0]) is (name == "meld")


def test_emobox_malformed_line_is_reported(emobox_dir, tmp_path):
    source = tmp_path / "ravdess"
    shutil.copytree(emobox_dir / "ravdess", source)
    for path in source.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    labelled = source / "fold_1" / "ravdess_test_fold_1.jsonl"
    lines = labelled.read_text().splitlines()
    row = json.loads(lines[6])
    row["emo"] = "Gloomy"
    lines[6] = json.dumps(row)
    labelled.write_text("\n".join(lines) + "\n")
    broken = source / "fold_2" / "ravdess_test_fold_2.jsonl"
    lines = broken.read_text().splitlines()
    lines[9] = "{not json"
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError) as error:
        prepare_corpus("emobox", source, tmp_path / "out")
    assert f"{broken}:10: bad JSON" in str(error.value)
    assert f"{labelled}:7: label 'Gloomy' is not in label_map.json" in str(error.value)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- converted copies (FLAC, ...)


def test_audio_index_finds_one_file_per_name_preferring_wav_then_the_suffix_order(tmp_path):
    for name in ("x.ogg", "x.flac", "y.mp3", "y.WAV", "._z.wav", "z.txt", "list.csv"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.wav").mkdir()
    assert AUDIO_SUFFIXES[:2] == (".wav", ".flac") and is_audio("a/b.FLAC") and not is_audio("a/._b.wav")
    assert audio_stem("03-01-01.flac") == "03-01-01" and audio_stem("notes.txt") == "notes.txt"
    index = AudioIndex()
    assert index.files(tmp_path) == [tmp_path / "x.flac", tmp_path / "y.WAV"]   # not z.txt, ._z.wav, sub.wav/
    assert index.find(tmp_path / "x.wav") == tmp_path / "x.flac"               # a label file names x.wav
    assert index.find(tmp_path / "x") == tmp_path / "x.flac" and index.find(tmp_path / "z.wav") is None
    assert index.find(tmp_path / "missing" / "x.wav") is None and index.files(tmp_path / "missing") == []
    assert len(index.duplicates) == 2 and index.note().startswith("2 name(s) have several audio files")


# name -> the tree, small (a few speakers)
CONVERTIBLE = {
    "iemocap": lambda base: fake.build_iemocap(base),
    "ravdess": lambda base: fake.build_ravdess(base, actors=4),
    "cremad": lambda base: fake.build_cremad(base),
    "emodb": lambda base: fake.build_emodb(base),
    "esd": lambda base: fake.build_esd(base, speakers=range(11, 15)),
}


def _fold_keys(out: Path, summary) -> list[dict[str, list[str]]]:
    return [{s: sorted(u.key for u in us) for s, us in fold_splits(out, k).items()}
            for k in range(1, summary.n_folds + 1)]


@pytest.mark.parametrize("name", sorted(CONVERTIBLE))
def test_a_flac_copy_of_a_corpus_is_read_like_the_original(tmp_path, name):
    root, _ = CONVERTIBLE[name](tmp_path / "raw")
    original = prepare_corpus(name, root, tmp_path / "from_wav")
    before = manifest_by_key(tmp_path / "from_wav")
    assert fake.convert_tree(root) and not [p for p in root.rglob("*.wav") if not p.name.startswith(".")]
    folder = Path(next(iter(before.values())).wav).parent
    (folder / "notes.txt").write_text("not audio\n")            # non-audio files next to the audio are ignored
    (folder / "list.csv").write_text("file,label\n")
    summary = prepare_corpus(name, root, tmp_path / "from_flac")
    after = manifest_by_key(tmp_path / "from_flac")
    assert sorted(after) == sorted(before)
    for key, u in after.items():
        was = before[key]
        assert u.wav == str(Path(was.wav).with_suffix(".flac")) and u.length == pytest.approx(was.length)
        assert (u.emo, u.speaker, u.text, u.gender, u.lang) == (was.emo, was.speaker, was.text, was.gender, was.lang)
    assert _fold_keys(tmp_path / "from_flac", summary) == _fold_keys(tmp_path / "from_wav", original)
    check_outputs(tmp_path / "from_flac", summary, speaker_independent=original.speaker_independent)
    assert not any("several audio files" in note for note in summary.notes)
    assert summary.failures == original.failures    # IEMOCAP's absent WAV is reported as before


@pytest.mark.parametrize("name", sorted(CONVERTIBLE))
def test_a_name_with_both_a_wav_and_a_flac_uses_the_wav_and_says_so(tmp_path, name):
    root, _ = CONVERTIBLE[name](tmp_path / "raw")
    prepare_corpus(name, root, tmp_path / "from_wav")
    before = manifest_by_key(tmp_path / "from_wav")
    both = sorted(before)[1]
    fake.convert_tree(root, also=[both])                       # x.wav stays; x.flac (twice as long) is added
    assert Path(before[both].wav).is_file() and Path(before[both].wav).with_suffix(".flac").is_file()
    summary = prepare_corpus(name, root, tmp_path / "mixed")
    after = manifest_by_key(tmp_path / "mixed")
    assert sorted(after) == sorted(before)
    assert after[both].wav == before[both].wav and after[both].length == pytest.approx(before[both].length)
    assert all(u.wav.endswith(".flac") for key, u in after.items() if key != both)
    notes = [n for n in summary.notes if "several audio files" in n]
    assert len(notes) == 1 and notes[0].startswith("1 name(s)") and f"{both}.wav, {both}.flac" in notes[0]
    assert notes[0] in json.loads((tmp_path / "mixed" / "corpus.json").read_text())["notes"]
    check_outputs(tmp_path / "mixed", summary, speaker_independent=summary.speaker_independent)


def test_ravdess_flac_copy_with_a_stereo_file_checks_clean_and_bad_names_are_still_reported(tmp_path):
    root, truth = fake.build_ravdess(tmp_path, actors=4)
    stereo = sorted(truth)[3]
    fake.convert_tree(root, stereo=[stereo])
    path = root / f"Actor_{truth[stereo]['speaker']}" / f"{stereo}.flac"
    assert soundfile.info(str(path)).channels == 2
    out = tmp_path / "out"
    prepare_corpus("ravdess", root, out)
    report = check_corpus(out)                                 # decodes every clip as training does
    assert report.ok, report.render()
    clip = load_audio(path)
    assert clip.source_channels == 2 and clip.wave.ndim == 1   # downmixed to mono
    bad = fake.write_wav(root / "Actor_02" / "03-01-09-01-01-01-02.flac")
    (root / "Actor_02" / "03-01-01-01-01-01-02.txt").write_text("a note, not audio\n")   # ignored
    with pytest.raises(ManifestError, match=re.escape(f"{bad}: emotion code 09 is not 01-08")):
        prepare_corpus("ravdess", root, out)


def test_meld_flac_copies_are_found_under_the_csv_names_and_converted(meld_tree, tmp_path):
    root = tmp_path / "MELD.Raw"
    shutil.copytree(meld_tree[0], root)
    fake.convert_tree(root, source=".mp4", also=["dia0_utt0"])   # dia0_utt0 keeps its MP4 too, in every split
    assert not (root / "train" / "train_splits" / "dia0_utt1.mp4").exists()
    out = tmp_path / "out"
    summary = prepare_corpus("meld", root, out, jobs=2)
    manifest = manifest_by_key(out)
    left_out = {f"dia{d}_utt{u}-{s}" for s, d, u in (fake.MELD_MISSING, fake.MELD_CORRUPT)}
    assert sorted(manifest) == sorted(set(meld_tree[1]) - left_out)
    for key, u in manifest.items():
        assert u.wav == f"wav/{u.extra['split']}/{key.rsplit('-', 1)[0]}.wav"
        info = soundfile.info(str(out / u.wav))
        assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
        # dia0_utt0: the FLAC (twice as long) comes before the MP4 in the suffix order
        assert u.length == pytest.approx(0.6 if key.startswith("dia0_utt0-") else 0.3, abs=0.05)
    assert json.loads((out / "corpus.json").read_text())["audio_conversion"] == {
        "converted": 9, "reused": 0, "failed": 1}
    rows = {r.split("\t")[0]: r.split("\t") for r in (out / "prepare_failures.tsv").read_text().splitlines()[1:]}
    assert set(rows) == left_out and rows["dia1_utt1-train"][3] == "clip not found"
    assert rows["dia1_utt1-train"][2].endswith("train_splits/dia1_utt1.mp4")    # the name the CSV gives
    assert "ffmpeg could not read it" in rows["dia0_utt1-dev"][3]
    assert any(n.startswith("3 name(s) have several audio files") for n in summary.notes)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_emobox_audio_kept_under_another_prefix_as_flac(tmp_path):
    source, audio_root, truth = fake.build_emobox_ravdess(tmp_path / "EmoBox" / "data",
                                                          tmp_path / "realdata" / "ravdess")
    out = tmp_path / "out"
    summary = prepare_corpus("emobox", source, out, audio_root=str(audio_root))
    meta = json.loads((out / "corpus.json").read_text())
    assert meta["audio_root"] == str(audio_root) and meta["audio_missing"] == 0
    assert meta["audio_paths"]["dropped_prefix"] == "downloads/ravdess/audio"
    assert meta["audio_paths"]["rewritten"] == len(truth) == summary.total == 32
    for name in ("label_map.json", "data.seg.wrd.stm", "corpus.cfg"):
        assert filecmp.cmp(source / name, out / name, shallow=False)
    assert not (out / "prepare_failures.tsv").exists()
    for k in range(1, 5):
        for _split, path in fold_files(source, k).items():
            copied = _rows(out / f"fold_{k}" / path.name)
            original = _rows(path)
            assert [r["key"] for r in copied] == [r["key"] for r in original]     # keys, order, folds as EmoBox
            for new, old in zip(copied, original, strict=True):
                assert new["wav"] == truth[old["key"]]["flac"] and new["emobox_wav"] == old["wav"]
                assert new["text"] in ("Kids are talking by the door", "Dogs are sitting by the door")
                assert {n: v for n, v in new.items() if n not in ("wav", "emobox_wav", "text")} == \
                    {n: v for n, v in old.items() if n != "wav"}               # labels and all else unchanged
    assert [r["wav"] for r in _rows(out / "ravdess.jsonl")] == [truth[r["key"]]["flac"] for r in
                                                                _rows(source / "ravdess.jsonl")]
    report = check_corpus(out)                                  # training's data module finds every file
    assert report.ok, report.render()
    assert [sum(f.sizes.values()) for f in report.folds] == [32] * 4
    assert "emobox_wav" in (out / "README.md").read_text()

    # one converted file missing, one name with a WAV next to its FLAC
    gone, both = sorted(truth)[0], sorted(truth)[5]
    (audio_root / truth[gone]["flac"]).unlink()
    fake.write_wav((audio_root / truth[both]["flac"]).with_suffix(".wav"))
    again = prepare_corpus("emobox", source, out, audio_root=str(audio_root))
    meta = json.loads((out / "corpus.json").read_text())
    assert again.total == 32 and meta["audio_missing"] == 1 and meta["audio_paths"]["found"] == 31
    rows = [r.split("\t") for r in (out / "prepare_failures.tsv").read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == [gone] and "audio file not found" in rows[0][3]
    wavs = {r["key"]: r["wav"] for r in _rows(out / "ravdess.jsonl")}
    assert wavs[both] == truth[both]["flac"][: -len(".flac")] + ".wav"
    assert wavs[gone] == f"{fake.EMOBOX_RAVDESS_PREFIX}/Actor_01/{gone.removeprefix('ravdess-')}.wav"  # as EmoBox
    assert any("1 of 32 audio files are not under" in n for n in again.notes)
    assert any(n.startswith("1 name(s) have several audio files") for n in again.notes)


def test_emobox_audio_where_emobox_says_is_not_rewritten(tmp_path):
    source, _, truth = fake.build_emobox_ravdess(tmp_path / "data", tmp_path / "elsewhere", actors=4)
    checkout = tmp_path / "EmoBox"
    for row in _rows(source / "ravdess.jsonl"):
        fake.write_wav(checkout / row["wav"], 0.05)
    prepare_corpus("emobox", source, tmp_path / "out", audio_root=str(checkout))
    _same_files(source, tmp_path / "out")                       # byte for byte, as before
    meta = json.loads((tmp_path / "out" / "corpus.json").read_text())
    assert meta["audio_missing"] == 0 and meta["audio_paths"]["rewritten"] == 0
    assert meta["audio_paths"]["dropped_prefix_components"] == 0


# --------------------------------------------------------------------------- MSP-Podcast


def test_msp_podcast_official_splits_test_sets_dimensions_and_votes(tmp_path):
    root, truth = fake.build_msp_podcast(tmp_path / "raw")
    summary = prepare_corpus("msp-podcast", root, tmp_path / "out")
    out = tmp_path / "out"
    manifest = manifest_by_key(out)
    assert set(manifest) == set(truth)   # X (no agreement) stays: its ratings train dimensional runs
    for key, t in truth.items():
        u = manifest[key]
        assert (u.extra["arousal"], u.extra["valence"], u.extra["dominance"]) == (t["arousal"], t["valence"],
                                                                                  t["dominance"])
        assert u.speaker == t["speaker"] and u.text == t["text"] and u.extra["split"] == t["split"]
    assert manifest["MSP-PODCAST_0002_0003"].emo == "no_agreement"
    # votes for the eight challenge classes only ("Other-Annoyed" is not one of them)
    assert manifest["MSP-PODCAST_0001_0001"].extra["emo_dist"] == {"angry": 2, "contempt": 1}
    assert manifest["MSP-PODCAST_0002_0003"].extra["emo_dist"] == {"happy": 1, "neutral": 1, "sad": 1}
    assert "emo_dist" not in manifest["MSP-PODCAST_0002_0001"].extra
    info = json.loads((out / "corpus.json").read_text())
    assert info["dimensions"] == {"arousal": [1.0, 7.0], "valence": [1.0, 7.0], "dominance": [1.0, 7.0]}
    assert info["test_sets"] == ["Test1", "Test2"] and info["speaker_independent"] is True
    label_map = json.loads((out / "label_map.json").read_text())
    assert label_map["no_agreement"] is None and label_map["other"] is None and label_map["contempt"] == "contempt"
    # fold k: Train / Development / Test k
    assert summary.n_folds == 2 and available_folds(out) == [1, 2]   # one fold per test set, not a partition
    folds = [fold_splits(out, k) for k in (1, 2)]
    by_split = Counter(t["split"] for t in truth.values())
    for k, test_set in enumerate(("Test1", "Test2")):
        sizes = {s: len(us) for s, us in folds[k].items()}
        assert sizes == {"train": by_split["Train"], "valid": by_split["Development"], "test": by_split[test_set]}
        assert {u.extra["split"] for u in folds[k]["test"]} == {test_set}
        known = {u.speaker for u in folds[k]["test"] if u.speaker}
        assert known and not known & {u.speaker for s in ("train", "valid") for u in folds[k][s]}
    # `mmemo data check` sizes: what a categorical run keeps (X dropped from train) per official split
    report = check_corpus(out)
    assert report.ok, report.render()
    assert [f.sizes for f in report.folds] == [{"train": 5, "valid": 2, "test": 3}, {"train": 5, "valid": 2,
                                                                                     "test": 3}]
    assert "fold 1: train 5, valid 2, test 3" in report.render()
    # the official partition sizes as a dimensional run sees them (the no-agreement segment is rated)
    assert report.folds[0].rated == {"train": by_split["Train"], "valid": 2, "test": 3}
    assert "rated on arousal, valence, dominance (task=dimensional, lines without a class included): train 6, " \
           "valid 2, test 3" in report.render()


def test_msp_podcast_speaker_in_train_and_test_is_refused_by_prepare_and_by_check(tmp_path):
    rows = list(fake.MSP_ROWS)
    rows[9] = ("MSP-PODCAST_0005_0002", "N", 3.6, 4.4, 3.8, "127", "Male", "Test1")   # 127 is a Train speaker
    root, _ = fake.build_msp_podcast(tmp_path / "raw", rows)
    consensus = root / "Labels" / "labels_consensus.csv"
    with pytest.raises(ValueError, match=rf"{re.escape(str(consensus))}:11: speaker 127 is in Test1 and in Train "
                                         r"\(line 2\)"):
        prepare_corpus("msppodcast", root, tmp_path / "out")
    # a prepared folder edited afterwards: `mmemo data check` refuses the fold
    clean, _ = fake.build_msp_podcast(tmp_path / "clean")
    prepare_corpus("msppodcast", clean, tmp_path / "ok")
    test_file = tmp_path / "ok" / "fold_1" / "msppodcast_test_fold_1.jsonl"
    lines = [json.loads(line) for line in test_file.read_text().splitlines()]
    lines[0]["speaker"] = "spk127"
    test_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = check_corpus(tmp_path / "ok", folds=[1])
    assert not report.ok and "speaker 'spk127' is in both train and test" in report.folds[0].error


def test_msp_podcast_bad_rating_and_unknown_class_are_reported_with_file_and_line(tmp_path):
    rows = list(fake.MSP_ROWS)
    rows[1] = ("MSP-PODCAST_0001_0002", "H", 8.5, 6.4, 4.4, "127", "Male", "Train")
    rows[2] = ("MSP-PODCAST_0002_0001", "Q", 3.8, 4.0, 4.0, "128", "Female", "Train")
    root, _ = fake.build_msp_podcast(tmp_path / "raw", rows)
    consensus = root / "Labels" / "labels_consensus.csv"
    with pytest.raises(ValueError) as error:
        prepare_corpus("msppodcast", root, tmp_path / "out")
    assert f"{consensus}:3: EmoAct must be a number in [1, 7], got '8.5'" in str(error.value)
    assert f"{consensus}:4: unknown EmoClass 'Q'" in str(error.value)
    assert not (tmp_path / "out" / "manifest.jsonl").exists()

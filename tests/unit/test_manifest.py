"""Malformed manifests: every problem is reported with its file, line number and cause."""

from __future__ import annotations

import pytest
from conftest import write_jsonl, write_wav

from mmemo.data.labels import LabelMap
from mmemo.data.manifest import ManifestError, read_manifest, resolve_audio_paths, write_manifest

GOOD = {"key": "u1", "wav": "a.wav", "emo": "hap", "speaker": "s1", "text": "hello"}


def test_reads_emobox_fields_and_keeps_extras(tmp_path):
    row = {"key": "iemocap-Ses01F_impro01_F000", "dataset": "iemocap", "wav": "x.wav", "type": "raw",
           "sample_rate": 16000, "num_frame": 32000.0, "task": "category", "length": 2.0, "emo": "neu",
           "channel": 1}
    path = write_jsonl(tmp_path / "m.jsonl", [row])
    [utterance] = read_manifest(path)
    assert (utterance.key, utterance.emo, utterance.length, utterance.speaker) == (row["key"], "neu", 2.0, None)
    assert utterance.extra == {"type": "raw", "sample_rate": 16000, "num_frame": 32000.0, "task": "category"}
    copy = write_manifest([utterance], tmp_path / "copy.jsonl")
    assert read_manifest(copy)[0].to_json() == utterance.to_json()


@pytest.mark.parametrize(
    "line, expected",
    [
        ('{"key": "u2", "wav": "b.wav", "emo": ', "bad JSON"),
        ('{"key": "u2", "emo": "sad"}', "missing field 'wav'"),
        ('{"key": "u2", "wav": "b.wav"}', "missing field 'emo'"),
        ('["not", "an", "object"]', "expected a JSON object"),
        ('{"key": "u2", "wav": "b.wav", "emo": "sad", "length": -1}', "'length' must be a finite, non-negative number"),
        ('{"key": "u2", "wav": "b.wav", "emo": "sad", "channel": "left"}', "'channel' must be an integer"),
        ('{"key": "u2", "wav": "b.wav", "emo": "sad", "start": 3, "end": 1}', "'end' (1.0) must be after"),
        ('{"key": "u1", "wav": "b.wav", "emo": "sad"}', "duplicate key 'u1' (first at line 1)"),
    ],
)
def test_malformed_line_names_file_line_and_problem(tmp_path, line, expected):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, line])
    with pytest.raises(ManifestError) as error:
        read_manifest(path)
    assert f"{path}:2: " in str(error.value)
    assert expected in str(error.value)


def test_all_bad_lines_are_reported_together(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", ["{oops", GOOD, '{"key": "x"}', "", "[]"])
    with pytest.raises(ManifestError) as error:
        read_manifest(path)
    message = str(error.value)
    assert "3 manifest problems" in message
    assert f"{path}:1:" in message and f"{path}:3:" in message and f"{path}:5:" in message


def test_empty_manifest_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(ManifestError, match="no utterances"):
        read_manifest(path)


def test_missing_audio_and_escaping_paths_are_named(tmp_path):
    root = tmp_path / "corpus"
    write_wav(root / "a.wav")
    outside = write_wav(tmp_path / "secret.wav")
    path = write_jsonl(root / "m.jsonl", [
        GOOD,
        {**GOOD, "key": "u2", "wav": "missing.wav"},
        {**GOOD, "key": "u3", "wav": "../secret.wav"},
        {**GOOD, "key": "u4", "wav": "sub/../../secret.wav"},
        {**GOOD, "key": "u5", "wav": str(outside)},  # absolute paths are taken as written
    ])
    utterances = read_manifest(path)
    with pytest.raises(ManifestError) as error:
        resolve_audio_paths(utterances, root)
    message = str(error.value)
    assert f"{path}:2: audio file not found" in message and "u2" in message
    assert f"{path}:3: audio path '../secret.wav' escapes the data root" in message
    assert f"{path}:4: audio path 'sub/../../secret.wav' escapes the data root" in message
    assert ":5:" not in message and ":1:" not in message


def test_unknown_label_names_file_line_and_known_labels(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [GOOD, {**GOOD, "key": "u2", "emo": "fru"}])
    label_map = LabelMap.build({"hap": "happy", "exc": "happy", "sad": "sad"})
    with pytest.raises(ManifestError) as error:
        label_map.apply(read_manifest(path))
    assert f"{path}:2: unknown label 'fru'" in str(error.value)
    assert "'happy'" in str(error.value) and "data.label_map" in str(error.value)


def test_label_map_merges_drops_and_orders_explicitly(tmp_path):
    rows = [{**GOOD, "key": f"u{i}", "emo": emo} for i, emo in enumerate(["exc", "hap", "neu", "xxx", "sad", "ang"])]
    utterances = read_manifest(write_jsonl(tmp_path / "m.jsonl", rows))
    label_map = LabelMap.build({"exc": "hap", "xxx": None})
    assert label_map.classes == ("hap",)  # only the map's targets when no classes are given
    label_map = LabelMap.build({"exc": "hap", "xxx": None}, classes=["ang", "hap", "neu", "sad"])
    kept, targets, dropped = label_map.apply(utterances)
    assert [u.key for u in kept] == ["u0", "u1", "u2", "u4", "u5"]
    assert targets == [1, 1, 2, 3, 0]
    assert dropped == {"xxx": 1}


def test_label_map_refuses_targets_outside_the_classes():
    with pytest.raises(ValueError, match=r"targets \['joy'\]"):
        LabelMap(["angry", "happy"], {"exc": "joy"})


def test_label_map_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "label_map.json"
    bad.write_text('{"exc": "Happy",}')
    with pytest.raises(ValueError, match=f"{bad}:1: bad JSON"):
        LabelMap.build(bad)

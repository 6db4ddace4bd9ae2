"""Untrusted text and audio: encodings, repeated fields, non-finite numbers, every problem in one pass,
one path rule for every command, a silence threshold, and decoding that stops at the limit."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from conftest import tone, write_jsonl, write_wav

from mmemo.data.audio import AudioError, iter_audio_blocks, load_audio
from mmemo.data.datamodule import EmotionDataModule
from mmemo.data.folds import read_fold
from mmemo.data.labels import load_label_map_file
from mmemo.data.manifest import ManifestError, read_manifest
from mmemo.textfiles import TextFileError, load_json, loads_json, loads_yaml

GOOD = '{"key": "u1", "wav": "a.wav", "emo": "hap"}'


# -- encodings -----------------------------------------------------------------------------------
def test_a_non_utf8_line_is_named_and_the_other_lines_still_checked(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(GOOD.encode() + b'\n{"key": "u2", "wav": "caf\xe9.wav", "emo": "sad"}\n'
                     + b'{"key": "u3", "wav": "b.wav"}\n' + b'{"key": "u4", "wav": "\xff\xfe", "emo": "x"}\n')
    with pytest.raises(ManifestError) as error:
        read_manifest(path)
    message = str(error.value)
    assert "3 manifest problems" in message
    assert f"{path}:2: not valid UTF-8 (byte 0xe9 at column 26)" in message
    assert f"{path}:3: missing field 'emo'" in message and f"{path}:4: not valid UTF-8 (byte 0xff" in message


def test_a_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode() + b"\n")
    assert read_manifest(path)[0].key == "u1"


@pytest.mark.parametrize("name, content, problem", [
    ("label_map.json", b'{"exc": "hap",\n "fru": "\xe0ngry"}', "label_map.json:2: not valid UTF-8 (byte 0xe0"),
    ("label_map.json", b'{"exc": "hap",\n "exc": "neu"}', "label_map.json: field 'exc' appears twice"),
    ("label_map.json", b'{"exc": "hap",\n "neu": ', "label_map.json:2: bad JSON"),
])
def test_label_maps_name_file_line_and_problem(tmp_path, name, content, problem):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(TextFileError) as error:
        load_label_map_file(tmp_path / name)
    assert str(error.value).startswith(str(tmp_path / problem))


def test_corpus_json_and_stm_speaker_files_name_their_problems(tmp_path):
    root = tmp_path / "corpus"
    for split, key in (("train", "a"), ("valid", "v"), ("test", "b")):
        write_jsonl(root / "fold_1" / f"c_{split}_fold_1.jsonl", [{"key": key, "wav": "a.wav", "emo": "x"}])
    (root / "corpus.json").write_bytes(b'{"speaker_independent": tru}')
    with pytest.raises(TextFileError, match=r"corpus\.json:1: bad JSON"):
        read_fold(root, 1)
    (root / "corpus.json").write_text('{"speaker_independent": true}')
    (root / "data.seg.wrd.stm").write_bytes(b"a <spk=one>\nb <spk=tw\xf6>\n")
    with pytest.raises(TextFileError, match=r"data\.seg\.wrd\.stm:2: not valid UTF-8"):
        read_fold(root, 1)


# -- strict JSON and YAML ------------------------------------------------------------------------
@pytest.mark.parametrize("text, problem", [
    ('{"emo": "ang", "emo": "hap"}', "field 'emo' appears twice"),
    ('{"key": "k", "extra": {"a": 1, "a": 2}}', "field 'a' appears twice"),  # nested objects too
    ('{"start": NaN}', "NaN is not a number"),
    ('{"start": Infinity}', "Infinity is not a number"),
    ('{"start": -Infinity}', "-Infinity is not a number"),
    ('{"start": 1e999}', "number 1e999 is out of range"),
    ('{"end": -2.5e400}', "is out of range"),
])
def test_strict_json_refuses_repeated_fields_and_non_finite_numbers(text, problem):
    with pytest.raises(ValueError, match=problem):
        loads_json(text)


@pytest.mark.parametrize("field, value", [("start", "1e999"), ("end", "NaN"), ("length", "-Infinity"),
                                          ("start", "1E+400")])
def test_a_non_finite_time_in_a_manifest_is_one_line_problem(tmp_path, field, value):
    path = tmp_path / "m.jsonl"
    path.write_text(GOOD + "\n" + f'{{"key": "u2", "wav": "b.wav", "emo": "sad", "{field}": {value}}}' + "\n")
    with pytest.raises(ManifestError, match=rf"{path}:2: .*(out of range|not a number)"):
        read_manifest(path)


def test_a_repeated_field_in_one_line_is_refused(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [GOOD, '{"key": "u2", "wav": "b.wav", "emo": "sad", "emo": "hap"}'])
    with pytest.raises(ManifestError, match=rf"{path}:2: field 'emo' appears twice"):
        read_manifest(path)


def test_yaml_repeated_keys_and_control_characters_are_errors_with_lines():
    with pytest.raises(TextFileError, match=r"r.yaml:3: not valid YAML: .*key 'threshold' appears twice"):
        loads_yaml("rules:\n  - threshold: 0.5\n    threshold: 0.9\n", "r.yaml")
    with pytest.raises(TextFileError, match=r"r.yaml: not valid YAML: unacceptable character"):
        loads_yaml("rules: \x00", "r.yaml")


def test_json_files_are_size_bounded(tmp_path):
    path = tmp_path / "big.json"
    path.write_text("[" + "0," * 1000 + "0]")
    with pytest.raises(TextFileError, match="more than the 100 expected"):
        load_json(path, max_bytes=100)


# -- every problem of every line, in one pass -----------------------------------------------------
def test_problems_from_every_stage_are_reported_together(tmp_path):
    """Seven problems across reading, labels, transcripts, paths and audio: one error lists all seven."""
    root = tmp_path / "corpus"
    for name in ("a", "b", "c", "d", "e"):
        write_wav(root / f"{name}.wav", tone(0.5, freq=200 + 20 * ord(name)))
    write_wav(root / "silent.wav", np.zeros(8000, np.float32))
    (root / "broken.wav").write_bytes(b"RIFF....WAVEfmt nothing")
    train = [
        {"key": "a", "wav": "a.wav", "emo": "ang", "speaker": "s1", "text": "one"},
        {"key": "b", "wav": "b.wav", "emo": "hap", "speaker": "s2", "text": "two"},
        {"key": "c", "wav": "c.wav", "emo": "fru", "speaker": "s3", "text": "three"},  # 1 unknown label
        '{"key": "d", "wav": "d.wav", "emo": ',                                       # 2 bad JSON
        {"key": "e", "wav": "missing.wav", "emo": "ang", "speaker": "s1", "text": "x"},  # 3 missing audio
        {"key": "f", "wav": "../../etc/passwd", "emo": "ang", "speaker": "s2", "text": "x"},  # 4 escapes root
        {"key": "g", "wav": "e.wav", "emo": "hap", "speaker": "s3", "text": ""},      # 5 no transcript
        {"key": "h", "wav": "silent.wav", "emo": "ang", "speaker": "s1", "text": "x"},  # 6 silent audio
        {"key": "i", "wav": "broken.wav", "emo": "hap", "speaker": "s2", "text": "x"},  # 7 corrupt audio
    ]
    write_jsonl(root / "fold_1" / "c_train_fold_1.jsonl", train)
    write_jsonl(root / "fold_1" / "c_test_fold_1.jsonl",
                [{"key": "t", "wav": "a.wav", "emo": "ang", "speaker": "s9", "text": "test"}])
    module = EmotionDataModule(str(root), 1, label_map={"ang": "ang", "hap": "hap"})
    with pytest.raises(ManifestError) as error:
        module.setup()
    message = str(error.value)
    train_file = root / "fold_1" / "c_train_fold_1.jsonl"
    assert "7 manifest problems" in message, message
    for line, problem in [(3, "unknown label 'fru'"), (4, "bad JSON"), (5, "audio file not found"),
                          (6, "escapes the data root"), (7, "missing transcript"), (8, "silent clip"),
                          (9, "corrupt or not an audio file")]:
        assert f"{train_file}:{line}: " in message and problem in message, (line, problem)
    assert "data.label_map" in message and "data.on_bad_audio=skip" in message  # every stage's hint


# -- one path rule ---------------------------------------------------------------------------------
def test_predict_resolves_fold_files_like_training_and_refuses_escapes(tmp_path):
    from mmemo.inference.inputs import collect_inputs

    root = tmp_path / "corpus"
    write_wav(root / "wav" / "a.wav")
    write_wav(tmp_path / "outside.wav")
    write_jsonl(root / "fold_1" / "c_train_fold_1.jsonl", [{"key": "t", "wav": "wav/a.wav", "emo": "ang",
                                                             "speaker": "s1"}])
    fold_file = write_jsonl(root / "fold_1" / "c_test_fold_1.jsonl", [
        {"key": "a", "wav": "wav/a.wav", "emo": "ang"},
        {"key": "out", "wav": "../outside.wav", "emo": "ang"},
        '{"key": "huge", "wav": "wav/a.wav", "emo": "ang", "start": 1e999}',  # as written by a careless tool
    ])
    module = EmotionDataModule(str(root), 1, use_text=False)
    with pytest.raises(ManifestError, match="escapes the data root"):
        module.setup()  # training refuses the escape ...
    a, out, nan = collect_inputs([fold_file])  # ... and so does predict, per item; wav/a.wav is found
    assert a.error is None and a.path == root / "wav" / "a.wav"
    assert out.path is None and f"{fold_file}:2: audio path '../outside.wav' escapes the data root" in out.error
    assert nan.path is None and f"{fold_file}:3:" in nan.error and "out of range" in nan.error
    (root / "corpus.json").write_text(json.dumps({"audio_root": "elsewhere"}))  # a recorded audio root counts
    write_wav(root / "elsewhere" / "wav" / "a.wav")
    first = collect_inputs([fold_file])[0]
    assert first.path == root / "elsewhere" / "wav" / "a.wav"


# -- silence threshold ------------------------------------------------------------------------------
def test_audio_below_the_silence_threshold_is_refused_and_the_threshold_is_an_option(tmp_path):
    quiet = write_wav(tmp_path / "quiet.wav", tone(0.5, amplitude=10 ** (-90 / 20)), subtype="FLOAT")
    soft = write_wav(tmp_path / "soft.wav", tone(0.5, amplitude=10 ** (-40 / 20)), subtype="FLOAT")
    with pytest.raises(AudioError, match=r"silent clip \(peak -90\.0 dBFS, below the -60 dBFS"):
        load_audio(quiet)
    assert load_audio(soft).seconds == pytest.approx(0.5)
    assert load_audio(quiet, silence_dbfs=-100).seconds == pytest.approx(0.5)
    assert load_audio(quiet, silence_dbfs=None).seconds == pytest.approx(0.5)
    with pytest.raises(AudioError, match="finite level in dBFS"):
        load_audio(soft, silence_dbfs=float("nan"))
    module = EmotionDataModule(str(tmp_path), 1, silence_dbfs=-100.0)
    assert module.silence_dbfs == -100.0
    with pytest.raises(ValueError, match="finite level"):
        EmotionDataModule(str(tmp_path), 1, silence_dbfs=3.0)


# -- bounded decoding --------------------------------------------------------------------------------
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def _encode(path, seconds: float, codec: list[str]) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency=300:sample_rate=16000:"
                    f"duration={seconds}", "-ac", "1", *codec, str(path)], check=True)


@needs_ffmpeg
@pytest.mark.parametrize("suffix, codec", [(".aac", ["-c:a", "aac", "-b:a", "16k", "-f", "adts"]),
                                           (".m4a", ["-c:a", "aac", "-b:a", "16k"]),
                                           (".opus", ["-c:a", "libopus", "-b:a", "12k"]),
                                           (".webm", ["-c:a", "libopus", "-b:a", "12k"])])
def test_ffmpeg_decoding_stops_at_the_limit_and_reports_the_declared_length(tmp_path, suffix, codec):
    path = tmp_path / f"long{suffix}"
    _encode(path, 120, codec)
    clip = load_audio(path, max_seconds=5.0)
    # libsndfile reads Ogg/Opus itself (exact length from the stream); ffmpeg's formats give the header's
    assert clip.seconds == pytest.approx(5.0) and clip.cropped and clip.duration_known == (suffix == ".opus")
    assert 110 < clip.source_seconds < 130  # not decoded to find out
    centre = load_audio(path, max_seconds=5.0, crop="center")
    assert centre.seconds == pytest.approx(5.0) and 110 < centre.source_seconds < 130
    segment = load_audio(path, start=10.0, end=12.5, max_seconds=5.0)
    assert segment.seconds == pytest.approx(2.5, abs=0.03) and not segment.cropped and segment.duration_known
    blocks = list(iter_audio_blocks(path, block_seconds=30.0))
    assert max(len(b) for b in blocks) <= 30 * 16000 and sum(map(len, blocks)) / 16000 == pytest.approx(120, abs=0.2)


@needs_ffmpeg
def test_exactly_the_limit_is_not_cropped(tmp_path):
    path = tmp_path / "five.m4a"
    _encode(path, 4.9, ["-c:a", "aac"])
    clip = load_audio(path, max_seconds=5.0)
    assert not clip.cropped and clip.duration_known and clip.seconds == pytest.approx(4.9, abs=0.05)

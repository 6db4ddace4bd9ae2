"""DER, EDER, frame F1 and segment UA on hand-made timelines with known answers; RTTM reading."""

from __future__ import annotations

import pytest

from mmemo.errors import InvalidInput
from mmemo.evaluation.timelines import diarization_error, emotion_diarization_error, segment_scores
from mmemo.longform.rttm import emotion_line, read_rttm, speaker_line, write_rttm


def test_der_is_zero_for_a_relabelled_copy_and_counts_each_error_kind():
    reference = [(0.0, 4.0, "alice"), (5.0, 9.0, "bob")]
    renamed = [(0.0, 4.0, "SPK_1"), (5.0, 9.0, "SPK_0")]
    assert diarization_error(reference, renamed)["DER"] == 0.0
    assert diarization_error(reference, renamed)["mapping"] == {"SPK_1": "alice", "SPK_0": "bob"}
    # 1 s of bob called alice's label, 1 s missed, 0.5 s false alarm: (1 + 1 + 0.5) / 8
    hypothesis = [(0.0, 4.0, "A"), (5.0, 6.0, "A"), (6.0, 8.0, "B"), (9.0, 9.5, "B")]
    result = diarization_error(reference, hypothesis)
    assert result["confusion"] == pytest.approx(1 / 8, abs=1e-3)
    assert result["missed"] == pytest.approx(1 / 8, abs=1e-3)
    assert result["false_alarm"] == pytest.approx(0.5 / 8, abs=1e-3)
    assert result["DER"] == pytest.approx(2.5 / 8, abs=1e-3)


def test_der_collar_forgives_boundary_jitter_only():
    reference = [(0.0, 4.0, "a"), (4.0, 8.0, "b")]
    shifted = [(0.0, 4.2, "x"), (4.2, 8.0, "y")]
    assert diarization_error(reference, shifted)["DER"] == pytest.approx(0.2 / 8, abs=1e-3)
    assert diarization_error(reference, shifted, collar=0.25)["DER"] == 0.0
    wrong = [(0.0, 8.0, "x")]  # one speaker for both: half the time confused, collar or not
    assert diarization_error(reference, wrong, collar=0.25)["DER"] > 0.4


def test_der_counts_overlapped_reference_speech_per_speaker():
    reference = [(0.0, 4.0, "a"), (2.0, 4.0, "b")]  # 6 s of speaker time, 2 s overlapped
    result = diarization_error(reference, [(0.0, 4.0, "x")])
    assert result["reference_seconds"] == pytest.approx(6.0, abs=0.02)
    assert result["missed"] == pytest.approx(2 / 6, abs=1e-3)


def test_eder_compares_labels_as_they_are_and_segment_ua_votes_by_coverage():
    reference = [(0.0, 2.0, "happy"), (3.0, 5.0, "sad")]
    perfect = emotion_diarization_error(reference, reference)
    assert perfect["EDER"] == 0.0 and perfect["frame_F1"] == 1.0
    swapped = [(0.0, 2.0, "sad"), (3.0, 5.0, "happy")]  # a speaker mapping would hide this; EDER must not
    assert emotion_diarization_error(reference, swapped)["EDER"] == pytest.approx(1.0)
    partial = [(0.0, 1.5, "happy"), (1.5, 2.0, "sad"), (2.0, 3.0, "sad"), (3.0, 5.0, "sad")]
    result = emotion_diarization_error(reference, partial, classes=["happy", "sad"])
    assert result["confusion"] == pytest.approx(0.5 / 4, abs=1e-3)
    assert result["false_alarm"] == pytest.approx(1.0 / 4, abs=1e-3)
    scores = segment_scores(reference, partial, ["happy", "sad"])
    assert scores["UA"] == 1.0 and scores["missed_segments"] == 0  # each segment's majority is right
    missed = segment_scores(reference, [(0.0, 2.0, "happy")], ["happy", "sad"])
    assert missed["UA"] == 0.5 and missed["missed_segments"] == 1
    with pytest.raises(InvalidInput, match="angry"):
        emotion_diarization_error(reference, [(0.0, 1.0, "angry")], classes=["happy", "sad"])


def test_rttm_round_trip_and_named_errors(tmp_path):
    path = write_rttm(tmp_path / "call.rttm", [speaker_line("call", 0.5, 2.0, "agent"),
                                               emotion_line("call", 0.5, 2.0, "angry", "agent")])
    speakers, emotions = read_rttm(path, "SPEAKER"), read_rttm(path, "EMOTION")
    assert [(s.start, s.end, s.label) for s in speakers] == [(0.5, 2.0, "agent")]
    assert [(s.label, s.speaker) for s in emotions] == [("angry", "agent")]
    bad = tmp_path / "bad.rttm"
    for text, problem in (("SPEAKER call 1 x 1.0 <NA> <NA> a <NA> <NA>\n", "must be numbers"),
                          ("SPEAKER call 1 1.0 -2 <NA> <NA> a <NA> <NA>\n", "duration > 0"),
                          ("SPEAKER call 1 1.0\n", "10 fields"),
                          ("EMOTION call 1 1.0 1.0 <NA> <NA> a <NA> <NA>\n", "emotion in field 7")):
        bad.write_text("SPEAKER call 1 0.0 1.0 <NA> <NA> a <NA> <NA>\n" + text)
        with pytest.raises(InvalidInput, match=problem) as error:
            read_rttm(bad)
        assert f"{bad}:2" in str(error.value)

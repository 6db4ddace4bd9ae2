"""The demo corpus with faces: every utterance has an .mp4 (face + its audio) whose face the real
detector finds, and face-cued utterances show their class's expression while the others look neutral."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mmemo.data.demo_faces import EXPRESSIONS, expression
from mmemo.data.manifest import read_manifest
from mmemo.data.synthetic import synthesize_corpus
from mmemo.errors import InvalidInput
from mmemo.video.decode import has_video, read_video
from mmemo.video.track import VideoOptions, face_track


@pytest.fixture(scope="module")
def av_corpus(tmp_path_factory):
    return synthesize_corpus(tmp_path_factory.mktemp("av") / "demo_av", seed=5, speakers=2, utterances_per_speaker=16,
                             faces=True, cue_shares={"speech": 0.25, "text": 0.25, "both": 0.25, "face": 0.25})


def test_every_utterance_has_a_face_video_with_its_audio(av_corpus):
    utterances = read_manifest(av_corpus / "manifest.jsonl")
    assert {u.extra["cue"] for u in utterances} == {"speech", "text", "both", "face"}
    for u in utterances[:4]:
        path = av_corpus / u.video
        assert has_video(path)
        clip = read_video(path, fps=5)
        assert abs(len(clip.frames) / 5 - u.length) <= 0.25  # the video spans the utterance's audio
        assert face_track(path, VideoOptions()).mask.all()  # MediaPipe finds the drawn face on every frame


def test_face_cued_expressions_follow_the_class_and_others_are_neutral():
    rng = random.Random(0)
    happy = np.array([expression("happy", True, rng) for _ in range(200)]).mean(0)
    sad = np.array([expression("sad", True, rng) for _ in range(200)]).mean(0)
    hidden = np.array([expression("sad", False, rng) for _ in range(200)]).mean(0)
    assert happy[0] > 0.8 and sad[0] < -0.7  # smile
    np.testing.assert_allclose(hidden, EXPRESSIONS["neutral"], atol=0.1)


def test_a_face_share_needs_the_face_track(tmp_path):
    with pytest.raises(InvalidInput, match="face"):
        synthesize_corpus(tmp_path / "x", speakers=2, utterances_per_speaker=4, cue_shares={"face": 1.0})

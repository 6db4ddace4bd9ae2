"""``mmemo predict`` with a freshly trained mmemo checkpoint: the same Predictor, files, folders, manifests."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mmemo.cli import main
from mmemo.config import compose
from mmemo.data.audio import load_audio
from mmemo.inference import Predictor
from mmemo.recipes import run_config as train


@pytest.fixture
def checkpoint(tiny_overrides, tmp_path):
    """A speech (spectral) + text (tiny BERT) model with the linear-probe head on mean-pooled frames
    (so the utterance logits are exactly the mean of the frame logits), trained for one epoch."""
    cfg = compose("train", [*tiny_overrides, "model/fusion=linear", "model.fusion.pooling=mean",
                            "trainer.max_epochs=1"],
                  output_dir=str(tmp_path / "run"))
    train(cfg)
    return tmp_path / "run" / "checkpoints" / "best.ckpt"


def test_checkpoint_predicts_without_transcripts_and_through_the_cli(checkpoint, tiny_corpus, tmp_path, capsys):
    predictor = Predictor.from_source(checkpoint)
    assert predictor.classes == ["angry", "happy", "neutral", "sad"] and predictor.frame_rate == 25.0
    manifest = sorted((tiny_corpus / "fold_1").glob("*test*.jsonl"))[0]
    lines = [json.loads(line) for line in manifest.read_text().splitlines()][:3]
    waves = [load_audio(tiny_corpus / line["wav"]).wave for line in lines]

    # No transcript: the text branch is absent and the head uses its stand-in (graceful degradation).
    speech_only = predictor.predict_waveforms(waves, [line["key"] for line in lines], granularity="frame")
    with_text = predictor.predict_waveforms(waves, [line["key"] for line in lines],
                                            texts=[line["text"] for line in lines])
    for alone, fused in zip(speech_only, with_text):
        assert alone.error is None and set(alone.scores) == set(predictor.classes)
        # linear head on mean-pooled frames: the utterance logits are the mean of the frame logits
        np.testing.assert_allclose(alone.timeline.logits.mean(0), alone.logits, atol=1e-4)
        assert not np.allclose(alone.logits, fused.logits, atol=1e-4)  # the transcript is used when given

    # The CLI on a folder with a corrupt file: the rest is predicted, the bad file reported, exit code 1.
    folder = tmp_path / "clips"
    folder.mkdir()
    for line in lines:
        shutil.copy(tiny_corpus / line["wav"], folder / f"{line['key']}.wav")
    (folder / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt not really")
    out, embeddings = tmp_path / "out.jsonl", tmp_path / "emb"
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(folder), "--model", str(checkpoint), "--granularity", "frame", "--smooth", "3",
              "--format", "jsonl", "--out", str(out), "--embeddings", str(embeddings), "--no-progress"])
    assert exit_info.value.code == 1
    records = {json.loads(line)["audio_id"]: json.loads(line) for line in out.read_text().splitlines()}
    assert len(records) == 4 and "corrupt" in records[str(folder / "corrupt.wav")]["error"]
    assert f"error: bad audio (file {folder / 'corrupt.wav'})" in capsys.readouterr().err
    for line in lines:
        record = records[str(folder / f"{line['key']}.wav")]
        assert record["error"] is None and record["timeline"]["smooth"] == 3
        assert len(record["timeline"]["times"]) == len(record["timeline"]["scores"]) > 0
        assert record["timeline"]["segments"][-1]["end"] == pytest.approx(record["duration"], abs=1e-3)
    index = [json.loads(line) for line in (embeddings / "index.jsonl").read_text().splitlines()]
    assert len(index) == 3 and all(np.load(embeddings / row["path"]).shape == (row["dims"],) for row in index)

    # A manifest, csv to stdout, utterance granularity; transcripts feed the text branch.
    main(["predict", str(manifest), "--model", str(checkpoint), "--format", "csv", "--audio-root",
          str(tiny_corpus), "--no-progress"])
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0] == "audio_id,label,confidence,duration,p_angry,p_happy,p_neutral,p_sad,error"
    assert len(rows) == 1 + len(manifest.read_text().splitlines())


def test_explain_adds_a_generated_reason_from_the_transcript_and_the_voice(checkpoint, tiny_corpus, tiny_gguf,
                                                                          tmp_path, monkeypatch):
    from mmemo.llm.rationales import Explainer

    prompts = []
    generate = Explainer.generate
    monkeypatch.setattr(Explainer, "generate", lambda self, prompt: prompts.append(prompt) or generate(self, prompt))
    manifest = sorted((tiny_corpus / "fold_1").glob("*test*.jsonl"))[0]
    lines = [json.loads(line) for line in manifest.read_text().splitlines()][:2]
    small = tmp_path / "two.jsonl"
    small.write_text("".join(json.dumps({**line, "wav": str(tiny_corpus / line["wav"])}) + "\n" for line in lines))
    out = tmp_path / "explained.json"
    main(["predict", str(small), "--model", str(checkpoint), "--explain", "--explain-model", str(tiny_gguf),
          "--explain-tokens", "4", "--out", str(out), "--no-progress"])
    records = json.loads(out.read_text())
    assert len(records) == len(prompts) == 2
    for record, line, prompt in zip(records, lines, prompts):
        reason = record["rationale"]
        assert reason["generated"] is True and reason["model"] == "tiny-llama.gguf" and "Hz" in reason["cues"]
        assert f'"{record["label"]}"' in prompt and line["text"] in prompt and reason["cues"] in prompt
    main(["predict", str(small), "--model", str(checkpoint), "--explain", "--explain-model", str(tiny_gguf),
          "--explain-tokens", "4", "--format", "csv", "--out", str(tmp_path / "explained.csv"), "--no-progress"])
    assert (tmp_path / "explained.csv").read_text().splitlines()[0].endswith(",error,generated_rationale")
    plain = tmp_path / "plain.json"
    main(["predict", str(small), "--model", str(checkpoint), "--out", str(plain), "--no-progress"])
    assert all("rationale" not in r for r in json.loads(plain.read_text()))  # off by default
    with pytest.raises(SystemExit):
        main(["predict", str(small), "--model", str(checkpoint), "--explain", "--granularity", "frame"])

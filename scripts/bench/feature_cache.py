"""P3 (encoder issue): one training epoch on cached features vs re-encoding audio every epoch.

Both sides run mmemo's own training code (EmotionDataModule batches through
EmotionClassifier.training_step, AdamW) on the same clips, with a frozen
full-size emotion2vec-base (random weights: speed does not depend on them)
saved as a FunASR model directory, and the same concat head. The cached side
pays the extraction once; the script reports it separately and the break-even.

    .venv/bin/python scripts/bench/feature_cache.py [--speakers 10 --per-speaker 25] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

from mmemo.data.datamodule import EmotionDataModule
from mmemo.data.synthetic import synthesize_corpus
from mmemo.encoders.emotion2vec_checkpoints import (
    build_funasr_model,
    emotion2vec_base_model_conf,
    save_funasr_model_dir,
)
from mmemo.features.cached import FeatureCache
from mmemo.training.module import EmotionClassifier


def epoch(model: EmotionClassifier, loader, optimizer) -> float:
    model.train()
    started = time.perf_counter()
    for index, batch in enumerate(loader):
        loss = model.training_step(batch, index)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=10)
    parser.add_argument("--per-speaker", type=int, default=25)
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed on each side (the mean is reported)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default="scripts/bench/results/feature_cache.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="mmemo-bench-p3-"))
    corpus = synthesize_corpus(work / "corpus", speakers=args.speakers, utterances_per_speaker=args.per_speaker)
    conf = emotion2vec_base_model_conf()
    model_dir = save_funasr_model_dir(build_funasr_model(conf), conf, work / "e2v_base")
    speech = {"_target_": "mmemo.encoders.emotion2vec.Emotion2vecEncoder", "path": str(model_dir),
              "trainable": "frozen"}
    common = dict(use_text=False, batch_size=args.batch_size, audio_memory_gb=4.0, seed=0)

    def classifier():
        torch.manual_seed(0)
        model = EmotionClassifier(["angry", "happy", "neutral", "sad"], speech=speech, fusion={"name": "concat"})
        model.log = lambda *a, **k: None  # no trainer attached
        return model, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    # Re-encoding: the frozen encoder runs on every batch of every epoch.
    raw = EmotionDataModule(str(corpus), 1, **common)
    raw.setup()
    model, optimizer = classifier()
    clips = len(raw.datasets["train"])
    audio_seconds = sum(e.seconds for e in raw.datasets["train"].examples)
    params = sum(p.numel() for p in model.encoders["speech"].parameters()) / 1e6
    reencode = [epoch(model, raw.train_dataloader(), optimizer) for _ in range(args.epochs)]

    # Cached: extract once (timed), then train on memory-mapped features.
    model, optimizer = classifier()
    encoder = model.encoders["speech"]
    cached = EmotionDataModule(str(corpus), 1, **common, decode_audio=False)
    cached.setup()
    options = {"cache": "auto", "device": "cpu", "batch_size": args.batch_size, "dir": str(work / "cache"),
               "storage": "frames", "dtype": "float32"}
    started = time.perf_counter()
    FeatureCache({"speech": encoder}, options, EmotionClassifier.serving({"fusion": {"name": "concat"}},
                                                                        model.encoders)).attach(cached)
    extraction = time.perf_counter() - started
    from_cache = [epoch(model, cached.train_dataloader(), optimizer) for _ in range(args.epochs)]

    per_reencode = sum(reencode) / len(reencode)
    per_cached = sum(from_cache) / len(from_cache)
    ratio = per_reencode / per_cached
    break_even = extraction / max(per_reencode - per_cached, 1e-9)
    result = {
        "machine": machine(), "encoder": f"emotion2vec-base architecture, {params:.1f} M parameters, random weights",
        "head": "concat (mean-pool + MLP)", "train_clips": clips, "train_audio_seconds": round(audio_seconds, 1),
        "batch_size": args.batch_size, "reencode_epoch_s": round(per_reencode, 3),
        "cached_epoch_s": round(per_cached, 3), "speedup_per_epoch": round(ratio, 1),
        "extraction_once_s": round(extraction, 2), "break_even_epochs": round(break_even, 2),
    }
    print(f"machine: {result['machine']}")
    print(f"encoder: {result['encoder']}; head: {result['head']}")
    print(f"training split: {clips} clips, {audio_seconds:.0f} s of audio, batch {args.batch_size}")
    print(f"one epoch, re-encoding audio : {per_reencode:8.2f} s")
    print(f"one epoch, cached features   : {per_cached:8.3f} s")
    print(f"speed-up per epoch           : {ratio:8.1f}x   (target >= 30x)")
    print(f"extraction, once (all splits): {extraction:8.2f} s  -> pays for itself after {break_even:.2f} epochs")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

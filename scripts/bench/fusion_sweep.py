"""P3 (fusion issue): a 20-configuration fusion sweep x 5 folds on 5,000 utterances, on cached features.

It runs mmemo's real sweep path — ``mmemo train -m experiment=fusion_comparison``
(Hydra multirun, one job per head x learning rate x dropout x fold) — on a
5,000-utterance demo corpus (10 voices x 500), with frozen encoders whose
features are cached once (Whisper tiny.en, real weights; MiniLM, real weights).
It reports the one-off extraction, the sweep's wall time and time per job, and,
for one fold, an epoch on cached features against an epoch that re-encodes
audio and text, both through EmotionClassifier.training_step.

    .venv/bin/python scripts/bench/fusion_sweep.py [--work DIR] [--launcher joblib|basic] [--precision 32-true]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine, write_result  # noqa: E402

HEADS = "late,joint_embedding,cross_attention,concat,gated"
LEARNING_RATES = "1e-3,3e-4"
DROPOUTS = "0.1,0.3"


def epoch_seconds(work: Path, corpus: Path, cached: bool, epochs: int = 1) -> tuple[list[float], int]:
    """Training epochs of a concat head on fold 1, re-encoding or reading cached features.

    With the cache, the first epoch also averages each utterance's cached frames
    once (what a pooling head is served), so the steady state is the second.
    """
    from hydra.utils import instantiate

    from mmemo.config import compose
    from mmemo.recipes.common import build_model, feature_cache, selected_specs, serves_speech_from_cache

    cfg = compose("train", ["experiment=fusion_comparison", "model/fusion=concat", f"data.root={corpus}",
                            "data.name=demo5k", f"paths.root_dir={work}",
                            f"features.cache={'auto' if cached else 'off'}",
                            "data.batch_size=128"], output_dir=str(work / "epoch_probe"))
    datamodule = instantiate(cfg.data, use_audio=True, use_text=True,
                             decode_audio=not serves_speech_from_cache(cfg, selected_specs(cfg)))
    datamodule.setup("fit")
    torch.manual_seed(0)
    model = build_model(cfg, datamodule)
    feature_cache(cfg, model).attach(datamodule)
    model.log = lambda *a, **k: None
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    times = []
    for _ in range(epochs):
        started = time.perf_counter()
        for index, batch in enumerate(datamodule.train_dataloader()):
            loss = model.training_step(batch, index)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - started)
    return times, len(datamodule.datasets["train"])


def job_summary(sweep_dir: Path) -> dict:
    """Per head: jobs, mean seconds per job (as the job measured itself) and mean validation / test UA."""
    rows: dict[str, list[dict]] = {}
    for path in sweep_dir.rglob("metrics.json"):
        metrics = json.loads(path.read_text())
        head = metrics["meta"]["config"]["model"]["fusion"]["name"]
        rows.setdefault(head, []).append(metrics)
    summary = {}
    for head, runs in sorted(rows.items()):
        summary[head] = {
            "jobs": len(runs),
            "seconds_per_job": round(sum(r["meta"]["duration_s"] for r in runs) / len(runs), 1),
            "mean_valid_UA": round(100 * sum(r["valid"]["UA"] for r in runs) / len(runs), 1),
            "mean_test_UA": round(100 * sum(r["test"]["UA"] for r in runs) / len(runs), 1),
        }
    return summary


def run_sweep(args, work: Path, corpus: Path) -> dict:
    """The timed multirun; the results without the epoch probe."""
    load_at_start = os.getloadavg()
    name = f"{args.storage}-{args.launcher}-{args.precision}"
    sweep_dir = work / "runs" / name
    if sweep_dir.exists():
        shutil.rmtree(sweep_dir)  # every job trains: the timing must not include reused jobs
    common = [f"data.root={corpus}", "data.name=demo5k", f"paths.root_dir={work}", f"features.storage={args.storage}",
              "data.batch_size=256", "trainer.max_epochs=15", "callbacks.early_stopping.patience=4", "logger=csv",
              f"trainer.precision={args.precision}", "modalities=both", "reuse_finished=false",
              f"hydra.callbacks.report.results_dir={work}/results/{name}", f"hydra.sweep.dir={sweep_dir}"]
    # Encode whatever the cache still lacks, timed on its own (a single one-epoch job), so the
    # sweep below measures training on cached features.
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mmemo.cli", "train", "experiment=fusion_comparison", *common[:-2],
                    "trainer.max_epochs=1", f"hydra.run.dir={work}/extraction"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    extraction = time.perf_counter() - started

    launcher = ["hydra/launcher=joblib"] if args.launcher == "joblib" else []
    sweep = [sys.executable, "-m", "mmemo.cli", "train", "-m", "experiment=fusion_comparison", *common, *launcher,
             "hydra.sweep.subdir=${hydra.job.num}",
             f"model/fusion={HEADS}", f"model.optim.lr={LEARNING_RATES}", f"model.fusion.dropout={DROPOUTS}",
             "data.fold=1,2,3,4,5"]
    started = time.perf_counter()
    subprocess.run(sweep, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    heads = job_summary(sweep_dir)
    jobs = sum(h["jobs"] for h in heads.values())

    result = {
        "machine": machine(), "load_average_at_start": load_at_start,
        "encoders": "Whisper tiny.en encoder layer 2 (real weights, 4 layers, 384-d) + all-MiniLM-L6-v2 (real), frozen",
        "corpus": "5,000 utterances, 10 voices, 5 speaker-independent folds (3,000 train / 1,000 valid / 1,000 test)",
        "storage": args.storage, "launcher": args.launcher, "precision": args.precision,
        "schedule": "batch 256, at most 15 epochs, early stopping patience 4 on validation UA",
        "configs": f"{HEADS} x lr {LEARNING_RATES} x dropout {DROPOUTS} = 20", "jobs": jobs,
        "sweep_wall_s": round(wall, 1), "seconds_per_job": round(wall / max(jobs, 1), 1), "heads": heads,
        "first_job_with_any_missing_extraction_s": round(extraction, 1),
    }
    print(json.dumps(result, indent=2))
    print(f"sweep: {jobs} jobs in {wall / 60:.1f} min ({wall / max(jobs, 1):.1f} s/job; goal: 100 jobs < 10 min)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="bench_work/fusion_sweep", help="corpus, cache and runs (reused)")
    parser.add_argument("--storage", default="frames", choices=["frames", "pooled"])
    parser.add_argument("--launcher", default="joblib", choices=["basic", "joblib"],
                        help="joblib: 2 worker processes x 1 thread (hydra/launcher=joblib); basic: one process")
    parser.add_argument("--precision", default="32-true", help="trainer.precision, e.g. bf16-mixed")
    parser.add_argument("--skip-epoch-probe", action="store_true")
    parser.add_argument("--probe-only", action="store_true", help="only the epoch probe, added to --out")
    parser.add_argument("--out", default="scripts/bench/results/fusion_sweep.json")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    corpus = work / "demo5k"
    from mmemo.data.synthetic import synthesize_corpus

    if not (corpus / "fold_5").is_dir():
        started = time.perf_counter()
        synthesize_corpus(corpus, speakers=10, utterances_per_speaker=500)
        print(f"synthesised 5,000 utterances in {time.perf_counter() - started:.0f} s")

    if args.probe_only:  # add the epoch probe to an earlier sweep's results
        result = json.loads(Path(args.out).read_text())
    else:
        result = run_sweep(args, work, corpus)
    if not args.skip_epoch_probe:
        (reencode,), clips = epoch_seconds(work, corpus, cached=False)
        first, steady = epoch_seconds(work, corpus, cached=True, epochs=2)[0]
        result.update({"epoch_probe": "concat head, fold 1, batch 128, EmotionClassifier.training_step",
                       "epoch_reencoding_s": round(reencode, 2), "epoch_cached_first_s": round(first, 3),
                       "epoch_cached_s": round(steady, 3), "epoch_speedup": round(reencode / steady, 1),
                       "train_clips_per_epoch": clips})
        print(f"epoch on fold 1 ({clips} clips): re-encoding {reencode:.1f} s vs cached {steady:.3f} s "
              f"= {reencode / steady:.0f}x (first cached epoch, which also pools the frames once: {first:.2f} s)")
    write_result(result, Path(args.out))


if __name__ == "__main__":
    main()

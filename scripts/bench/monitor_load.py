"""Monitor service on loopback: analyze load and latency, and streaming real-time factor (P5).

    .venv/bin/python scripts/bench/monitor_load.py [--requests 500] [--concurrency 16] [--quick]

Load: ``mmemo monitor serve`` runs as a subprocess (its own interpreter, like a deployment)
with the model under test; an asyncio client sends ``--requests`` POST /analyze uploads
(1-4 s WAV clips, seeded) with ``--concurrency`` in flight, and reports p50/p95/max latency,
throughput, errors, and *lost records*: uploads answered 200 whose record is missing from the
service's SQLite file, counted with sqlite3 after the run (target 0).

P5: a live stream's real-time factor (compute seconds per audio second; target <= 0.2 on 2
cores) with the full-size emotion2vec-base architecture (random weights, as in
emotion2vec_inference.py), measured twice: end to end through the service's WebSocket
(0.25 s chunks sent as fast as answers come back) and in-process on ``StreamSession`` alone (on a
worker thread, like the service),
with the StreamSession defaults (hop 1 s, context 1 s, lookahead 0.5 s) in fp32 and bf16 autocast, and
with a 2 s hop (less re-encoded context per audio second, 0.5 s more latency).
Results are printed and written to scripts/bench/results/monitor_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from emotion2vec_inference import Stopwatch, machine  # noqa: E402
from machine import write_result  # noqa: E402

from mmemo.encoders.emotion2vec_checkpoints import (  # noqa: E402
    build_funasr_model,
    emotion2vec_base_model_conf,
    save_funasr_model_dir,
    tiny_model_conf,
)

RESULTS = Path(__file__).resolve().parent / "results" / "monitor_load.json"
LABELS = ["angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "<unk>"]
TOKEN = "bench-token-" + "x" * 20
SR = 16_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--model", choices=["base", "tiny"], default="base",
                        help="model the service runs for the load test (P5 always uses base)")
    parser.add_argument("--stream-seconds", type=float, default=60.0, help="audio streamed for P5")
    parser.add_argument("--quick", action="store_true", help="60 requests, 20 s stream: a smoke run")
    parser.add_argument("--no-stream", action="store_true", dest="no_stream",
                        help="load test only (e.g. --model tiny: the service's own overhead)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def speechlike(seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = int(seconds * SR)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 4) * np.arange(n) / SR) ** 2
    return (0.1 * rng.standard_normal(n) * envelope).astype(np.float32)


def wav(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SR, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def write_model(directory: Path, size: str) -> Path:
    torch.manual_seed(0)
    conf = emotion2vec_base_model_conf() if size == "base" else tiny_model_conf()
    return save_funasr_model_dir(build_funasr_model(conf, num_labels=len(LABELS)), conf, directory, LABELS)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``mmemo monitor serve`` in a subprocess, stopped on exit."""

    def __init__(self, model_dir: Path, data_dir: Path, threads: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        env = {**os.environ, "MMEMO_MONITOR_TOKEN": TOKEN, "OMP_NUM_THREADS": str(threads)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mmemo.cli", "monitor", "serve", "--model", str(model_dir), "--port",
             str(self.port), "--data-dir", str(data_dir), "--batch-size", "8"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(data_dir / "server.log", "w"))

    def wait(self, timeout: float = 300) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited: see {self.data_dir / 'server.log'}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError("the service did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


# -- load -----------------------------------------------------------------------------------------
async def load_test(url: str, clips: list[bytes], requests: int, concurrency: int) -> dict:
    import httpx

    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    ok_ids: list[str] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def one(client: httpx.AsyncClient, index: int, prefix: str) -> None:
        async with semaphore:
            audio_id = f"{prefix}-{index:04d}"
            started = time.perf_counter()
            try:
                response = await client.post("/analyze", headers=headers,
                                             data={"audio_id": audio_id, "channel": prefix},
                                             files={"file": (f"{audio_id}.wav", clips[index % len(clips)],
                                                             "audio/wav")})
                status = response.status_code
            except httpx.HTTPError as error:
                status = -1
                print(f"  request {audio_id} failed: {error!r}")
            if prefix == "load":
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    ok_ids.append(audio_id)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        await asyncio.gather(*(one(client, i, "warmup") for i in range(concurrency)))
        with Stopwatch() as watch:
            await asyncio.gather(*(one(client, i, "load") for i in range(requests)))
    ordered = sorted(latencies)
    return {"requests": requests, "concurrency": concurrency, "wall_s": watch.wall,
            "requests_per_s": requests / watch.wall, "statuses": statuses, "ok_ids": ok_ids,
            "latency_s": {"p50": float(np.percentile(ordered, 50)), "p95": float(np.percentile(ordered, 95)),
                          "mean": statistics.fmean(ordered), "max": ordered[-1]}}


def count_records(db: Path, ids: list[str]) -> int:
    with sqlite3.connect(db) as connection:
        stored = {row[0] for row in connection.execute("SELECT audio_id FROM records WHERE channel = 'load'")}
    return len(stored & set(ids))


# -- streaming ------------------------------------------------------------------------------------
def stream_over_websocket(url: str, audio: np.ndarray, chunk_seconds: float = 0.25) -> dict:
    from websockets.sync.client import connect

    pcm = (audio * 32767).astype("<i2").tobytes()
    step = int(chunk_seconds * SR) * 2
    frames = 0
    with connect(url.replace("http", "ws") + "/stream?channel=bench", max_size=None,
                 additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        json.loads(ws.recv())  # ready
        with Stopwatch() as watch:
            for start in range(0, len(pcm), step):
                ws.send(pcm[start:start + step])
                frames += len(json.loads(ws.recv())["times"])
            ws.send(json.dumps({"type": "end"}))
            summary = json.loads(ws.recv())
        frames += len((summary.get("last") or {}).get("times", []))
    seconds = len(audio) / SR
    return {"audio_s": seconds, "wall_s": watch.wall, "rtf": watch.wall / seconds, "frames": frames,
            "chunk_s": chunk_seconds}


#: (compute dtype, hop s, context s, lookahead s): the StreamSession defaults, bf16, and a longer hop.
STREAM_CONFIGS = [("fp32", 1.0, 1.0, 0.5), ("bf16", 1.0, 1.0, 0.5), ("fp32", 2.0, 1.0, 0.5)]


def stream_in_process(model_dir: Path, audio: np.ndarray, dtype: str, hop: float, context: float,
                      lookahead: float, chunk_seconds: float = 0.25) -> dict:
    from mmemo.inference.predictor import Predictor
    from mmemo.inference.stream import StreamSession

    options = {"compute_dtype": "bfloat16"} if dtype == "bf16" else {}
    predictor = Predictor.from_source(model_dir, **options)
    config = {"hop_seconds": hop, "context_seconds": context, "lookahead_seconds": lookahead}
    session = StreamSession(predictor, **config)
    warm = StreamSession(predictor, **config)
    warm.push(audio[: 3 * SR])
    warm.finish()
    step = int(chunk_seconds * SR)
    frames = 0
    with torch.inference_mode(), Stopwatch() as watch:
        for start in range(0, len(audio), step):
            frames += len(session.push(audio[start:start + step])[0])
        frames += len(session.finish()[0])
    seconds = len(audio) / SR
    result = {"dtype": dtype, **config, "audio_s": seconds, "wall_s": watch.wall, "rtf": watch.wall / seconds,
              "frames": frames, "cpu_per_wall": watch.cpu_per_wall, "latency_s": session.latency_seconds}
    print(f"  in-process StreamSession {dtype}, hop {hop:g} s / context {context:g} s / lookahead {lookahead:g} s: "
          f"RTF {result['rtf']:.3f} ({watch.wall:.1f} s for {seconds:.0f} s, "
          f"cpu/wall {watch.cpu_per_wall:.2f}, frame latency <= {session.latency_seconds:.2f} s + compute)")
    return result


def main() -> None:
    args = parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    if args.quick:
        args.requests, args.stream_seconds = min(args.requests, 60), min(args.stream_seconds, 20.0)
    torch.set_num_threads(args.threads)
    result: dict = {"machine": machine(args.threads), "load_average_at_start": os.getloadavg()}
    m = result["machine"]
    print(f"machine: {m['cpu']} ({', '.join(m['isa'])}), {m['cores']} cores, torch {m['torch']} with "
          f"{m['torch_threads']} threads; load average at start {result['load_average_at_start']}")
    rng = np.random.default_rng(0)
    clips = [wav(speechlike(seconds, rng)) for seconds in rng.uniform(1.0, 4.0, 32)]
    stream_audio = speechlike(args.stream_seconds, rng)
    with tempfile.TemporaryDirectory(prefix="monitor_bench_") as tmp:
        tmp = Path(tmp)
        base_dir = write_model(tmp / "emotion2vec_base_random", "base")
        load_dir = base_dir if args.model == "base" else write_model(tmp / "tiny", "tiny")
        data_dir = tmp / "service"
        data_dir.mkdir()
        server = Server(load_dir, data_dir, args.threads)
        try:
            server.wait()
            print(f"\nLoad: {args.requests} POST /analyze at concurrency {args.concurrency}, "
                  f"{args.model} model, clips 1-4 s")
            load = asyncio.run(load_test(server.url, clips, args.requests, args.concurrency))
            ok_ids = load.pop("ok_ids")
            load["model"] = args.model
            load["records_in_db"] = count_records(data_dir / "monitor.db", ok_ids)
            load["lost_records"] = len(ok_ids) - load["records_in_db"]
            lat = load["latency_s"]
            print(f"  {load['requests_per_s']:.1f} req/s; latency p50 {lat['p50']:.3f} s, p95 {lat['p95']:.3f} s, "
                  f"max {lat['max']:.3f} s; statuses {load['statuses']}; lost records {load['lost_records']} "
                  f"({load['records_in_db']} of {len(ok_ids)} answered uploads in the database)")
            result["load"] = load
            if args.no_stream:
                return write_result(result, args.out)
            if args.model != "base":
                server.stop()
                server = Server(base_dir, data_dir, args.threads)
                server.wait()
            print(f"\nP5: streaming {args.stream_seconds:g} s, emotion2vec-base architecture, 0.25 s chunks")
            ws = stream_over_websocket(server.url, stream_audio)
            print(f"  service WebSocket end to end: RTF {ws['rtf']:.3f} ({ws['wall_s']:.1f} s for "
                  f"{ws['audio_s']:.0f} s, {ws['frames']} frames)")
            result["P5_websocket"] = ws
        finally:
            server.stop()
        # On a worker thread, as the service runs its model: on this machine, under CPU contention,
        # the same torch calls ran 3-5x slower on the main thread than on a worker thread.
        with ThreadPoolExecutor(1) as worker:
            result["P5_in_process"] = [worker.submit(stream_in_process, base_dir, stream_audio, *config).result()
                                       for config in STREAM_CONFIGS]
    result["P5_target_rtf"] = 0.2
    write_result(result, args.out)


if __name__ == "__main__":
    main()

"""Peak memory of decoding long uploads: 5-hour files in several codecs against a 5-second one.

    .venv/bin/python scripts/bench/decode_memory.py [--hours 5] [--codecs aac,m4a,webm,mp3] [--quick]

For each codec it encodes a long file, a 30 s file (the longest window ``mmemo predict`` encodes
by default: what the long file should cost) and a 5 s file once (pink noise at 8 kbit/s, the
size of a real low-bitrate call recording; kept in cache/bench/decode_memory/), then measures the peak
resident memory of the whole process tree (Python plus its ffmpeg children, sampled every
10 ms with psutil) of:

* ``mmemo predict FILE --model M`` (utterance scores of the first 30 s, the default), a fresh
  process per file;
* one ``POST /analyze`` upload to a running ``mmemo monitor serve`` (limit ``--max-duration 600``:
  the long file is refused with 413 after decoding just past the limit), as the service's peak
  above its idle size, and with ``--concurrent`` uploads of the long file at once;
* the peer, openai-whisper's ``whisper.load_audio(FILE)`` (what a hand-made service calls;
  it decodes the whole file), a fresh process per file.

M is a tiny random-weight FunASR emotion2vec model (memory here is the decoder's, not the
model's). Results are printed as a table and written to scripts/bench/results/decode_memory.json.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine, write_result  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "decode_memory.json"
CACHE = ROOT / "cache" / "bench" / "decode_memory"
TOKEN = "decode-memory-bench-0123456789"
#: ffmpeg output options per codec (8 kbit/s mono at 16 kHz: 5 h is about 18-20 MB).
CODECS = {
    "aac": ["-c:a", "aac", "-b:a", "8k", "-f", "adts"],
    "m4a": ["-c:a", "aac", "-b:a", "8k", "-f", "mp4"],
    "webm": ["-c:a", "libopus", "-b:a", "8k", "-f", "webm"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "8k", "-f", "mp3"],
}
MB = 1024 * 1024


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=5.0)
    parser.add_argument("--codecs", default=",".join(CODECS))
    parser.add_argument("--concurrent", type=int, default=4, help="simultaneous long uploads to the monitor")
    parser.add_argument("--quick", action="store_true", help="0.5 h files, aac and webm only: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


# -- inputs ---------------------------------------------------------------------------------------
def encode(path: Path, seconds: float, codec: str) -> Path:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        print(f"encoding {path.name} ({seconds / 3600:.2f} h) ...", flush=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"anoisesrc=color=pink:sample_rate=16000:amplitude=0.2:duration={seconds}", "-ac", "1",
                        *CODECS[codec], str(partial)], check=True)
        partial.rename(path)
    return path


def tiny_model(folder: Path) -> Path:
    import torch

    from mmemo.encoders.emotion2vec_checkpoints import build_funasr_model, save_funasr_model_dir, tiny_model_conf

    target = folder / "tiny_e2v"
    if not (target / "model.pt").is_file():
        labels = ["angry", "happy", "neutral", "sad", "<unk>"]
        torch.manual_seed(0)
        conf = tiny_model_conf()
        save_funasr_model_dir(build_funasr_model(conf, num_labels=len(labels)), conf, target, labels)
    return target


# -- measuring --------------------------------------------------------------------------------------
class PeakMemory:
    """Peak summed RSS of a process and all its descendants, sampled on a thread."""

    def __init__(self, pid: int, interval: float = 0.01):
        self.process = psutil.Process(pid)
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def tree_rss(self) -> int:
        total = 0
        try:
            for member in [self.process, *self.process.children(recursive=True)]:
                try:
                    total += member.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.tree_rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = self.tree_rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_measured(command: list[str], env: dict) -> tuple[int, float, int, str]:
    """(peak bytes, seconds, exit code, stderr tail) of a command's process tree."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        process = psutil.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
        with PeakMemory(process.pid) as meter:
            code = process.wait()
        err.seek(0)
        tail = err.read().decode(errors="replace")[-400:]
    return meter.peak, time.perf_counter() - started, code, tail


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Monitor:
    def __init__(self, model: Path, folder: Path, env: dict):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (folder / "monitor.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mmemo.cli", "monitor", "serve", "--model", str(model), "--port", str(self.port),
             "--data-dir", str(folder / "monitor"), "--max-duration", "600", "--max-upload-mb", "25"],
            env={**env, "MMEMO_MONITOR_TOKEN": TOKEN}, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("the monitor did not start; see " + str(folder / "monitor.log"))

    def upload(self, path: Path) -> int:
        with path.open("rb") as handle:
            response = httpx.post(self.url + "/analyze", headers={"Authorization": f"Bearer {TOKEN}"},
                                  files={"file": (path.name, handle, "application/octet-stream")}, timeout=600)
        return response.status_code

    def measure(self, paths: list[Path]) -> tuple[int, int, list[int]]:
        """(peak tree RSS, idle RSS before, status codes) for these uploads sent at once."""
        meter = PeakMemory(self.process.pid)
        idle = meter.tree_rss()
        with meter, ThreadPoolExecutor(len(paths)) as pool:
            codes = list(pool.map(self.upload, paths))
        return meter.peak, idle, codes

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


PEER = "import sys, whisper; audio = whisper.load_audio(sys.argv[1]); print(len(audio) / 16000)"


def main() -> None:
    args = parse_args()
    hours = 0.5 if args.quick else args.hours
    codecs = ["aac", "webm"] if args.quick else [c.strip() for c in args.codecs.split(",") if c.strip()]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    result = {"machine": machine(), "load_average_at_start": os.getloadavg(), "hours": hours, "rows": []}
    print(result["machine"])
    work = Path(tempfile.mkdtemp(prefix="mmemo-decode-bench-"))
    model = tiny_model(CACHE)
    files = {codec: {"long": encode(CACHE / f"{hours:g}h.{codec}", hours * 3600, codec),
                     "window": encode(CACHE / f"30s.{codec}", 30.0, codec),
                     "short": encode(CACHE / f"5s.{codec}", 5.0, codec)} for codec in codecs}
    monitor = Monitor(model, work, env)
    try:
        monitor.upload(files[codecs[0]]["short"])  # warm-up: the first request loads lazily imported parts
        for codec in codecs:
            row = {"codec": codec}
            for length, path in files[codec].items():
                row[f"{length}_mb_on_disk"] = round(path.stat().st_size / MB, 2)
                peak, seconds, code, tail = run_measured(
                    [sys.executable, "-m", "mmemo.cli", "predict", str(path), "--model", str(model), "--no-progress",
                     "--out", str(work / "out.json")], env)
                row[f"predict_{length}_peak_mb"], row[f"predict_{length}_s"] = round(peak / MB), round(seconds, 1)
                if code != 0:
                    row[f"predict_{length}_error"] = tail
                peak, idle, codes = monitor.measure([path])
                row[f"monitor_{length}_peak_mb"] = round(peak / MB)
                row[f"monitor_{length}_above_idle_mb"] = round((peak - idle) / MB)
                row[f"monitor_{length}_status"] = codes[0]
                peak, seconds, code, tail = run_measured([sys.executable, "-c", PEER, str(path)], env)
                row[f"whisper_load_audio_{length}_peak_mb"] = round(peak / MB)
            peak, idle, codes = monitor.measure([files[codec]["long"]] * args.concurrent)
            row["monitor_concurrent_long_peak_mb"] = round(peak / MB)
            row["monitor_concurrent_long_above_idle_mb"] = round((peak - idle) / MB)
            row["monitor_concurrent_status"] = codes
            row["peer_over_mmemo_predict_long"] = round(row["whisper_load_audio_long_peak_mb"]
                                                        / max(1, row["predict_long_peak_mb"]), 2)
            result["rows"].append(row)
            print_row(row, hours, args.concurrent)
    finally:
        monitor.close()
    print_table(result["rows"], hours, args.concurrent)
    write_result(result, args.out)


def print_row(row: dict, hours: float, concurrent: int) -> None:
    print(f"{row['codec']}: predict {row['predict_long_peak_mb']} MB ({hours:g} h) vs "
          f"{row['predict_window_peak_mb']} MB (30 s), {row['predict_short_peak_mb']} MB (5 s); "
          f"monitor +{row['monitor_long_above_idle_mb']} MB (status {row['monitor_long_status']}) vs "
          f"+{row['monitor_short_above_idle_mb']} MB; {concurrent} at once "
          f"+{row['monitor_concurrent_long_above_idle_mb']}"
          f" MB; whisper.load_audio {row['whisper_load_audio_long_peak_mb']} MB", flush=True)


def print_table(rows: list[dict], hours: float, concurrent: int) -> None:
    long = f"{hours:g} h"
    print(f"\nPeak resident memory of the process tree (MB). Monitor: peak above its idle size; the {long} upload is "
          "refused (413) after decoding just past --max-duration 600 s.\n")
    header = (f"| codec | {long} file | mmemo predict, {long} | mmemo predict, 30 s | mmemo predict, 5 s | "
              f"monitor upload, {long} | "
              f"monitor upload, 5 s | monitor, {concurrent} x {long} at once | whisper.load_audio, {long} | "
              f"whisper.load_audio, 5 s | peer / mmemo ({long}) |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in rows:
        print(f"| {r['codec']} | {r['long_mb_on_disk']} MB | {r['predict_long_peak_mb']} | "
              f"{r['predict_window_peak_mb']} | "
              f"{r['predict_short_peak_mb']} | "
              f"+{r['monitor_long_above_idle_mb']} ({r['monitor_long_status']}) | +{r['monitor_short_above_idle_mb']} "
              f"({r['monitor_short_status']}) | +{r['monitor_concurrent_long_above_idle_mb']} | "
              f"{r['whisper_load_audio_long_peak_mb']} | {r['whisper_load_audio_short_peak_mb']} | "
              f"{r['peer_over_mmemo_predict_long']}x |")


if __name__ == "__main__":
    main()

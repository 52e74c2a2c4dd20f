"""What every benchmark in bench/ shares: the machine's name, library versions, timing that waits
for the GPU, and the rows appended to bench/results.csv (one per figure a run measures).

torch is imported only where a function needs it, so that a benchmark of subprocesses
(prepare_speed.py) stays small itself: a child inherits its parent's peak memory (ru_maxrss).
"""

from __future__ import annotations

import csv
import datetime
import os
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path

# A test points this elsewhere, so that checking a bench runs never adds rows to the project's record.
RESULTS = Path(os.environ.get("LIGHTNING_KG_BENCH_RESULTS", Path(__file__).with_name("results.csv")))
COLUMNS = ["date", "machine", "command", "versions", "figure", "ours", "baseline", "ratio"]


def machine(device: str) -> str:
    """The GPU's name on CUDA, else the CPU's architecture and core count."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def synchronize(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def timed(step, device: str) -> float:
    """Seconds one call of ``step`` takes, GPU work included."""
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def record(device: str, figure: str, ours: float, baseline: float | None, ratio: float | None, digits: int = 1,
           packages: tuple[str, ...] = ("torch", "transformers")) -> None:
    """Append one figure of this run to bench/results.csv, with the command that produced it and the
    versions of ``packages`` (the libraries the figure depends on)."""
    new = not RESULTS.exists()
    with open(RESULTS, "a", newline="") as out:
        writer = csv.writer(out)
        if new:
            writer.writerow(COLUMNS)
        writer.writerow([datetime.date.today().isoformat(), machine(device), " ".join(["python", *sys.argv]),
                         ", ".join(f"{name} {version(name)}" for name in packages), figure, f"{ours:.{digits}f}",
                         "" if baseline is None else f"{baseline:.{digits}f}", "" if ratio is None else f"{ratio:.2f}"])

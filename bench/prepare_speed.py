"""Pages/s and peak memory of ``python -m lightning_kg prepare`` with 1 and 2 workers.

Input: the English Wikipedia excerpt that ships in the gensim wheel (206 pages, 1.7 MB of bz2),
no Wikidata. Each run is a fresh subprocess writing into a temporary directory. Figures: parse
speed (bz2, XML and wikitext, in the worker pool; the parse stage's wall time, which prepare records
in .work/timings.json), pages/s of the whole run (tokenizer training and shard writing included),
the peak resident memory of the largest process (ru_maxrss of the finished process tree, from
wait4) and of all processes together (sampled every 50 ms). With one dump file and 2 workers, prepare's main process reads the pages
(a reader thread decompresses) and a pool parses their wikitext in ordered chunks; with as many
files as workers, each worker takes a file. The output is byte-identical either way.

    python bench/prepare_speed.py --quick
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

import psutil
from common import record

EXCERPT = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def run(excerpt: Path, workers: int) -> dict:
    """One prepare run: parse pages/s, pages, whole-run seconds, peak RSS of the largest process and summed (MiB)."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "lightning_kg", "prepare", "--wikipedia", f"[{excerpt}]",
                   "--out", f"{out}/data", "--workers", str(workers)]
        log = Path(out) / "log.txt"
        start = time.perf_counter()
        with open(log, "w") as stream:
            process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT)
        tree, summed = psutil.Process(process.pid), 0
        while True:
            # wait4 reaps the child with the ru_maxrss of it and its descendants: its own, not
            # this process's running total of children (runs follow one another here).
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            with contextlib.suppress(psutil.NoSuchProcess):  # a process ended between listing and reading
                summed = max(summed, sum(p.memory_info().rss for p in [tree, *tree.children(recursive=True)]))
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"{' '.join(command)} failed:\n{log.read_text()[-3000:]}")
        # What the run recorded: its stages' wall times and the manifest's page count.
        parse_seconds = json.loads(Path(out, "data", ".work", "timings.json").read_text())["parse"]
        pages = json.loads(Path(out, "data", "manifest.json").read_text())["counts"]["pages"]
    return {"parse": pages / parse_seconds, "pages": pages, "seconds": seconds,
            "largest": usage.ru_maxrss / 1024, "summed": summed / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per worker count (medians are shown)")
    parser.add_argument("--quick", action="store_true", help="one run per worker count")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    excerpt = Path(find_spec("gensim").origin).parent / EXCERPT
    results = {}
    for workers in (1, 2):
        runs = [run(excerpt, workers) for _ in range(args.repeats)]
        results[workers] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    pages = results[1]["pages"]
    print(f"prepare on the gensim English excerpt ({pages} pages), median of {args.repeats} run(s) each")
    print(f"  {'workers':>7s} {'parse pages/s':>14s} {'whole run s':>12s} {'whole pages/s':>14s} "
          f"{'peak MiB largest':>17s} {'peak MiB summed':>16s}")
    for workers, r in results.items():
        print(f"  {workers:7d} {r['parse']:14.0f} {r['seconds']:12.1f} {pages / r['seconds']:14.1f} "
              f"{r['largest']:17.0f} {r['summed']:16.0f}")
    one, two = results[1], results[2]
    print(f"  2 workers / 1: parse {two['parse'] / one['parse']:.2f}x, whole run {one['seconds'] / two['seconds']:.2f}x")
    record("cpu", "prepare parse pages/s, gensim en excerpt, 2 workers vs 1", two["parse"], one["parse"], two["parse"] / one["parse"], 0)
    record("cpu", "prepare whole-run pages/s, gensim en excerpt, 2 workers vs 1", pages / two["seconds"], pages / one["seconds"],
           one["seconds"] / two["seconds"])
    record("cpu", "prepare peak MiB (largest process), 2 workers vs 1", two["largest"], one["largest"], two["largest"] / one["largest"], 0)
    record("cpu", "prepare peak MiB (all processes summed), 2 workers vs 1", two["summed"], one["summed"], two["summed"] / one["summed"], 0)


if __name__ == "__main__":
    main()

"""Every bench runs from a fresh clone exactly as the README writes it (``python bench/NAME.py``
from the repository root, no ``PYTHONPATH``): each answers ``--help``, and the one that writes
synthetic shards runs at its smallest setting. A bench that imports the tests' helpers fails here."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHES = sorted(path.name for path in (ROOT / "bench").glob("*.py") if path.name != "common.py")


def run_bench(name: str, *args: str, results: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["LIGHTNING_KG_BENCH_RESULTS"] = str(results)
    return subprocess.run([sys.executable, f"bench/{name}", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_every_bench_is_listed():
    assert "data_pipeline.py" in BENCHES and "train_step.py" in BENCHES and len(BENCHES) >= 13


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHES)
def test_bench_answers_help(name, tmp_path):
    result = run_bench(name, "--help", results=tmp_path / "results.csv")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"usage: {name} ")
    assert not (tmp_path / "results.csv").exists()


@pytest.mark.slow
def test_data_pipeline_on_synthetic_shards(tmp_path):
    results = tmp_path / "results.csv"
    result = run_bench("data_pipeline.py", "--seq-len", "64", "--batches", "2", "--steps", "1", "--quick", results=results)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "synthetic shards of 64-token rows" in result.stdout
    lines = result.stdout.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.split()[:1] == ["workers"]) + 1:]
    workers = [line.split()[0] for line in table if line.strip()]
    assert workers == ["0", "1", "2"]
    rows = list(csv.DictReader(results.open()))
    assert rows and all("--seq-len 64" in row["command"] for row in rows)
    assert all(float(row["ours"]) > 0 for row in rows)

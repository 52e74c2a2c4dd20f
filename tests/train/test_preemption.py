"""Preemption and crashes on real training runs in subprocesses: SIGTERM saves and exits, SIGKILL at a
random step loses nothing but the steps since the last checkpoint, and either way the resumed run
ends with exactly the parameters of a run never stopped."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.train.test_fit import SMALL

ROOT = Path(__file__).resolve().parents[2]
STEPS = 12


def command(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "lightning_kg", "fit", *SMALL, "--run_dir", str(run_dir), "--trainer.max_steps", str(STEPS),
            "--trainer.val_check_interval", "6", "--trainer.limit_val_batches", "1", "--checkpoint_every_n_steps", "1", *extra]


def run(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    done = subprocess.run(command(run_dir, *extra), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def start_and_wait_for_step(tmp_path: Path, run_dir: Path, step: int) -> subprocess.Popen:
    """Start a run that reports each step to a file; return once it is at ``step``."""
    steps = tmp_path / f"{run_dir.name}-steps"
    config = tmp_path / f"{run_dir.name}.yaml"
    config.write_text(f"trainer:\n  callbacks:\n    - class_path: tests.train.recorder.BatchRecorder\n      init_args: {{out: {steps}}}\n")
    process = subprocess.Popen(command(run_dir, "--config", str(config)), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        lines = (steps / "rank0.jsonl").read_text().splitlines() if (steps / "rank0.jsonl").exists() else []
        if any(json.loads(line).get("step", -1) >= step for line in lines):
            return process
        time.sleep(0.01)
    process.kill()
    raise AssertionError(f"the run never reached step {step}: {process.communicate()[1][-3000:]}")


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict[str, torch.Tensor]:
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    run(run_dir)
    return weights(run_dir / "checkpoints" / "last.ckpt")


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def test_sigkill_at_a_random_step_then_resume_ends_as_a_run_never_stopped(straight, tmp_path):
    step = random.Random(8).randint(3, STEPS - 3)
    run_dir = tmp_path / "killed"
    process = start_and_wait_for_step(tmp_path, run_dir, step)
    process.send_signal(signal.SIGKILL)  # no handler runs: whatever was being written is cut off
    process.communicate()
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert step - 1 <= saved["global_step"] < STEPS
    run(run_dir, "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"))
    assert_same(straight, weights(run_dir / "checkpoints" / "last.ckpt"))


def test_sigterm_twice_saves_once_exits_143_and_resumes_exactly(straight, tmp_path):
    run_dir = tmp_path / "preempted"
    process = start_and_wait_for_step(tmp_path, run_dir, 4)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # a second signal while it saves
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-3000:]
    assert "stopped by SIGTERM at step" in out and "checkpoint saved" in out
    step = int(out.split("stopped by SIGTERM at step ")[1].split(";")[0])
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == step
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    run(run_dir, "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"))
    assert_same(straight, weights(run_dir / "checkpoints" / "last.ckpt"))

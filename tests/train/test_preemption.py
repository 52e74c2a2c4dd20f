"""Preemption and crashes on real training runs in subprocesses: SIGTERM (between steps or during
validation, to the main process or to the whole process group) saves once and exits, SLURM's
requeue signal saves, requeues and the requeued job resumes by itself, SIGKILL at a random step or
in the middle of a checkpoint write loses nothing but the steps since the last checkpoint, and
every time the resumed run ends with exactly the parameters of a run never stopped, and its
metrics.csv with the step labels of that run."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.demo import ROOT, SMALL

pytestmark = pytest.mark.slow  # every test trains in subprocesses

STEPS = 12
EVERY_STEP = ("--trainer.log_every_n_steps", "1")  # a metrics.csv row per step, so that any label off by one shows
WORKERS = ("--data.num_workers", "2")
SLURM_CONFIG = ("--config", str(ROOT / "conf" / "trainer" / "slurm.yaml"), "--trainer.devices", "1", "--trainer.num_nodes", "1")
# Task 0 of a one-task job, as srun sets it; a requeued job keeps its id.
SLURM = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "lightning_kg", "SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1",
         "SLURM_JOB_NUM_NODES": "1", "SLURM_NODELIST": "gpu017", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}


def command(run_dir: Path | None, *extra: str) -> list[str]:
    where = ["--run_dir", str(run_dir)] if run_dir else []
    return [sys.executable, "-m", "lightning_kg", "fit", *SMALL, *where, "--trainer.max_steps", str(STEPS),
            "--trainer.val_check_interval", "6", "--trainer.limit_val_batches", "1", "--checkpoint_every_n_steps", "1", *extra]


def environment(extra: dict | None = None) -> dict:
    # The repository on the path, so that tests.train.recorder loads from any working directory.
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **(extra or {})}


def run(run_dir: Path | None, *extra: str, cwd: Path = ROOT, env: dict | None = None, returncode: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run(command(run_dir, *extra), cwd=cwd, capture_output=True, text=True, timeout=300, env=environment(env))
    assert done.returncode == returncode, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def callbacks(tmp_path: Path, name: str, *specs: tuple[str, dict]) -> str:
    """A config file adding callbacks of tests.train.recorder, as (class name, init args)."""
    config = tmp_path / f"{name}.yaml"
    config.write_text("trainer:\n  callbacks:\n" + "".join(
        f"    - class_path: tests.train.recorder.{cls}\n      init_args: {json.dumps(args)}\n" for cls, args in specs))
    return str(config)


def written_lines(path: Path) -> list[str]:
    """The lines of a file another process is still writing: the last one only once its newline is in."""
    text = path.read_text() if path.exists() else ""
    return text.split("\n")[:-1]


def start_and_wait_for_step(tmp_path: Path, run_dir: Path, step: int, *extra: str, env: dict | None = None,
                            session: bool = False) -> subprocess.Popen:
    """Start a run that reports each step to a file; return once it is at ``step``. With ``session``
    the run leads a process group of its own (its pid is the group's id), as under a scheduler."""
    steps = tmp_path / f"{run_dir.name}-steps"
    config = callbacks(tmp_path, run_dir.name, ("BatchRecorder", {"out": str(steps)}))
    process = subprocess.Popen(command(run_dir, "--config", config, *extra), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=environment(env), start_new_session=session)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if any(json.loads(line).get("step", -1) >= step for line in written_lines(steps / "rank0.jsonl")):
            return process
        time.sleep(0.01)
    process.kill()
    raise AssertionError(f"the run never reached step {step}: {process.communicate()[1][-3000:]}")


def load(checkpoint: Path) -> dict:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load(checkpoint)["state_dict"]


def logged_steps(run_dir: Path) -> dict[str, list[str]]:
    """The step labels of metrics.csv's training and validation rows."""
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    return {kind: [row["step"] for row in rows if row.get(f"{kind}/loss")] for kind in ("train", "val")}


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    run(run_dir, *EVERY_STEP)  # logging every step leaves the parameters as logging every fifth does
    return run_dir


@pytest.fixture(scope="module")
def straight(straight_run) -> dict[str, torch.Tensor]:
    return weights(straight_run / "checkpoints" / "last.ckpt")


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
    saved = load(run_dir / "checkpoints" / "last.ckpt")
    assert step - 1 <= saved["global_step"] < STEPS
    run(run_dir, "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"))
    assert_same(straight, weights(run_dir / "checkpoints" / "last.ckpt"))


@pytest.mark.slow
def test_sigkill_then_resume_with_language_sampling_ends_as_a_run_never_stopped(tmp_path):
    sampling = ("--data.language_sampling_alpha", "0.3")
    run(tmp_path / "straight", *sampling)
    run_dir = tmp_path / "killed"
    process = start_and_wait_for_step(tmp_path, run_dir, 7, *sampling)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert 6 <= load(run_dir / "checkpoints" / "last.ckpt")["global_step"] < STEPS
    run(run_dir, "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"), *sampling)
    assert_same(weights(tmp_path / "straight" / "checkpoints" / "last.ckpt"), weights(run_dir / "checkpoints" / "last.ckpt"))


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
    assert load(run_dir / "checkpoints" / "last.ckpt")["global_step"] == step
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    run(run_dir, "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"))
    assert_same(straight, weights(run_dir / "checkpoints" / "last.ckpt"))


def test_sigkill_while_a_checkpoint_is_written_leaves_the_previous_one_whole(straight, tmp_path):
    run_dir, marker = tmp_path / "cut", tmp_path / "writing"
    process = subprocess.Popen(command(run_dir, "--config", callbacks(tmp_path, "slow", ("SlowSave", {"step": 5, "marker": str(marker)}))),
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment())
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    assert marker.exists(), process.communicate()[1][-3000:]
    # The write goes to a temporary name beside last.ckpt, which still holds step 4.
    assert (run_dir / "checkpoints" / "last.ckpt.tmp").exists()
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert load(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 4
    done = run(run_dir, "--ckpt_path", "last")
    assert f"Restoring states from the checkpoint path at {run_dir / 'checkpoints' / 'last.ckpt'}" in done.stdout + done.stderr
    assert_same(straight, weights(run_dir / "checkpoints" / "last.ckpt"))


def test_sigterm_during_validation_saves_and_the_resumed_run_ends_the_same(straight_run, straight, tmp_path):
    # Lightning's own handler makes its evaluation loop raise before any callback could save.
    run_dir = tmp_path / "in-validation"
    config = callbacks(tmp_path, "term", ("SignalAt", {"signal": "SIGTERM", "validation_batch": 1}))
    done = run(run_dir, "--config", config, "--trainer.limit_val_batches", "3", *EVERY_STEP, returncode=143)
    assert "stopped by SIGTERM at step 6; checkpoint saved" in done.stdout
    assert load(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 6
    run(run_dir, "--ckpt_path", "last", *EVERY_STEP)
    assert_same(straight, weights(run_dir / "checkpoints" / "last.ckpt"))
    assert logged_steps(run_dir)["train"] == logged_steps(straight_run)["train"]


@pytest.mark.slow
def test_preemption_writes_one_checkpoint_runs_no_validation_and_the_resumed_logs_keep_their_steps(straight_run, straight, tmp_path):
    run_dir, events = tmp_path / "once", tmp_path / "events.txt"
    config = callbacks(tmp_path, "term", ("SignalAt", {"signal": "SIGTERM", "step": 4}), ("EventLog", {"out": str(events)}))
    run(run_dir, "--config", config, *EVERY_STEP, returncode=143)
    # The periodic saves of steps 1-3 (--checkpoint_every_n_steps 1), then the preemption's, and
    # nothing else: Lightning used to validate when told to stop, then save best-step=4.ckpt and last.ckpt again.
    assert events.read_text().splitlines() == [f"save step={step}" for step in (1, 2, 3, 4)]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]
    run(run_dir, "--ckpt_path", "last", *EVERY_STEP)
    assert_same(straight, weights(run_dir / "checkpoints" / "last.ckpt"))
    # That last save restored the loggers' step one short: rows 0-3, then 3-10 instead of 4-11.
    assert logged_steps(run_dir) == logged_steps(straight_run) == {"train": [str(step) for step in range(STEPS)], "val": ["5", "11"]}


@pytest.fixture(scope="module")
def straight_with_workers(tmp_path_factory) -> dict[str, torch.Tensor]:
    run_dir = tmp_path_factory.mktemp("straight-workers") / "run"
    run(run_dir, *WORKERS)
    return weights(run_dir / "checkpoints" / "last.ckpt")


def stub_scontrol(tmp_path: Path) -> dict:
    """SLURM's variables, and a ``scontrol`` on PATH that records its arguments in ``scontrol.calls``."""
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.calls"}\n')
    (stub / "scontrol").chmod(0o755)
    return {**SLURM, "PATH": f"{stub}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.slow
def test_a_signal_to_the_whole_process_group_reaches_the_main_process_only(straight_with_workers, tmp_path):
    # systemd, Kubernetes and SLURM's --signal without B: signal every process of the job, loader
    # workers included; those used to die first ("DataLoader worker (pid N) is killed by signal").
    run_dir = tmp_path / "group"
    process = start_and_wait_for_step(tmp_path, run_dir, 3, *WORKERS, session=True)
    os.killpg(process.pid, signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-3000:]
    assert "stopped by SIGTERM at step" in out and "killed by signal" not in err
    stopped = load(run_dir / "checkpoints" / "last.ckpt")["global_step"]
    # Resumed under SLURM (its run directory given), then SIGUSR1 to the group: saved and requeued.
    slurm = stub_scontrol(tmp_path)
    process = start_and_wait_for_step(tmp_path, run_dir, stopped + 3, *WORKERS, *SLURM_CONFIG, env=slurm, session=True)
    os.killpg(process.pid, signal.SIGUSR1)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]  # the job comes back by itself
    assert "requeued SLURM job 4242" in out and "killed by signal" not in err
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 4242\n"
    assert load(run_dir / "checkpoints" / "last.ckpt")["global_step"] > stopped
    # The requeued job resumes from that checkpoint and ends as a run never stopped.
    run(run_dir, *WORKERS, *SLURM_CONFIG, env={**slurm, "SLURM_RESTART_COUNT": "1"})
    assert_same(straight_with_workers, weights(run_dir / "checkpoints" / "last.ckpt"))


def test_slurm_requeue_signal_saves_requeues_and_the_requeued_job_resumes_by_itself(straight, tmp_path):
    slurm = stub_scontrol(tmp_path)
    config = list(SLURM_CONFIG)
    signalled = callbacks(tmp_path, "usr1", ("SignalAt", {"signal": "SIGUSR1", "step": 4}))
    # In a fresh directory, as sbatch runs it: the run directory is runs/slurm-<job id> there.
    done = run(None, *config, "--config", signalled, cwd=tmp_path, env=slurm)  # exit status 0: the job comes back
    assert "stopped by SIGUSR1 at step 4" in done.stdout and "requeued SLURM job 4242" in done.stdout
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 4242\n"  # from rank 0, once, after the save
    run_dir = tmp_path / "runs" / "slurm-4242"
    assert load(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 4
    # The requeued job: same id, same arguments, no --ckpt_path.
    done = run(None, *config, cwd=tmp_path, env={**slurm, "SLURM_RESTART_COUNT": "1"})
    assert f"SLURM job 4242: resuming from {Path('runs') / 'slurm-4242' / 'checkpoints' / 'last.ckpt'}" in done.stdout
    assert_same(straight, weights(run_dir / "checkpoints" / "last.ckpt"))
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 4242\n"


def test_several_ranks_agree_on_a_signal_every_n_steps_only_and_one_process_every_step():
    """The agreement is an all-reduce that waits for the device, so with several ranks it is not in every step."""
    from types import SimpleNamespace

    from lightning_kg.train.preemption import Preemption

    for world_size, expected in ((2, [10, 20]), (1, list(range(1, 21)))):
        asked = []
        trainer = SimpleNamespace(accumulate_grad_batches=1, world_size=world_size, global_step=0)
        trainer.strategy = SimpleNamespace(reduce_boolean_decision=lambda decision, all, t=trainer, asked=asked: asked.append(t.global_step) or False)
        preemption = Preemption(last=None)
        for step in range(1, 21):
            trainer.global_step = step
            preemption.on_train_batch_end(trainer, None, None, None, step - 1)
        assert asked == expected, world_size

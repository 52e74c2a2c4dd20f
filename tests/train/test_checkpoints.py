"""Atomic checkpoint writes, the swap of DeepSpeed directories, and which checkpoint a resume picks
(by step and by whether it loads, never by file times)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from lightning_kg.train import checkpoints
from lightning_kg.train.checkpoints import AtomicCheckpointIO, checkpoint_step, newest_checkpoint, newest_run, swap_into_place


def save(path: Path, step: int, age: float = 0.0) -> Path:
    """A Lightning-like checkpoint file of ``step``, dated ``age`` seconds ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": step, "state_dict": {"w": torch.full((4,), float(step))}}, path)
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def deepspeed_dir(path: Path, step: int, age: float = 0.0, zero3: bool = False) -> Path:
    """A DeepSpeed checkpoint directory as Lightning writes it (tag "checkpoint"), dated ``age`` seconds ago."""
    save(path / "checkpoint" / f"{'zero_pp_rank_0_' if zero3 else ''}mp_rank_00_model_states.pt", step, age)
    (path / "latest").write_text("checkpoint")
    return path


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cut off in the middle of the write")


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 3}, path)
    assert checkpoint_step(path) == 3 and len(synced) == 2  # the file, then its directory's entry
    with pytest.raises(RuntimeError, match="cut off in the middle"):
        io.save_checkpoint({"global_step": 4, "bad": Unpicklable()}, path)
    assert checkpoint_step(path) == 3
    # The write went to a temporary name in the same directory (a rename there is atomic; /tmp may be
    # another disk), which the failed write removed, so a full disk is not left fuller.
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]
    io.save_checkpoint({"global_step": 5}, path)
    assert checkpoint_step(path) == 5 and sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two renames"])
def test_a_deepspeed_directory_is_swapped_in_whole(tmp_path, monkeypatch, exchange):
    if not exchange:  # a filesystem without RENAME_EXCHANGE (NFS, Lustre)
        monkeypatch.setattr(checkpoints, "_exchange", lambda first, second: False)
    target = deepspeed_dir(tmp_path / "last.ckpt", 3)
    staging = deepspeed_dir(tmp_path / "last.ckpt.tmp", 4)
    swap_into_place(staging, target)
    assert checkpoint_step(target) == 4 and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    swap_into_place(deepspeed_dir(tmp_path / "first.ckpt.tmp", 1), tmp_path / "first.ckpt")  # nothing to replace yet
    assert checkpoint_step(tmp_path / "first.ckpt") == 1


def test_the_newest_checkpoint_is_the_highest_step_that_loads(tmp_path):
    run = tmp_path / "run"
    save(run / "checkpoints" / "best-step=250.ckpt", 250, age=10)
    last = save(run / "checkpoints" / "last.ckpt", 500, age=100)  # older on disk, yet the furthest
    cut = save(run / "checkpoints" / "last-v1.ckpt", 600, age=1)
    cut.write_bytes(cut.read_bytes()[:100])  # cut short: passed over
    save(run / "checkpoints" / "last.ckpt.tmp", 700)  # an unfinished write: never a candidate
    with pytest.warns(UserWarning, match="last-v1.ckpt: does not load as a checkpoint"):
        assert newest_checkpoint(run) == last
    # A DeepSpeed directory keeps its own time when its files are rewritten: its step decides.
    sharded = deepspeed_dir(run / "checkpoints" / "sharded.ckpt", 800, age=1000, zero3=True)
    os.utime(sharded, (0, 0))
    with pytest.warns(UserWarning):
        assert newest_checkpoint(run) == sharded
    hpc = save(run / "hpc_ckpt_3.ckpt", 900, age=2000)  # Lightning's SLURM save, in the run directory itself
    with pytest.warns(UserWarning):
        assert newest_checkpoint(run) == hpc
    assert newest_checkpoint(tmp_path / "empty") is None


def test_the_newest_run_is_the_one_that_saved_last(tmp_path):
    save(tmp_path / "20250101-000000" / "checkpoints" / "last.ckpt", 900, age=100)
    recent = save(tmp_path / "20240101-000000" / "checkpoints" / "last.ckpt", 10, age=5)
    (tmp_path / "slurm-1.out").write_text("a log, not a run")
    assert newest_run(tmp_path) == recent.parent.parent
    recent.write_bytes(b"")  # its only checkpoint is broken: the other run
    with pytest.warns(UserWarning):
        assert newest_run(tmp_path) == tmp_path / "20250101-000000"

"""Atomic checkpoint writes, a full disk, the swap of DeepSpeed directories, which checkpoint a resume
picks (by step and by whether it loads, never by file times), and the save when bad data stops a fit."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import torch

from lightning_kg.cli import main
from lightning_kg.recipes.synthetic_shards import make_dataset
from lightning_kg.runs import saving
from lightning_kg.runs.checkpoints import checkpoint_step, newest_checkpoint, newest_run
from lightning_kg.runs.saving import AtomicCheckpointIO, CheckpointWriteError, swap_into_place
from tests.demo import SMALL


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


def test_a_full_disk_stops_the_write_naming_the_path_the_bytes_needed_and_free(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 3}, path)
    real_save = torch.save

    def full_disk(checkpoint, out):  # as torch's zip writer reports it: the OSError only as the context
        out.write(b"x" * 4096)
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointWriteError) as failed:
        io.save_checkpoint({"global_step": 4, "weights": torch.zeros(2**18)}, path)  # 1 MiB of tensors
    assert re.fullmatch(rf"{re.escape(str(path))}: no space left to write the checkpoint: it needs about 1\.0 MiB \(1,048,576 bytes\), "
                        r"[\d,.]+ MiB \([\d,]+ bytes\) are free there; the previous last\.ckpt \(step 3\) is kept\. Free some space "
                        r"\(or move the run directory\) and resume with --ckpt_path last", str(failed.value))
    # The temporary file is gone (it filled the disk, so that a resume could not even start).
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"] and checkpoint_step(path) == 3
    monkeypatch.setattr(torch, "save", real_save)
    with pytest.raises(RuntimeError, match="^cut off in the middle"):  # other failures stay as they are
        io.save_checkpoint({"global_step": 4, "bad": Unpicklable()}, path)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 14 MiB tmpfs (the demo fit's last.ckpt takes 8.5 MiB: one fits, not a second beside it), or a skip."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=14m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.slow
def test_a_fit_on_a_full_disk_stops_keeps_the_previous_checkpoint_and_resumes_once_there_is_space(small_tmpfs, capsys):
    run_dir = small_tmpfs / "run"
    options = [*SMALL, "--run_dir", str(run_dir), "--trainer.limit_val_batches", "0", "--checkpoint_every_n_steps", "2"]
    with pytest.raises(SystemExit) as stopped:
        main(["fit", *options, "--trainer.max_steps", "6"])
    assert stopped.value.code == 1
    error = capsys.readouterr().err
    assert re.search(rf"error: {re.escape(str(run_dir / 'checkpoints' / 'last.ckpt'))}: no space left to write the checkpoint: "
                     r"it needs about 8\.\d MiB .* are free there; the previous last\.ckpt \(step 2\) is kept", error), error[-2000:]
    assert "unexpected pos" not in error and "Traceback" not in error
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]
    assert checkpoint_step(run_dir / "checkpoints" / "last.ckpt") == 2
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_tmpfs)], check=True)  # space freed
    main(["fit", *options, "--ckpt_path", "last", "--trainer.max_steps", "6"])
    assert checkpoint_step(run_dir / "checkpoints" / "last.ckpt") == 6


@pytest.mark.slow
def test_bad_data_that_stops_a_fit_saves_last_ckpt_first(tmp_path, capsys):
    # Shards of 24 samples read in turn (no shuffle buffer), so a shard opens every few steps; all of
    # them go bad after step 3 (a failing disk or mount) and the next one opened stops the run.
    dataset = make_dataset(tmp_path / "dataset", train_shards=4)
    run_dir = tmp_path / "run"
    config = tmp_path / "corrupt.yaml"
    config.write_text("trainer:\n  callbacks:\n    - class_path: tests.train.recorder.CorruptShardsAt\n"
                      f"      init_args: {json.dumps({'step': 3, 'pattern': str(dataset / 'train-*.tar')})}\n")
    with pytest.raises(SystemExit) as stopped:
        main(["fit", *SMALL, "--data.data_dir", str(dataset), "--data.batch_size", "4", "--data.shuffle_buffer", "0",
              "--data.bad_samples", "fail", "--run_dir", str(run_dir), "--trainer.max_steps", "40", "--trainer.limit_val_batches", "0",
              "--checkpoint_every_n_steps", "100", "--config", str(config)])
    assert stopped.value.code == 1
    error = capsys.readouterr().err
    found = re.search(r"stopped by bad data at step (\d+); checkpoint saved: (\S+);", error)
    # The shard being read, or the next one opened, named with what was expected of it.
    assert found and re.search(rf"error: {re.escape(str(dataset))}/train-00000\d\.tar: .*expected", error), error[-2000:]
    # No periodic save came before (every 100 steps): the steps trained so far are kept all the same.
    step = int(found.group(1))
    assert found.group(2) == str(run_dir / "checkpoints" / "last.ckpt") and 3 < step < 40
    assert checkpoint_step(run_dir / "checkpoints" / "last.ckpt") == step


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two renames"])
def test_a_deepspeed_directory_is_swapped_in_whole(tmp_path, monkeypatch, exchange):
    if not exchange:  # a filesystem without RENAME_EXCHANGE (NFS, Lustre)
        monkeypatch.setattr(saving, "_exchange", lambda first, second: False)
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

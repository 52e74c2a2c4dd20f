"""Checkpoints that a crash cannot corrupt, the one callback that owns ``last.ckpt``, and finding
the newest complete checkpoint to resume from.

- Writes are atomic: a file is written as ``<name>.tmp`` in its own directory, flushed to disk
  (fsync) and renamed over the old one (:class:`AtomicCheckpointIO`); a DeepSpeed directory is
  written as ``<dir>.tmp/`` and swapped in by rank 0 (``strategies.AtomicDeepSpeedStrategy``). A
  SIGKILL at any moment leaves the previous checkpoint whole. Lightning's own write goes through a
  temporary file in ``$TMPDIR`` and a copy when that is on another filesystem, without fsync.
- One callback, :class:`LastCheckpoint`, writes ``checkpoints/last.ckpt`` (every N steps, after each
  validation, at the end, on preemption), so there is never a second ``last-v1.ckpt`` beside it.
- Resuming picks by content, not by file times: the checkpoint that loads and has the highest
  ``global_step`` (a DeepSpeed directory's time does not change when its files are rewritten).
- A write that fails for want of space (ENOSPC, or a quota: EDQUOT) removes its temporary file and
  stops with :class:`CheckpointWriteError`: the path, the bytes needed and free, and the previous
  checkpoint, which is kept. torch's zip writer reports it as ``unexpected pos``; the cause is read
  from the exception chain.
- Bad data or a failing shard that stops a fit saves ``last.ckpt`` first (:meth:`LastCheckpoint.on_exception`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.trainer.states import TrainerFn

from lightning_kg.data.checks import BadDataError
from lightning_kg.dataset.files import atomic_file, fsync_path

LAST = "last.ckpt"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written for want of space; the previous one is kept."""


def checkpoint_bytes(checkpoint: Any) -> int:
    """Bytes of the tensors in a checkpoint dict (each storage once): about what ``torch.save`` writes."""
    storages, stack = {}, [checkpoint]
    while stack:
        value = stack.pop()
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            storages[(storage.data_ptr(), storage.device)] = storage.nbytes()
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return sum(storages.values())


def _mib(count: int) -> str:
    return f"{count / 2**20:,.1f} MiB ({count:,} bytes)"


def _out_of_space(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from or while handling, is ENOSPC or EDQUOT."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _NO_SPACE:
            return True
        error = error.__cause__ or error.__context__
    return False


def atomic_torch_save(checkpoint: dict[str, Any], path: Path) -> None:
    """``torch.save`` to ``<path>.tmp`` beside ``path``, fsync, then rename over ``path``: readers
    see the old file or the new one, never a part. Out of space: :class:`CheckpointWriteError`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_file(path) as out:  # removes <path>.tmp when the write fails
            torch.save(checkpoint, out)
    except Exception as error:
        if not _out_of_space(error):
            raise
        free = shutil.disk_usage(path.parent).free
        step = checkpoint_step(path) if path.exists() else None
        kept = f"the previous {path.name} (step {step}) is kept" if step is not None else f"there was no {path.name} before"
        raise CheckpointWriteError(f"{path}: no space left to write the checkpoint: it needs about {_mib(checkpoint_bytes(checkpoint))}, "
                                   f"{_mib(free)} are free there; {kept}. Free some space (or move the run directory) and resume "
                                   "with --ckpt_path last") from error


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer with :func:`atomic_torch_save` for local paths (remote URLs,
    ``s3://`` and the like, keep Lightning's own transaction)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, Path(path))


_RENAME_EXCHANGE = 2  # linux/fs.h


def swap_into_place(staging: Path, target: Path) -> None:
    """Put the finished directory ``staging`` where ``target`` is, replacing it.

    With no ``target`` yet, or on Linux filesystems that support ``renameat2(RENAME_EXCHANGE)``
    (ext4, xfs, btrfs, tmpfs), one atomic rename. Elsewhere (NFS, Lustre, macOS) two renames,
    ``target`` -> ``<target>.old`` then ``staging`` -> ``target``: a crash between them leaves the
    previous checkpoint whole as ``<target>.old``, which :func:`resume_candidates` considers.
    """
    if not target.exists():
        os.rename(staging, target)
    elif not _exchange(staging, target):
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(target, old)
        os.rename(staging, target)
        staging = old
    fsync_path(target.parent)
    shutil.rmtree(staging, ignore_errors=True)  # the previous checkpoint


def _exchange(first: Path, second: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_cwd = -100
    return renameat2(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), _RENAME_EXCHANGE) == 0


def checkpoint_step(path: Path) -> int | None:
    """``global_step`` of a complete checkpoint (a Lightning file or a DeepSpeed directory), None
    when it does not load (cut short, or not a checkpoint). Memory-mapped: reads the index, not the
    weights, so a multi-GB file costs milliseconds."""
    path = Path(path)
    try:
        if path.is_dir():
            tag = (path / "latest").read_text().strip()  # DeepSpeed writes it after the shards
            state = torch.load(_model_states(path / tag)[0], map_location="cpu", mmap=True, weights_only=False)
        else:
            state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        return int(state["global_step"])
    except Exception:  # noqa: BLE001 - any failure to load means "not a complete checkpoint"
        return None


def _model_states(tag_dir: Path) -> list[Path]:
    """Rank 0's model-state file of a DeepSpeed checkpoint tag (ZeRO-3 prefixes it with its partition)."""
    return [p for name in ("mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_model_states.pt")
            if (p := tag_dir / name).is_file()]


def resume_candidates(run_dir: Path) -> list[Path]:
    """Checkpoints a run directory may hold: ``checkpoints/*.ckpt`` (last, best), ``hpc_ckpt_*.ckpt``
    (Lightning's SLURM save) and a ``*.ckpt.old`` left by a swap cut short. ``*.tmp`` never: those
    are writes that did not finish."""
    run_dir = Path(run_dir)
    return [*sorted((run_dir / "checkpoints").glob("*.ckpt")), *sorted((run_dir / "checkpoints").glob("*.ckpt.old")),
            *sorted(run_dir.glob("hpc_ckpt_*.ckpt"))]


def _saved_time(path: Path) -> float:
    """When a checkpoint's content was written (for a DeepSpeed directory, its model-state file)."""
    states = [state for tag in path.iterdir() if tag.is_dir() for state in _model_states(tag)] if path.is_dir() else [path]
    return max((p.stat().st_mtime for p in states), default=path.stat().st_mtime)


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint of ``run_dir`` with the highest ``global_step`` (the later written
    on a tie); ones that do not load are passed over with a warning."""
    complete = []
    for path in resume_candidates(run_dir):
        step = checkpoint_step(path)
        if step is None:
            warnings.warn(f"{path}: does not load as a checkpoint (cut short?); passed over", stacklevel=2)
            continue
        complete.append((step, _saved_time(path), path))
    return max(complete)[2] if complete else None


def newest_run(root: Path) -> Path | None:
    """The run under ``root`` that saved a complete checkpoint last. Steps of different runs do not
    compare, so runs are ordered by when their checkpoints were written, then checked for one that loads."""
    runs = [run for run in Path(root).glob("*") if run.is_dir() and resume_candidates(run)]
    for run in sorted(runs, key=lambda run: max(_saved_time(p) for p in resume_candidates(run)), reverse=True):
        if newest_checkpoint(run) is not None:
            return run
    return None


class LastCheckpoint(Checkpoint):
    """Owns ``checkpoints/last.ckpt``: writes it every ``every_n_steps`` optimiser steps, after each
    validation of a fit, at the end of training, and when :class:`~lightning_kg.train.preemption.Preemption`
    asks. A ``Checkpoint`` subclass, so Lightning runs it after the other callbacks (the best-model
    ``ModelCheckpoint`` among them), whose states it then holds."""

    def __init__(self, dirpath: str | Path, every_n_steps: int | None = None):
        self.path = Path(dirpath) / LAST
        self.every_n_steps = every_n_steps
        self._saved_step: int | None = None
        self._start_step: int | None = None
        self.saved_on_error: Path | None = None  # written when bad data stopped the fit

    def save(self, trainer) -> Path:
        # The whole training state (optimiser, loops, callbacks), said outright: left unset, Lightning
        # chooses the same and logs a line about it at every save.
        trainer.save_checkpoint(self.path, weights_only=False)
        self._saved_step = trainer.global_step
        return self.path

    def on_train_start(self, trainer, pl_module) -> None:
        self._start_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Under gradient accumulation, global_step stays put over a step's micro-batches: save once.
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0 and trainer.global_step != self._saved_step:
            self.save(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        # Even at a step already saved: the checkpoint then records that this validation ran.
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self.save(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_step != self._saved_step:
            self.save(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """Bad data or a failing shard (``data/checks.py``) stops a fit between steps (the next batch
        could not be made) or during validation: the state is that of the last finished step, so
        it is saved, keeping the work since the last periodic save. On one process only: with
        several, the other ranks are inside a collective that the stopped rank never joins."""
        if (not isinstance(exception, BadDataError) or trainer.state.fn != TrainerFn.FITTING or trainer.world_size > 1
                or trainer.global_step in (self._saved_step, self._start_step, None)):
            return
        try:
            self.saved_on_error = self.save(trainer)
        except Exception as error:  # noqa: BLE001 - the data error is the one to report
            warnings.warn(f"{self.path}: not saved after the data error ({error})", stacklevel=2)

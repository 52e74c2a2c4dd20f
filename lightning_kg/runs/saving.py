"""Writing checkpoints that a crash cannot corrupt.

A file is written as ``<name>.tmp`` in its own directory, flushed to disk (fsync) and renamed over
the old one (:class:`AtomicCheckpointIO`); a DeepSpeed directory is written as ``<dir>.tmp/`` and
swapped in by rank 0 (:func:`swap_into_place`, used by ``train.strategies.AtomicDeepSpeedStrategy``).
A SIGKILL at any moment leaves the previous checkpoint whole. Lightning's own write goes through a
temporary file in ``$TMPDIR`` and a copy when that is on another filesystem, without fsync. A write
that fails for want of space (ENOSPC, or a quota: EDQUOT) removes its temporary file and stops with
:class:`CheckpointWriteError`: the path, the bytes needed and free, and the previous checkpoint,
which is kept. torch's zip writer reports it as ``unexpected pos``; the cause is read from the
exception chain.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from lightning_kg.dataset.files import atomic_file, fsync_path
from lightning_kg.runs.checkpoints import checkpoint_step

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

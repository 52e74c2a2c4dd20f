"""What the trainer verbs check before anything runs or is written into the run directory.

A fault found minutes into a job costs its queue wait, and what the failed start wrote used to make
the next ``fit --run_dir`` refuse the directory. Each check stops with one line (:class:`StartupError`)
naming the file or setting and what was expected:
- every ``--config`` file parses as YAML (``verbs.check_config_files``: jsonargparse names it ``<unicode string>``);
- ``--ckpt_path`` exists, loads as a checkpoint, and fits the model this config builds
  ("trained with hidden_size 64, this config asks 128"); the config's model settings are the ones
  used, never silently replaced by the checkpoint's;
- ``--run_dir`` is not a file; a fresh fit refuses one that holds a run (a checkpoint, ``metrics.csv``,
  files of its own), but not what a failed start leaves (configs, ``tensorboard/``, the lock);
- a fit holds ``<run_dir>/fit.lock`` (``flock``) while it lives, so a second fit on the same
  directory stops at once, naming the process that holds it. The kernel releases the lock when the
  process ends, however it ends, so a stale file never blocks.
The dataset's own checks (hashes, every shard the manifest lists) are
``KnowledgeDataModule.check_dataset``'s, the tokenizer's ``dataset.tokenizer.load_tokenizer``'s.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import IO

from lightning_kg.data.language_sampling import TABLE_FILE
from lightning_kg.dataset.format import OBJECTIVES
from lightning_kg.runs.checkpoints import checkpoint_step, encoder_config, parameter_shapes, resume_candidates
from lightning_kg.runs.formats import objective_settings_of
from lightning_kg.train.module import active_objectives

LOCK = "fit.lock"
# What a start leaves before its first step: the configs, Lightning's hparams.yaml, TensorBoard's
# hparams event, the lock and the (still empty) checkpoints folder.
START_FILES = ("config.yaml", "hparams.yaml", "tensorboard", "checkpoints", LOCK, TABLE_FILE)
# Model settings that change the parameters' shapes, besides the encoder's.
SHAPE_SETTINGS = ("queue_size", "projection_size")


class StartupError(ValueError):
    """A check before the run failed; the message is the one line to show."""


def check_checkpoint_file(ckpt_path: str) -> None:
    """``--ckpt_path`` exists and loads as a checkpoint with a step (a Lightning file or a DeepSpeed directory)."""
    path = Path(ckpt_path)
    if not path.exists():
        raise StartupError(f"--ckpt_path {path}: no such file (a run's checkpoints/last.ckpt, or `last` for the newest)")
    if checkpoint_step(path) is None:
        raise StartupError(f"--ckpt_path {path}: not a checkpoint (it does not load with torch.load, or holds no global_step); "
                           "expected a .ckpt file a run saved, or a DeepSpeed checkpoint directory")


def _shape_settings(hparams: Mapping) -> dict:
    """The model settings (``model.*``) that decide the parameters' names and shapes."""
    encoder = encoder_config(hparams)
    objectives = asdict(objective_settings_of(hparams))  # a run from before objective_settings holds them flat
    settings = {"size": hparams.get("size", "tiny"),
                **{name: getattr(encoder, name) for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size",
                                                              "entity_emb_size", "max_position_embeddings", "type_vocab_size",
                                                              "use_entity_aware_attention", "vocab_size", "entity_vocab_size")},
                **{name: objectives[name] for name in SHAPE_SETTINGS}}
    weights = [objectives[f"{name}_weight"] for name in OBJECTIVES]
    settings["objectives"] = ", ".join(active_objectives(*weights))
    return settings


def check_checkpoint_fits(module, ckpt_path: str) -> None:
    """The checkpoint's parameters have the names and shapes of ``module``'s (a ``KnowledgePretraining``),
    else a :class:`StartupError` naming the settings that differ. Memory-mapped: reads no weights.
    DeepSpeed directories are left to DeepSpeed, which checks as it loads."""
    path = Path(ckpt_path)
    if path.is_dir():
        return
    saved, hparams = parameter_shapes(path)
    ours = {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}
    if saved == ours:
        return
    trained, asked = (_shape_settings(hparams), _shape_settings(module.hparams)) if hparams else ({}, {})
    differences = [f"trained with {name} {trained[name]}, this config asks {asked[name]}" for name in trained if trained[name] != asked[name]]
    if not differences:  # settings alike, parameters not: name the first that differs
        name = next(iter(sorted(set(saved) ^ set(ours)) or [n for n in sorted(saved) if saved[n] != ours[n]]))
        differences = [f"{name} is {saved.get(name, 'absent')} there, {ours.get(name, 'absent')} in this model"]
    raise StartupError(f"--ckpt_path {path} does not fit this model: {'; '.join(differences)}. Pass the model settings it "
                       "was trained with (its run directory's config.yaml has them)")


def fresh_start_blockers(run_dir: Path) -> list[str]:
    """What in ``run_dir`` a fresh fit must not write over: a checkpoint, ``metrics.csv``, or any file
    but those a start leaves before its first step (:data:`START_FILES`, ``config-*.yaml``)."""
    if not run_dir.is_dir():
        return []
    others = [p.name for p in run_dir.iterdir() if p.name not in START_FILES and not (p.name.startswith("config-") and p.suffix == ".yaml")]
    return sorted({*others, *(str(p.relative_to(run_dir)) for p in resume_candidates(run_dir))})


def lock_run_dir(run_dir: Path) -> IO:
    """Hold ``<run_dir>/fit.lock`` for as long as the returned file stays open (the process's life),
    or raise :class:`StartupError` naming the live process that holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    # Opened in place, not written through files.atomic_file: a lock belongs to one inode, which a
    # rename would replace. flock works on local filesystems and NFS (as a POSIX lock); on Lustre
    # it needs the `flock` mount option.
    handle = open(run_dir / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 - open for the run's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StartupError(f"--run_dir {run_dir} is in use by a live run ({holder} holds {run_dir / LOCK}); wait for it to end, "
                           "or choose another --run_dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"fit, pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return handle

"""A run directory and what it holds: where a checkpoint's run is, where a verb writes beside it,
and which dataset the run trained on, found one way for fit, probe, export, ablate and transfer.

    <run>/config.yaml             the fit's whole config (data.data_dir among it)
    <run>/hparams.yaml            the model's hyperparameters (Lightning's CSV logger)
    <run>/checkpoints/last.ckpt   and best-*.ckpt; DeepSpeed writes directories of the same names
    <run>/hpc_ckpt_<n>.ckpt       Lightning's save on a SLURM requeue
    <run>/probe/, transfer/ ...   what the verbs write about the run
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from lightning_kg.paths import find_path

MANIFEST = "manifest.json"


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run directory a checkpoint belongs to (``<run>/checkpoints/x.ckpt``, ``<run>/hpc_ckpt_n.ckpt``), else None."""
    checkpoint = Path(checkpoint)
    if checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent
    return checkpoint.parent if checkpoint.name.startswith("hpc_ckpt_") else None


def output_dir(ckpt_path: str | Path, name: str) -> Path:
    """``<run>/<name>`` for a checkpoint of a run directory, else ``<name>`` beside the checkpoint."""
    ckpt = Path(ckpt_path)
    return (run_dir_of(ckpt) or ckpt.parent) / name


def saved_data_dir(checkpoint: Mapping) -> str | None:
    """The ``data_dir`` a checkpoint dict records (its DataModule's hyperparameters), as it was written."""
    return (checkpoint.get("datamodule_hyper_parameters") or {}).get("data_dir")


def config_data_dir(run_dir: Path) -> str | None:
    """The ``data.data_dir`` of a run's ``config.yaml``, as it was written."""
    config = yaml.safe_load((Path(run_dir) / "config.yaml").read_text(encoding="utf-8")) or {}
    return (config.get("data") or {}).get("data_dir")


def run_dataset(given: str | Path | None, saved: str | None, source: str | Path) -> Path:
    """The prepared dataset to read: ``given`` (a ``--data_dir``), else ``saved``, the one the run recorded.
    A relative saved path was relative to where training ran: the working directory, else the
    repository (``shards/demo``, the demo's), as ``paths.find_path`` resolves it. ``source`` names
    the checkpoint or run in the errors."""
    if given:
        data_dir = Path(given)
    elif saved:
        data_dir = find_path(saved)
    else:
        raise ValueError(f"{source} does not say which dataset it was trained on; pass --data_dir")
    if not (data_dir / MANIFEST).is_file():
        raise FileNotFoundError(f"data_dir: {data_dir / MANIFEST} not found; pass --data_dir with the dataset "
                                f"{source} was trained on")
    return data_dir

"""Reading what a run saved, in any of its forms, finding the newest complete checkpoint, and
rebuilding the model a checkpoint describes.

The forms: a Lightning checkpoint (``.ckpt``); a sharded DeepSpeed checkpoint directory
(consolidated first with DeepSpeed's converter, through Lightning's wrapper, which keeps the
hyperparameters); DeepSpeed's own ``zero_to_fp32`` output (a bare state dict, whose
hyperparameters come from the run's ``hparams.yaml``). Every checkpoint read here passes through
``formats.upgrade``. Resuming picks by content, not by file times: the checkpoint that loads and has
the highest ``global_step`` (a DeepSpeed directory's time does not change when its files are rewritten).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
import yaml

from lightning_kg.model.config import EncoderConfig, check_encoder_overrides
from lightning_kg.model.pretraining import KnowledgePretrainingModel
from lightning_kg.runs.formats import objective_settings_of, upgrade

LAST = "last.ckpt"
WEIGHT_FILES = ("pytorch_model*.bin", "model*.safetensors")


# ------------------------------------------------------------------ DeepSpeed's layout

def is_deepspeed_checkpoint(path: Path) -> bool:
    """A sharded DeepSpeed checkpoint directory: DeepSpeed's ``latest`` tag file or Lightning's ``checkpoint/`` in it."""
    return path.is_dir() and ((path / "latest").is_file() or (path / "checkpoint").is_dir())


def model_states(tag_dir: Path) -> list[Path]:
    """Rank 0's model-state file of a DeepSpeed checkpoint tag (ZeRO-3 prefixes it with its partition)."""
    return [p for name in ("mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_model_states.pt")
            if (p := tag_dir / name).is_file()]


# ------------------------------------------------------------------ reading

def _bare_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict saved on its own (``zero_to_fp32``: one file, or a directory of shards)."""
    from safetensors.torch import load_file

    files = [path] if path.is_file() else sorted(f for pattern in WEIGHT_FILES for f in path.glob(pattern))
    if not files:
        raise FileNotFoundError(f"{path}: no pytorch_model*.bin or model*.safetensors in it")
    state = {}
    for file in files:
        state.update(load_file(file) if file.suffix == ".safetensors" else torch.load(file, map_location="cpu", weights_only=True))
    # Lightning before 2.1 wrapped the module for DeepSpeed; its names then start with "_forward_module.".
    return {k.removeprefix("_forward_module."): v for k, v in state.items()}


def _read(path: Path) -> dict:
    if is_deepspeed_checkpoint(path):
        from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

        with tempfile.TemporaryDirectory() as scratch:
            single = Path(scratch) / "consolidated.ckpt"
            convert_zero_checkpoint_to_fp32_state_dict(str(path), str(single))
            return torch.load(single, map_location="cpu", weights_only=False)
    if path.is_dir() or path.suffix == ".safetensors":
        return {"state_dict": _bare_state_dict(path)}
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        return checkpoint
    if isinstance(checkpoint, dict) and checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return {"state_dict": {k.removeprefix("_forward_module."): v for k, v in checkpoint.items()}}
    raise ValueError(f"{path}: not a lightning_kg checkpoint (expected a Lightning .ckpt with a state_dict, a DeepSpeed "
                     "checkpoint directory, or a state dict of tensors)")


def read_checkpoint(ckpt_path: str | Path) -> dict:
    """The checkpoint as a dict with ``state_dict`` (our module's names, ``model.encoder...``), and
    ``hyper_parameters`` unless it was a bare state dict, in today's format.

    - a Lightning ``.ckpt`` file: as saved;
    - a DeepSpeed checkpoint directory (``latest``, ``checkpoint/``): consolidated into fp32;
    - DeepSpeed's ``zero_to_fp32`` output, a file or a directory of ``pytorch_model*.bin`` /
      ``model*.safetensors`` holding tensors only.
    """
    path = Path(ckpt_path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return upgrade(_read(path))


def checkpoint_step(path: Path) -> int | None:
    """``global_step`` of a complete checkpoint (a Lightning file or a DeepSpeed directory), None
    when it does not load (cut short, or not a checkpoint). Memory-mapped: reads the index, not the
    weights, so a multi-GB file costs milliseconds."""
    path = Path(path)
    try:
        if path.is_dir():
            tag = (path / "latest").read_text().strip()  # DeepSpeed writes it after the shards
            state = torch.load(model_states(path / tag)[0], map_location="cpu", mmap=True, weights_only=False)
        else:
            state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        return int(state["global_step"])
    except Exception:  # noqa: BLE001 - any failure to load means "not a complete checkpoint"
        return None


def parameter_shapes(path: Path) -> tuple[dict[str, tuple[int, ...]], Mapping | None]:
    """(today's parameter name -> shape, the hyperparameters) of a Lightning checkpoint file,
    memory-mapped: reads no weights."""
    checkpoint = upgrade(torch.load(path, map_location="cpu", mmap=True, weights_only=True))
    return ({name: tuple(tensor.shape) for name, tensor in checkpoint.get("state_dict", {}).items()},
            checkpoint.get("hyper_parameters"))


# ------------------------------------------------------------------ finding

def resume_candidates(run_dir: Path) -> list[Path]:
    """Checkpoints a run directory may hold: ``checkpoints/*.ckpt`` (last, best), ``hpc_ckpt_*.ckpt``
    (Lightning's SLURM save) and a ``*.ckpt.old`` left by a swap cut short. ``*.tmp`` never: those
    are writes that did not finish."""
    run_dir = Path(run_dir)
    return [*sorted((run_dir / "checkpoints").glob("*.ckpt")), *sorted((run_dir / "checkpoints").glob("*.ckpt.old")),
            *sorted(run_dir.glob("hpc_ckpt_*.ckpt"))]


def _saved_time(path: Path) -> float:
    """When a checkpoint's content was written (for a DeepSpeed directory, its model-state file)."""
    states = [state for tag in path.iterdir() if tag.is_dir() for state in model_states(tag)] if path.is_dir() else [path]
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


# ------------------------------------------------------------------ the model a checkpoint describes

def _find_hparams(path: Path) -> Path | None:
    """``hparams.yaml`` of the run a bare state dict came from: beside it or up to three folders up."""
    for folder in [path.parent if path.is_file() else path, *list(path.parents)[:3]]:
        if (folder / "hparams.yaml").is_file():
            return folder / "hparams.yaml"
    return None


def encoder_config(hparams: Mapping) -> EncoderConfig:
    """The encoder config a run's hyperparameters (``model.*``) describe: the preset and its overrides."""
    return EncoderConfig.preset(hparams.get("size", "tiny"), vocab_size=hparams["vocab_size"],
                                entity_vocab_size=hparams["entity_vocab_size"], pad_token_id=hparams.get("pad_token_id", 1),
                                **check_encoder_overrides(hparams.get("encoder")))


def model_from_hparams(hparams: Mapping) -> KnowledgePretrainingModel:
    """The model a run's hyperparameters (``model.*``, as ``KnowledgePretraining`` saves them) describe,
    freshly initialised: the one place those settings become an encoder config and objectives."""
    if hparams.get("vocab_size", 0) <= 0 or hparams.get("entity_vocab_size", 0) <= 0:
        raise ValueError("model.vocab_size and model.entity_vocab_size must be set (the CLI links them from --data)")
    return KnowledgePretrainingModel(encoder_config(hparams), objective_settings_of(hparams))


def model_weights(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    """The ``KnowledgePretrainingModel``'s tensors of a checkpoint's state dict (``model.`` stripped)."""
    return {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}


def load_checkpoint_model(ckpt_path: str | Path, hparams_file: str | Path | None = None):
    """(the ``KnowledgePretrainingModel`` on the CPU in eval mode, the checkpoint dict) of any form
    ``read_checkpoint`` reads. A bare state dict needs the run's ``hparams.yaml`` (found beside it
    or above it, else ``hparams_file``); it then also gives the checkpoint dict its ``data_dir``."""
    checkpoint = read_checkpoint(ckpt_path)
    hparams = checkpoint.get("hyper_parameters")
    if hparams is None:
        found = Path(hparams_file) if hparams_file else _find_hparams(Path(ckpt_path))
        if found is None or not found.is_file():
            raise FileNotFoundError(f"{ckpt_path} holds weights only; pass --hparams_file <run>/hparams.yaml (written by "
                                    "the run's CSV logger) so the model can be rebuilt")
        hparams = yaml.safe_load(found.read_text(encoding="utf-8"))
        checkpoint["datamodule_hyper_parameters"] = {"data_dir": hparams.get("data_dir")}
    model = model_from_hparams(hparams)  # init_from is not read: the weights come from the checkpoint
    missing, unexpected = model.load_state_dict(model_weights(checkpoint), strict=False)
    if missing or unexpected:
        raise ValueError(f"{ckpt_path}: does not match the model its hyperparameters describe "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model.eval(), checkpoint

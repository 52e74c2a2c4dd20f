"""Reading what a run saved, in any of its three forms, and rebuilding the model it describes.

The forms: a Lightning checkpoint (``.ckpt``); a sharded DeepSpeed checkpoint directory
(consolidated first with DeepSpeed's converter, through Lightning's wrapper, which keeps the
hyperparameters); DeepSpeed's own ``zero_to_fp32`` output (a bare state dict, whose
hyperparameters come from the run's ``hparams.yaml``). Training (``init_from``), ``export`` and the
probe all read checkpoints through this module, which sits below all three.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
import yaml

from lightning_kg.model.config import EncoderConfig, check_encoder_overrides
from lightning_kg.model.old_names import objective_settings_of
from lightning_kg.model.pretraining import KnowledgePretrainingModel

WEIGHT_FILES = ("pytorch_model*.bin", "model*.safetensors")


def is_deepspeed_checkpoint(path: Path) -> bool:
    """A sharded DeepSpeed checkpoint directory: DeepSpeed's ``latest`` tag file or Lightning's ``checkpoint/`` in it."""
    return path.is_dir() and ((path / "latest").is_file() or (path / "checkpoint").is_dir())


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


def read_checkpoint(ckpt_path: str | Path) -> dict:
    """The checkpoint as a dict with ``state_dict`` (our module's names, ``model.encoder...``), and
    ``hyper_parameters`` unless it was a bare state dict.

    - a Lightning ``.ckpt`` file: as saved;
    - a DeepSpeed checkpoint directory (``latest``, ``checkpoint/``): consolidated into fp32;
    - DeepSpeed's ``zero_to_fp32`` output, a file or a directory of ``pytorch_model*.bin`` /
      ``model*.safetensors`` holding tensors only.
    """
    path = Path(ckpt_path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if is_deepspeed_checkpoint(path):
        from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

        with tempfile.TemporaryDirectory() as scratch:
            single = Path(scratch) / "consolidated.ckpt"
            convert_zero_checkpoint_to_fp32_state_dict(str(path), str(single))
            return torch.load(single, map_location="cpu", weights_only=False)
    if path.is_dir():
        return {"state_dict": _bare_state_dict(path)}
    if path.suffix == ".safetensors":
        return {"state_dict": _bare_state_dict(path)}
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        return checkpoint
    if isinstance(checkpoint, dict) and checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return {"state_dict": {k.removeprefix("_forward_module."): v for k, v in checkpoint.items()}}
    raise ValueError(f"{path}: not a lightning_kg checkpoint (expected a Lightning .ckpt with a state_dict, a DeepSpeed "
                     "checkpoint directory, or a state dict of tensors)")


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
    freshly initialised: the one place those settings become an encoder config and objectives. A run
    from before ``objective_settings`` existed holds them as flat keys (``mlm_weight``), read as well."""
    if hparams.get("vocab_size", 0) <= 0 or hparams.get("entity_vocab_size", 0) <= 0:
        raise ValueError("model.vocab_size and model.entity_vocab_size must be set (the CLI links them from --data)")
    config = encoder_config(hparams)
    return KnowledgePretrainingModel(config, objective_settings_of(hparams))


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
    weights = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(f"{ckpt_path}: does not match the model its hyperparameters describe "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    return model.eval(), checkpoint

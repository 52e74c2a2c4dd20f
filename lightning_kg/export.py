"""``export``: a training checkpoint -> a Hugging Face directory (``LukeForMaskedLM``).

Reads the three forms a run leaves (``read_checkpoint``): a Lightning checkpoint (``.ckpt``), a
sharded DeepSpeed checkpoint directory (consolidated first with DeepSpeed's converter, through
Lightning's wrapper, which keeps the hyperparameters), or DeepSpeed's own ``zero_to_fp32`` output (a
bare state dict, whose hyperparameters come from the run's ``hparams.yaml``). It rebuilds the model
and writes config, safetensors weights, the tokenizer and the entity vocabulary of the dataset it
was trained on.
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path

import torch
import yaml

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


def load_checkpoint_model(ckpt_path: str | Path, hparams_file: str | Path | None = None):
    """(the ``KnowledgePretraining`` module on the CPU in eval mode, the checkpoint dict) of any form
    ``read_checkpoint`` reads. A bare state dict needs the run's ``hparams.yaml`` (found beside it
    or above it, else ``hparams_file``); it then also gives the checkpoint dict its ``data_dir``."""
    from lightning_kg.train.module import KnowledgePretraining

    checkpoint = read_checkpoint(ckpt_path)
    hparams = checkpoint.get("hyper_parameters")
    if hparams is None:
        found = Path(hparams_file) if hparams_file else _find_hparams(Path(ckpt_path))
        if found is None or not found.is_file():
            raise FileNotFoundError(f"{ckpt_path} holds weights only; pass --hparams_file <run>/hparams.yaml (written by "
                                    "the run's CSV logger) so the model can be rebuilt")
        hparams = yaml.safe_load(found.read_text(encoding="utf-8"))
        checkpoint["datamodule_hyper_parameters"] = {"data_dir": hparams.get("data_dir")}
    accepted = inspect.signature(KnowledgePretraining.__init__).parameters
    # init_from=None: the weights come from the checkpoint, the starting point need not exist here.
    module = KnowledgePretraining(**{k: v for k, v in hparams.items() if k in accepted and k != "init_from"})
    weights = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    missing, unexpected = module.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(f"{ckpt_path}: does not match the model its hyperparameters describe "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    return module.eval(), checkpoint


def export(ckpt_path: str, out: str, data_dir: str | None = None, hparams_file: str | None = None) -> Path:
    """Write the Hugging Face directory; the dataset (tokenizer, entity vocabulary) defaults to the one
    the checkpoint was trained on."""
    from lightning_kg.data.entity_vocab import EntityVocab
    from lightning_kg.model.hf_convert import export_hf

    module, checkpoint = load_checkpoint_model(ckpt_path, hparams_file)
    data_dir = data_dir or checkpoint.get("datamodule_hyper_parameters", {}).get("data_dir")
    tokenizer_dir, entity_vocab = None, None
    if data_dir:
        data = Path(data_dir)
        if not (data / "entity_vocab.jsonl").exists():
            raise FileNotFoundError(f"{data}/entity_vocab.jsonl not found: pass --data_dir pointing at the prepared dataset")
        tokenizer_dir = str(data / "tokenizer")
        vocab = EntityVocab.load(data / "entity_vocab.jsonl")
        entity_vocab = [{"id": i, "entity": e, "titles": t} for i, (e, t) in enumerate(zip(vocab.entities, vocab.titles))]
    export_hf(module.model, out, tokenizer_dir=tokenizer_dir, entity_vocab=entity_vocab)
    return Path(out)


def main(args: list[str]) -> None:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="python -m lightning_kg export", parser_mode="omegaconf",
                            description="Write a Hugging Face directory that LukeForMaskedLM / AutoModel load.")
    parser.add_argument("--config", action="config", help="YAML config file(s)")
    parser.add_argument("--ckpt_path", type=str, required=True,
                        help="Lightning .ckpt, DeepSpeed checkpoint directory, or DeepSpeed's zero_to_fp32 output")
    parser.add_argument("--out", type=str, required=True, help="Directory to write")
    parser.add_argument("--data_dir", type=str | None, default=None,
                        help="Prepared dataset whose tokenizer and entity vocabulary to ship (default: the checkpoint's)")
    parser.add_argument("--hparams_file", type=str | None, default=None,
                        help="The run's hparams.yaml, for a checkpoint of weights only (default: found beside or above it)")
    config = parser.parse_args(args)
    path = export(config.ckpt_path, config.out, config.data_dir, config.hparams_file)
    print(f"exported {config.ckpt_path} -> {path} (load with transformers.LukeForMaskedLM.from_pretrained({str(path)!r}))")

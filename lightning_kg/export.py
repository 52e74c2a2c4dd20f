"""``export``: a training checkpoint -> a Hugging Face directory (``LukeForMaskedLM``).

Takes a Lightning checkpoint (``.ckpt``) or a sharded DeepSpeed checkpoint directory (consolidated
first with DeepSpeed's converter, as ``convert_zero_checkpoint_to_fp32_state_dict`` does), rebuilds
the model from the hyperparameters saved in it, and writes config, safetensors weights, the
tokenizer and the entity vocabulary of the dataset it was trained on.
"""

from __future__ import annotations

from pathlib import Path

import torch


def load_checkpoint_model(ckpt_path: str | Path):
    """The ``KnowledgePretraining`` module stored in a checkpoint, on the CPU, in eval mode."""
    from lightning_kg.train.module import KnowledgePretraining

    ckpt_path = Path(ckpt_path)
    if not ckpt_path.exists():
        raise FileNotFoundError(f"checkpoint not found: {ckpt_path}")
    if ckpt_path.is_dir():
        return _load_sharded(ckpt_path)
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    if "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise ValueError(f"{ckpt_path}: not a lightning_kg checkpoint (no state_dict / hyper_parameters)")
    # init_from=None: the weights come from the checkpoint, the starting point need not exist here.
    module = KnowledgePretraining.load_from_checkpoint(ckpt_path, map_location="cpu", init_from=None)
    return module.eval(), checkpoint


def _load_sharded(directory: Path):
    """A DeepSpeed checkpoint directory (one shard per rank), consolidated with DeepSpeed's own
    converter (through Lightning's wrapper, which keeps the hyperparameters) into a temporary file."""
    import tempfile

    from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    if not (directory / "latest").is_file():
        raise ValueError(f"{directory} is a directory but not a DeepSpeed checkpoint (no 'latest' file in it)")
    with tempfile.TemporaryDirectory() as scratch:
        single = Path(scratch) / "consolidated.ckpt"
        convert_zero_checkpoint_to_fp32_state_dict(str(directory), str(single))
        return load_checkpoint_model(single)


def export(ckpt_path: str, out: str, data_dir: str | None = None) -> Path:
    """Write the Hugging Face directory; the dataset (tokenizer, entity vocabulary) defaults to the one
    the checkpoint was trained on."""
    from lightning_kg.data.entity_vocab import EntityVocab
    from lightning_kg.model.hf_convert import export_hf

    module, checkpoint = load_checkpoint_model(ckpt_path)
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
    parser.add_argument("--ckpt_path", type=str, required=True, help="Lightning .ckpt or consolidated DeepSpeed checkpoint")
    parser.add_argument("--out", type=str, required=True, help="Directory to write")
    parser.add_argument("--data_dir", type=str | None, default=None,
                        help="Prepared dataset whose tokenizer and entity vocabulary to ship (default: the checkpoint's)")
    config = parser.parse_args(args)
    path = export(config.ckpt_path, config.out, config.data_dir)
    print(f"exported {config.ckpt_path} -> {path} (load with transformers.LukeForMaskedLM.from_pretrained({str(path)!r}))")

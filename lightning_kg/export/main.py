"""``export``: a training checkpoint -> a Hugging Face directory (``LukeForMaskedLM``).

Reads the three forms a run leaves (``lightning_kg.runs.checkpoints``), rebuilds the model and
writes config, safetensors weights, the tokenizer and the entity vocabulary of the dataset it was
trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lightning_kg.dataset.entity_vocab import EntityVocab
from lightning_kg.model.hf_convert import export_hf
from lightning_kg.runs.checkpoints import load_checkpoint_model
from lightning_kg.runs.directories import run_dataset, saved_data_dir
from lightning_kg.verbs import parse_settings


def export(ckpt_path: str, out: str, data_dir: str | None = None, hparams_file: str | None = None) -> Path:
    """Write the Hugging Face directory; the dataset (tokenizer, entity vocabulary) defaults to the one
    the checkpoint was trained on."""
    model, checkpoint = load_checkpoint_model(ckpt_path, hparams_file)
    tokenizer_dir, entity_vocab = None, None
    if data_dir or saved_data_dir(checkpoint):
        data = run_dataset(data_dir, saved_data_dir(checkpoint), ckpt_path)
        tokenizer_dir = str(data / "tokenizer")
        vocab = EntityVocab.load(data / "entity_vocab.jsonl")
        entity_vocab = [{"id": i, "entity": e, "titles": t} for i, (e, t) in enumerate(zip(vocab.entities, vocab.titles))]
    export_hf(model, out, tokenizer_dir=tokenizer_dir, entity_vocab=entity_vocab)
    return Path(out)


@dataclass
class ExportConfig:
    """Inputs and output of ``python -m lightning_kg export``."""

    ckpt_path: str
    """Lightning .ckpt, DeepSpeed checkpoint directory, or DeepSpeed's zero_to_fp32 output."""
    out: str
    """Directory to write."""
    data_dir: str | None = None
    """Prepared dataset whose tokenizer and entity vocabulary to ship (default: the checkpoint's)."""
    hparams_file: str | None = None
    """The run's hparams.yaml, for a checkpoint of weights only (default: found beside or above it)."""


def main(args: list[str]) -> None:
    config = parse_settings(ExportConfig, args, "export", "Write a Hugging Face directory that LukeForMaskedLM / AutoModel load.")
    path = export(config.ckpt_path, config.out, config.data_dir, config.hparams_file)
    print(f"exported {config.ckpt_path} -> {path} (load with transformers.LukeForMaskedLM.from_pretrained({str(path)!r}))")

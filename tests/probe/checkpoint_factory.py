"""A checkpoint of an untrained tiny model for the demo data, laid out as a training run saves it:
what the probe verb reads, without a fit first."""

from pathlib import Path

import lightning
import torch

from lightning_kg.dataset.entity_vocab import EntityVocab
from lightning_kg.dataset.tokenizer import load_tokenizer
from lightning_kg.model.config import ObjectiveSettings
from lightning_kg.train.module import KnowledgePretraining
from tests.demo import DEMO


def write_checkpoint(path: Path, data_dir: str = DEMO, **weights) -> Path:
    """Save the model (objective ``weights`` as ``ObjectiveSettings`` takes them) at ``path``,
    naming ``data_dir`` as the dataset it was trained on; ``path``'s folder must not exist yet."""
    torch.manual_seed(0)
    entities = len(EntityVocab.load(Path(DEMO) / "entity_vocab.jsonl"))
    module = KnowledgePretraining(vocab_size=len(load_tokenizer(Path(DEMO) / "tokenizer")), entity_vocab_size=entities,
                                  objective_settings=ObjectiveSettings(**weights))
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": lightning.__version__, "datamodule_hyper_parameters": {"data_dir": data_dir}}, path)
    return path

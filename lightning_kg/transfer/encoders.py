"""The encoders fine-tuning starts from, behind one face: word states and entity states.

- a lightning_kg checkpoint (Lightning ``.ckpt``, DeepSpeed directory, ``zero_to_fp32`` output),
  read by ``runs.checkpoints``; its tokenizer is its dataset's;
- a local Hugging Face directory: LUKE / mLUKE (``LukeModel``; our ``export`` writes one) with
  entity heads, or any other encoder ``AutoModel`` loads (XLM-R), word heads only; its tokenizer is
  the directory's. Nothing is downloaded;
- ``random_init``: our encoder of a checkpoint's size, freshly initialised (the baseline).

The ``[MASK2]`` entity of relation classification: a vocabulary without its own row (ours has only
[PAD], [UNK], [MASK]) gets one, initialised from ``[MASK]``'s, as LUKE's fine-tuning does.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lightning_kg.dataset.entity_vocab import MASK_ID
from lightning_kg.dataset.tokenizer import load_tokenizer
from lightning_kg.model.encoder import KnowledgeEncoder
from lightning_kg.paths import find_path
from lightning_kg.runs.checkpoints import load_checkpoint_model
from lightning_kg.runs.directories import saved_data_dir

log = logging.getLogger(__name__)


class TransferEncoder(nn.Module):
    """``forward(input_ids, attention_mask, entity_ids=None, entity_position_ids=None,
    entity_attention_mask=None) -> (word states (B, S, H), entity states (B, E, H) or None)``."""

    hidden_size: int
    has_entities: bool
    mask_id: int | None = None
    """Row of the ``[MASK]`` entity (None: a word-only encoder)."""
    mask2_id: int | None = None
    """Row of the ``[MASK2]`` entity once :meth:`add_mask2` gave it one."""

    def entity_table(self) -> nn.Embedding:
        raise NotImplementedError

    def set_entity_table(self, table: nn.Embedding) -> None:
        raise NotImplementedError

    def add_mask2(self) -> int:
        """A ``[MASK2]`` row, a copy of ``[MASK]``'s, appended to the entity table (LUKE's fine-tuning
        for relations); returns its id. Logs one warning saying so."""
        if self.mask2_id is not None:
            return self.mask2_id
        old = self.entity_table()
        table = nn.Embedding(old.num_embeddings + 1, old.embedding_dim, padding_idx=old.padding_idx).to(old.weight.device)
        with torch.no_grad():
            table.weight[:-1] = old.weight
            table.weight[-1] = old.weight[self.mask_id]
        self.set_entity_table(table)
        self.mask2_id = old.num_embeddings
        log.warning("the entity vocabulary has no [MASK2]: added row %d, initialised from [MASK]'s (row %d), "
                    "for the relation head's tail entity, as LUKE's fine-tuning does", self.mask2_id, self.mask_id)
        return self.mask2_id


class OurEncoder(TransferEncoder):
    """This project's ``KnowledgeEncoder``."""

    def __init__(self, encoder: KnowledgeEncoder):
        super().__init__()
        self.encoder = encoder
        self.hidden_size, self.has_entities, self.mask_id = encoder.config.hidden_size, True, MASK_ID

    def entity_table(self) -> nn.Embedding:
        return self.encoder.entity_embeddings.table

    def set_entity_table(self, table: nn.Embedding) -> None:
        self.encoder.entity_embeddings.table = table

    def forward(self, input_ids, attention_mask, entity_ids=None, entity_position_ids=None, entity_attention_mask=None):
        out = self.encoder(input_ids, attention_mask, entity_ids, entity_position_ids, entity_attention_mask)
        return out.word_hidden, out.entity_hidden


class HfLukeEncoder(TransferEncoder):
    """transformers' ``LukeModel`` (LUKE, mLUKE, our export)."""

    def __init__(self, model, mask_id: int, mask2_id: int | None):
        super().__init__()
        self.model = model
        self.hidden_size, self.has_entities = model.config.hidden_size, True
        self.mask_id, self.mask2_id = mask_id, mask2_id

    def entity_table(self) -> nn.Embedding:
        return self.model.entity_embeddings.entity_embeddings

    def set_entity_table(self, table: nn.Embedding) -> None:
        self.model.entity_embeddings.entity_embeddings = table
        self.model.config.entity_vocab_size = table.num_embeddings

    def forward(self, input_ids, attention_mask, entity_ids=None, entity_position_ids=None, entity_attention_mask=None):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, entity_ids=entity_ids,
                         entity_position_ids=entity_position_ids, entity_attention_mask=entity_attention_mask)
        return out.last_hidden_state, out.entity_last_hidden_state if entity_ids is not None else None


class HfWordEncoder(TransferEncoder):
    """Any word-only encoder ``AutoModel`` loads (XLM-R, BERT)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.hidden_size, self.has_entities = model.config.hidden_size, False

    def forward(self, input_ids, attention_mask, entity_ids=None, entity_position_ids=None, entity_attention_mask=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state, None


@dataclass
class LoadedEncoder:
    encoder: TransferEncoder
    tokenizer: object
    data_dir: Path | None
    """The dataset a lightning_kg checkpoint was trained on (its ``tasks/`` are the default task data); None for a Hugging Face directory."""
    name: str
    """What it is, for reports: ``lightning_kg checkpoint ...``, ``LukeModel ...``, ``random init ...``."""


def is_hf_directory(path: Path) -> bool:
    """A Hugging Face model directory (``config.json`` with a ``model_type``), not a run's checkpoint."""
    if not (path.is_dir() and (path / "config.json").is_file()):
        return False
    return "model_type" in json.loads((path / "config.json").read_text(encoding="utf-8"))


def load_encoder(ckpt_path: str, random_init: bool = False, hparams_file: str | None = None,
                 tokenizer_dir: str | None = None) -> LoadedEncoder:
    """The encoder and tokenizer ``ckpt_path`` names (see the module docstring); ``tokenizer_dir``
    replaces the default tokenizer. ``random_init``: a lightning_kg checkpoint's encoder size,
    untrained (its weights are not used)."""
    path = Path(ckpt_path)
    if not path.exists():
        raise FileNotFoundError(f"ckpt_path: {path} not found; expected a lightning_kg checkpoint, an export "
                                "directory or a local Hugging Face model directory")
    if is_hf_directory(path):
        if random_init:
            raise ValueError(f"random_init: {path} is a Hugging Face directory; the random baseline is our encoder "
                             "of a lightning_kg checkpoint's size (pass that checkpoint)")
        encoder, name = _hf_encoder(path)
        tokenizer = load_tokenizer(tokenizer_dir or path)
        return LoadedEncoder(encoder, tokenizer, None, f"{name} {path}")
    # The one place transfer reads our checkpoints, whatever their form.
    model, checkpoint = load_checkpoint_model(ckpt_path, hparams_file)
    saved = saved_data_dir(checkpoint)
    data_dir = find_path(saved) if saved else None
    encoder = model.encoder
    if random_init:  # drawn from torch's generator: the caller seeds it (run_transfer, per seed)
        encoder = KnowledgeEncoder(encoder.config)
    if tokenizer_dir is None and data_dir is None:
        raise ValueError(f"{ckpt_path} does not say which dataset it was trained on; pass --tokenizer_dir and --task_dir")
    tokenizer = load_tokenizer(tokenizer_dir or data_dir / "tokenizer")
    if len(tokenizer) != encoder.config.vocab_size:
        raise ValueError(f"the tokenizer has {len(tokenizer)} word pieces, {ckpt_path}'s encoder {encoder.config.vocab_size}: "
                         "not the tokenizer it was trained with")
    name = f"random init of {ckpt_path}'s size" if random_init else f"lightning_kg checkpoint {ckpt_path}"
    return LoadedEncoder(OurEncoder(encoder), tokenizer, data_dir, name)


def _hf_encoder(path: Path) -> tuple[TransferEncoder, str]:
    from transformers import AutoModel, LukeModel

    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if config["model_type"] != "luke":
        return HfWordEncoder(AutoModel.from_pretrained(path, local_files_only=True)), f"AutoModel ({config['model_type']})"
    vocab_file = path / "entity_vocab.json"
    if not vocab_file.is_file():
        raise FileNotFoundError(f"{vocab_file} not found: a LUKE directory's entity vocabulary says which row is [MASK]")
    vocab = json.loads(vocab_file.read_text(encoding="utf-8"))
    if "[MASK]" not in vocab:
        raise ValueError(f"{vocab_file} has no [MASK] entity; the entity heads put one over each span")
    mask2 = vocab.get("[MASK2]")
    # Our export points [MASK2] at [MASK]'s row; a row of its own is added then (add_mask2).
    model = LukeModel.from_pretrained(path, local_files_only=True, add_pooling_layer=False)
    return HfLukeEncoder(model, vocab["[MASK]"], mask2 if mask2 != vocab["[MASK]"] else None), "LukeModel"


def check_head(loaded: LoadedEncoder, task: str, head: str) -> None:
    """An entity head needs entity embeddings: a clear error for a word-only encoder."""
    if head == "entity" and task != "pair" and not loaded.encoder.has_entities:
        raise ValueError(f"--head entity: {loaded.name} is a word-only encoder (no entity embeddings, so no [MASK] "
                         "entity to put over a span); use --head word, or a LUKE/mLUKE or lightning_kg encoder")

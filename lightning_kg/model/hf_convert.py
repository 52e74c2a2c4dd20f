"""Hugging Face in and out: XLM-R / LUKE / mLUKE weights into our model, ours out as ``LukeForMaskedLM``.

One table of name rules serves both directions. Only local directories are read: nothing is
downloaded, and a missing path is an error that names it.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from lightning_kg.dataset.entity_vocab import RESERVED
from lightning_kg.dataset.files import write_json
from lightning_kg.model.encoder import KnowledgeEncoder
from lightning_kg.model.pretraining import KnowledgePretrainingModel

# (our name, Hugging Face LUKE name without the "luke." prefix of LukeForMaskedLM); {n} is a layer number.
RULES = [
    ("encoder.embeddings.word.", "embeddings.word_embeddings."),
    ("encoder.embeddings.position.", "embeddings.position_embeddings."),
    ("encoder.embeddings.token_type.", "embeddings.token_type_embeddings."),
    ("encoder.embeddings.norm.", "embeddings.LayerNorm."),
    ("encoder.entity_embeddings.table.", "entity_embeddings.entity_embeddings."),
    ("encoder.entity_embeddings.dense.", "entity_embeddings.entity_embedding_dense."),
    ("encoder.entity_embeddings.position.", "entity_embeddings.position_embeddings."),
    ("encoder.entity_embeddings.token_type.", "entity_embeddings.token_type_embeddings."),
    ("encoder.entity_embeddings.norm.", "entity_embeddings.LayerNorm."),
    *((f"encoder.layers.{{n}}.{q}.", f"encoder.layer.{{n}}.attention.self.{q}.")
      for q in ("query", "key", "value", "w2e_query", "e2w_query", "e2e_query")),
    ("encoder.layers.{n}.attention_out.", "encoder.layer.{n}.attention.output.dense."),
    ("encoder.layers.{n}.attention_norm.", "encoder.layer.{n}.attention.output.LayerNorm."),
    ("encoder.layers.{n}.ffn_in.", "encoder.layer.{n}.intermediate.dense."),
    ("encoder.layers.{n}.ffn_out.", "encoder.layer.{n}.output.dense."),
    ("encoder.layers.{n}.ffn_norm.", "encoder.layer.{n}.output.LayerNorm."),
    ("mlm_head.dense.", "@lm_head.dense."),
    ("mlm_head.norm.", "@lm_head.layer_norm."),
    ("mlm_head.bias", "@lm_head.bias"),
    ("mlm_head.bias", "@lm_head.decoder.bias"),  # the same tensor, saved under either name (import only)
    ("entity_head.dense.", "@entity_predictions.transform.dense."),
    ("entity_head.norm.", "@entity_predictions.transform.LayerNorm."),
    ("entity_head.bias", "@entity_predictions.bias"),
]
# "@" marks heads, which sit beside the base model rather than under its prefix.
BASE_PREFIXES = ("luke.", "roberta.")


def _compile(template: str) -> re.Pattern:
    return re.compile("^" + re.escape(template).replace(r"\{n\}", r"(?P<n>\d+)"))


_FROM_HF = [(_compile(hf.lstrip("@")), ours, hf.startswith("@")) for ours, hf in RULES]
_TO_HF = [(_compile(ours), hf.lstrip("@"), hf.startswith("@")) for ours, hf in RULES]


def hf_to_ours(name: str) -> str | None:
    """``luke.encoder.layer.3.output.dense.weight`` -> ``encoder.layers.3.ffn_out.weight``; None if unmapped.

    Names come prefixed (``luke.``/``roberta.``: the base model inside a ``...ForMaskedLM``) or bare
    (``LukeModel``/``XLMRobertaModel`` saved on their own). A prefixed name must be a base-model
    tensor; a bare one may be either, as base and head names never overlap.
    """
    prefixed = name.startswith(BASE_PREFIXES)
    base = name
    for prefix in BASE_PREFIXES:
        base = base.removeprefix(prefix)
    for pattern, ours, head_rule in _FROM_HF:
        match = pattern.match(base)
        if match and not (prefixed and head_rule):
            return ours.replace("{n}", match.groupdict().get("n", "")) + base[match.end():]
    return None


def ours_to_hf(name: str, prefix: str = "luke.") -> str | None:
    for pattern, hf, head_rule in _TO_HF:
        match = pattern.match(name)
        if match:
            return ("" if head_rule else prefix) + hf.replace("{n}", match.groupdict().get("n", "")) + name[match.end():]
    return None


@dataclass
class LoadReport:
    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # ours, not in the checkpoint: kept as initialised
    unused: list[str] = field(default_factory=list)  # the checkpoint's, not used
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        def names(items: list[str]) -> str:
            return ", ".join(items[:12]) + (f", ... ({len(items)} in all)" if len(items) > 12 else "") if items else "none"

        return (f"loaded {len(self.loaded)} tensors from {self.source}\n"
                f"  not in the checkpoint (initialised here): {names(self.missing)}\n"
                f"  in the checkpoint, unused: {names(self.unused)}" + "".join(f"\n  note: {n}" for n in self.notes))


def read_hf_state_dict(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config.json, tensors) of a local Hugging Face model directory (safetensors or .bin, sharded too)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a local model directory (nothing is downloaded; expected config.json "
                                "and model.safetensors or pytorch_model.bin)")
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path}/config.json not found")
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    files = sorted(path.glob("model*.safetensors")) or sorted(path.glob("pytorch_model*.bin"))
    if not files:
        raise FileNotFoundError(f"{path}: no model.safetensors or pytorch_model.bin")
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        tensors.update(load_file(file) if file.suffix == ".safetensors" else torch.load(file, map_location="cpu", weights_only=True))
    return config, tensors


def _check_sizes(config: dict, model: KnowledgePretrainingModel, source: Path) -> None:
    ours = model.config
    pairs = {"hidden_size": ours.hidden_size, "num_hidden_layers": ours.num_layers, "num_attention_heads": ours.num_heads,
             "intermediate_size": ours.intermediate_size}
    wrong = {k: (config.get(k), v) for k, v in pairs.items() if config.get(k) is not None and config.get(k) != v}
    if wrong:
        details = ", ".join(f"{k}: checkpoint {a}, ours {b}" for k, (a, b) in wrong.items())
        raise ValueError(f"{source} does not fit this model size ({details}); choose --model.size to match it")




def entity_row_map(checkpoint_vocab: dict[str, int], entity_names: Sequence[tuple[str, dict[str, str]]]) -> dict[int, int]:
    """Our entity index -> the checkpoint's row, by name, through the checkpoint's ``entity_vocab.json``.

    That file maps names to rows: mLUKE's (``MLukeTokenizer``) has ``[PAD]``, ``[UNK]``, ``[MASK]``,
    ``[MASK2]`` and ``lang:Title`` for every language of an entity, all pointing at its row; LUKE's
    (``LukeTokenizer``) has bare English titles; ours (``export``) has our keys (Wikidata ids) and
    ``lang:Title``. An entity of ours matches by its key, then by ``lang:Title`` in each of its
    languages, then by its English title alone; the first match wins. ``[MASK2]`` has no row here.
    ``entity_names`` holds, for each of our indices, the entity's key and its titles by language.
    """
    rows = {}
    for index, (entity, titles) in enumerate(entity_names):
        names = [entity] if entity in RESERVED else [
            entity, *(f"{lang}:{title}" for lang, title in titles.items()), *([titles["en"]] if "en" in titles else [])]
        row = next((checkpoint_vocab[n] for n in names if n in checkpoint_vocab), None)
        if row is not None:
            rows[index] = row
    return rows


def _map_entity_rows(tensors: dict[str, torch.Tensor], state: dict[str, torch.Tensor], source: Path,
                     entity_names: Sequence[tuple[str, dict[str, str]]] | None, report: LoadReport) -> None:
    """Replace the checkpoint's entity table and prediction bias, in place in ``tensors``, by tensors
    of our vocabulary's size: matched rows from the checkpoint, the rest as initialised here."""
    vocab_file = source / "entity_vocab.json"
    names = [n for n in tensors if hf_to_ours(n) in ("encoder.entity_embeddings.table.weight", "entity_head.bias")
             and hf_to_ours(n) in state]  # no entity_head when mep_vocab is off
    if not names:
        return
    ours_size = state["encoder.entity_embeddings.table.weight"].shape[0]
    if not vocab_file.exists() or entity_names is None:
        theirs = tensors[names[0]].shape[0]
        if theirs != ours_size:
            missing = (f"{vocab_file} is missing" if not vocab_file.exists() else
                       "the dataset's entity vocabulary was not given (model.entity_vocab_path)")
            raise ValueError(f"{source}: an entity table of {theirs} rows, ours has {ours_size}, and {missing}: "
                             "rows can only be matched by name through both vocabularies")
        return
    rows = entity_row_map(json.loads(vocab_file.read_text(encoding="utf-8")), entity_names)
    if len(entity_names) != ours_size:
        raise ValueError(f"the entity vocabulary has {len(entity_names)} entries, the model's table {ours_size} rows")
    ours_index, their_index = torch.tensor(list(rows), dtype=torch.long), torch.tensor(list(rows.values()), dtype=torch.long)
    for name in names:
        target = state[hf_to_ours(name)].clone()
        target[ours_index] = tensors[name][their_index].to(target.dtype)
        tensors[name] = target
    report.notes.append(f"entity rows: {len(rows)} of our {ours_size} matched by name through {vocab_file.name} "
                        f"({sum(1 for i in rows if i < len(RESERVED))} special); the other "
                        f"{ours_size - len(rows)} keep their initialisation")


def load_hf_weights(model: KnowledgePretrainingModel, path: str,
                    entity_names: Sequence[tuple[str, dict[str, str]]] | None = None) -> LoadReport:
    """Copy every tensor of a local XLM-R (XLMRobertaModel / ForMaskedLM) or LUKE / mLUKE (LukeModel /
    ForMaskedLM) checkpoint into ``model``, by name.

    A checkpoint's entity table and prediction bias are matched row by row through its
    ``entity_vocab.json`` and ``entity_names`` (the dataset's keys and titles; see ``entity_row_map``); without the
    two they must have our vocabulary's size and are taken as they are.

    Tensors new to a word-only start (XLM-R) keep their initialisation, as LUKE's and mLUKE's released
    pre-training code leaves them (``load_state_dict(strict=False)`` after BERT's init: N(0, 0.02),
    LayerNorms 1 and 0). With entity-aware attention on, a checkpoint without the three entity
    queries gets copies of each layer's word query, as LUKE does when it loads a checkpoint.
    """
    source = Path(path)
    config, tensors = read_hf_state_dict(source)
    _check_sizes(config, model, source)
    state = model.state_dict()
    report = LoadReport(str(source))
    _map_entity_rows(tensors, state, source, entity_names, report)
    updates = {}
    for name, tensor in tensors.items():
        ours = hf_to_ours(name)
        if ours is None or ours not in state:
            report.unused.append(name)
            continue
        if ours == "encoder.embeddings.word.weight" and tensor.shape[0] != state[ours].shape[0]:
            raise ValueError(f"{source}: word vocabulary of {tensor.shape[0]} tokens, the dataset's tokenizer has "
                             f"{state[ours].shape[0]}: prepare the data with this model's tokenizer")
        if tensor.shape != state[ours].shape:
            raise ValueError(f"{source}: {name} has shape {tuple(tensor.shape)}, ours {ours} {tuple(state[ours].shape)}")
        updates[ours] = tensor
        report.loaded.append(name)
    if not any(k.startswith(("encoder.embeddings.", "encoder.layers.")) for k in updates):
        raise ValueError(f"{source}: no encoder tensor matched (first names in the checkpoint: {sorted(tensors)[:5]}); "
                         "expected an XLM-R (XLMRobertaModel/ForMaskedLM) or LUKE/mLUKE (LukeModel/ForMaskedLM) checkpoint")
    copied = 0
    for name in state:
        query = re.sub(r"\.(w2e|e2w|e2e)_query\.", ".query.", name)
        if query != name and name not in updates and query in updates:
            updates[name] = updates[query]
            copied += 1
    if copied:
        report.notes.append(f"{copied} entity-aware query tensors (w2e/e2w/e2e) not in the checkpoint: copied from "
                            "each layer's word query, as LUKE does")
    decoder = tensors.get("lm_head.decoder.weight")
    word = updates.get("encoder.embeddings.word.weight")
    if decoder is not None and word is not None and not torch.equal(decoder, word):
        report.notes.append("lm_head.decoder.weight differs from the word embeddings: our LM head is tied to them, "
                            "so the checkpoint's untied decoder is not used")
    model.load_state_dict(updates, strict=False)
    report.missing = sorted(k for k in state if k not in updates and not _is_buffer_state(k))
    return report


def _is_buffer_state(name: str) -> bool:
    return name.endswith(("running_mean", "running_var", "num_batches_tracked", "vectors", "entities", "cursor"))


def hf_config(model: KnowledgePretrainingModel):
    from transformers import LukeConfig

    c = model.config
    return LukeConfig(
        vocab_size=c.vocab_size, entity_vocab_size=c.entity_vocab_size, hidden_size=c.hidden_size,
        entity_emb_size=c.entity_emb_size, num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads,
        intermediate_size=c.intermediate_size, hidden_act="gelu", hidden_dropout_prob=c.dropout,
        attention_probs_dropout_prob=c.attention_dropout, max_position_embeddings=c.max_position_embeddings,
        type_vocab_size=c.type_vocab_size, initializer_range=0.02, layer_norm_eps=c.layer_norm_eps,
        use_entity_aware_attention=c.use_entity_aware_attention, pad_token_id=c.pad_token_id, bos_token_id=0,
        eos_token_id=2, architectures=["LukeForMaskedLM"], tie_word_embeddings=True,
    )


def hf_state_dict(model: KnowledgePretrainingModel) -> dict[str, torch.Tensor]:
    """Our tensors under LukeForMaskedLM's names, tied copies and the pooler included, so that the
    file loads with no missing key. Heads of objectives trained with weight 0 are written freshly
    initialised (they were never trained)."""
    from lightning_kg.model.heads import EntityPredictionHead, WordPredictionHead

    config = model.config
    tensors = {}
    for name, tensor in model.state_dict().items():
        hf = ours_to_hf(name)
        if hf is not None:
            tensors[hf] = tensor.detach().clone().contiguous()
    fresh = {"mlm_head": (model.mlm_head, WordPredictionHead), "entity_head": (model.entity_head, EntityPredictionHead)}
    for prefix, (head, cls) in fresh.items():
        if head is None:
            head = cls(config)
            head.apply(KnowledgeEncoder._init_weights)
            for name, tensor in head.state_dict().items():
                tensors[ours_to_hf(f"{prefix}.{name}")] = tensor.clone()
    tensors["lm_head.decoder.weight"] = tensors["luke.embeddings.word_embeddings.weight"].clone()
    tensors["lm_head.decoder.bias"] = tensors["lm_head.bias"].clone()
    tensors["entity_predictions.decoder.weight"] = tensors["luke.entity_embeddings.entity_embeddings.weight"].clone()
    # The pooler (first token, dense, tanh) is not trained by pre-training; LUKE ships one, initialised.
    generator = torch.Generator().manual_seed(0)
    tensors["luke.pooler.dense.weight"] = torch.randn(config.hidden_size, config.hidden_size, generator=generator) * 0.02
    tensors["luke.pooler.dense.bias"] = torch.zeros(config.hidden_size)
    return tensors


def hf_entity_vocab(entity_vocab: list[dict]) -> dict[str, int]:
    """Our entries -> the ``entity_vocab.json`` of transformers' (M)LukeTokenizer: each entity under
    its key and under ``lang:Title`` for every language, all pointing at one index. ``MLukeTokenizer``
    also requires ``[MASK2]`` (a second mask for fine-tuning tasks); it points at ``[MASK]``'s row,
    where mLUKE's converter starts it as a copy of that row."""
    mapping = {}
    for entry in entity_vocab:
        mapping.setdefault(entry["entity"], entry["id"])
        for lang, title in entry.get("titles", {}).items():
            mapping.setdefault(f"{lang}:{title}", entry["id"])
    if "[MASK]" in mapping:
        mapping.setdefault("[MASK2]", mapping["[MASK]"])
    return mapping


def export_hf(model: KnowledgePretrainingModel, out_dir: str | Path, tokenizer_dir: str | None = None,
              entity_vocab: list[dict] | None = None) -> Path:
    """Write a directory that ``LukeForMaskedLM.from_pretrained`` and ``AutoModel.from_pretrained`` load.

    With the tokenizer and the entity vocabulary, a Unigram ``tokenizer.json`` (XLM-R's, as a run
    started from XLM-R or mLUKE uses) is marked ``MLukeTokenizer`` in ``tokenizer_config.json``, so
    ``AutoTokenizer`` gives mLUKE's tokenizer, entities included. The BPE tokenizer ``prepare`` trains
    is not one ``MLukeTokenizer`` can read; it stays a plain tokenizer (``AutoTokenizer``), and
    entities are looked up in ``entity_vocab.json`` by hand.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hf_config(model).save_pretrained(out)
    save_file(hf_state_dict(model), out / "model.safetensors", metadata={"format": "pt"})
    if tokenizer_dir:
        for file in Path(tokenizer_dir).iterdir():
            if file.is_file():
                shutil.copy2(file, out / file.name)
    if entity_vocab is not None:
        write_json(out / "entity_vocab.json", hf_entity_vocab(entity_vocab), indent=0)
    tokenizer_file, tokenizer_config = out / "tokenizer.json", out / "tokenizer_config.json"
    if (entity_vocab is not None and tokenizer_file.exists() and tokenizer_config.exists()
            and json.loads(tokenizer_file.read_text(encoding="utf-8"))["model"]["type"] == "Unigram"):
        settings = json.loads(tokenizer_config.read_text(encoding="utf-8"))
        settings["tokenizer_class"] = "MLukeTokenizer"
        write_json(tokenizer_config, settings, indent=2)
    return out

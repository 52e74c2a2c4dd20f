"""``python -m lightning_kg probe``: what a checkpoint knows, per language, on facts it never trained on.

Reads the checkpoint and the dataset it was trained on, asks every held-out fact as a cloze in each
language that has a template, and writes a terminal table, ``probe.csv`` and ``probe.png`` into the
run directory's ``probe/``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only

from lightning_kg.dataset.entity_vocab import EntityVocab
from lightning_kg.dataset.format import OBJECTIVES
from lightning_kg.dataset.tokenizer import load_tokenizer
from lightning_kg.paths import find_path
from lightning_kg.probe.metrics import LabelVectors, alignment_accuracy, evaluate, summarise
from lightning_kg.probe.queries import Fact, build_queries, read_facts
from lightning_kg.probe.report import format_table, plot, write_csv
from lightning_kg.probe.scoring import entity_scorer, label_embeddings, word_scorer
from lightning_kg.probe.templates import load_templates
from lightning_kg.runs.checkpoints import load_checkpoint_model
from lightning_kg.runs.directories import output_dir, run_dataset, saved_data_dir

TEMPLATES = "conf/probe/templates.yaml"


@dataclass
class ProbeConfig:
    """Inputs, outputs and knobs of ``python -m lightning_kg probe``."""

    ckpt_path: str
    """Checkpoint of a lightning_kg run: a Lightning ``.ckpt`` or a DeepSpeed checkpoint directory (what ``export`` reads)."""
    data_dir: str | None = None
    """Prepared dataset (fact shards, entity vocabulary, tokenizer); None: the one the checkpoint was trained on."""
    templates: str | None = None
    """YAML file of cloze templates, relation -> language -> "[X] ... [Y]"; None: ``conf/probe/templates.yaml``
    of the working directory, else of the repository."""
    facts: str = "facts-heldout"
    """Manifest split whose facts are asked: ``facts-heldout`` (subjects never trained on), or
    ``facts-val`` / ``facts-train`` to see what the model memorised."""
    out: str | None = None
    """Directory for probe.csv and probe.png; None: ``probe/`` in the checkpoint's run directory
    (``probe-<split>/`` for a split other than facts-heldout)."""
    batch_size: int = 64
    """Prompts per forward pass."""
    alignment_entities: int = 10_000
    """Entities in the alignment test: the most frequent ones (the vocabulary is sorted by mention count)."""


@dataclass
class ProbeResult:
    rows: list[dict]
    """Rows of ``lightning_kg.probe.metrics.COLUMNS``."""
    skipped: Counter
    """(language, relation, reason) -> facts not asked."""
    title: str
    objectives: list[str]
    """The objectives the checkpoint was trained with (weight > 0)."""


def default_out(ckpt_path: str, facts: str) -> Path:
    """``<run>/probe`` for ``<run>/checkpoints/x.ckpt`` (or beside the checkpoint when it is elsewhere)."""
    return output_dir(ckpt_path, "probe" if facts == "facts-heldout" else f"probe-{facts}")


def templates_file(templates: str | None) -> Path:
    """``--templates`` as given; by default ``conf/probe/templates.yaml`` of the working directory,
    else of the repository."""
    return Path(templates) if templates is not None else find_path(TEMPLATES)


def _fact_urls(data_dir: Path, manifest: dict, split: str) -> list[str]:
    return [str(data_dir / shard["name"]) for shard in manifest["shards"].get(split, []) if shard["samples"]]


def _label_vectors(model, tokenizer, vocab: EntityVocab, probed: list[Fact], config: ProbeConfig) -> dict[str, LabelVectors]:
    """Language -> its labels of the alignment test's entities and their vectors, in the languages probed.
    A label spelt alike in several languages ("Europa") is encoded once: the encoder sees no language tag."""
    entities = range(3, min(len(vocab), 3 + config.alignment_entities))
    by_language = {lang: [e for e in entities if (vocab.titles[e].get(lang) or "").strip()]
                   for lang in sorted({fact.lang for fact in probed})}
    # Shortest first, so each batch pads little.
    unique = sorted({vocab.titles[e][lang] for lang, members in by_language.items() for e in members}, key=lambda t: (len(t), t))
    vectors = label_embeddings(model, tokenizer, unique, config.batch_size)
    row = {label: i for i, label in enumerate(unique)}
    out = {}
    for lang, members in by_language.items():
        labels = [vocab.titles[e][lang] for e in members]
        out[lang] = LabelVectors(members, labels, vectors[[row[label] for label in labels]])
    return out


def probe(config: ProbeConfig) -> ProbeResult:
    """Load, ask, score and summarise; writes nothing (see :func:`probe_and_write`)."""
    model, checkpoint = load_checkpoint_model(config.ckpt_path)
    model = model.to("cuda" if torch.cuda.is_available() else "cpu")
    return probe_model(model, run_dataset(config.data_dir, saved_data_dir(checkpoint), config.ckpt_path), config, f"probe {config.ckpt_path}")


def probe_model(model, data_dir: Path, config: ProbeConfig, name: str) -> ProbeResult:
    """Ask ``config.facts`` of a ``KnowledgePretrainingModel`` in eval mode (a loaded checkpoint's, or
    the one training, between validation rounds: ``lightning_kg.train.probe_curve``) and summarise;
    ``config.ckpt_path`` is not read. ``name`` heads the title."""
    templates = load_templates(templates_file(config.templates))
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    splits = sorted(split for split in manifest.get("shards", {}) if split.startswith("facts-"))
    if config.facts not in splits:
        raise ValueError(f"facts: {config.facts!r} is not a fact split of {data_dir / 'manifest.json'} (it has {splits})")
    vocab = EntityVocab.load(data_dir / "entity_vocab.jsonl")
    tokenizer = load_tokenizer(data_dir / "tokenizer")
    if (len(vocab), len(tokenizer)) != (model.config.entity_vocab_size, model.config.vocab_size):
        raise ValueError(f"{data_dir} has {len(vocab)} entities and {len(tokenizer)} word pieces, the checkpoint "
                         f"{model.config.entity_vocab_size} and {model.config.vocab_size}: not the dataset it was trained on")

    probed = read_facts(_fact_urls(data_dir, manifest, config.facts))
    known = [fact for split in splits if split != config.facts for fact in read_facts(_fact_urls(data_dir, manifest, split))]
    query_set = build_queries(probed, known, templates, vocab.titles)
    scorers = {}
    if model.entity_head is not None:
        scorers["entity"] = entity_scorer(model, tokenizer, config.batch_size)
    if model.mlm_head is not None:
        scorers["word"] = word_scorer(model, tokenizer, config.batch_size)
    results = evaluate(query_set.queries, scorers)

    rows = summarise(results, query_set.skipped, alignment_accuracy(_label_vectors(model, tokenizer, vocab, probed, config)))
    objectives = [objective for objective in OBJECTIVES if model.active(objective)]
    title = (f"{name}: {len(probed)} facts of {data_dir / config.facts}, {len(query_set.queries)} asked; "
             f"objectives {', '.join(objectives)}")
    return ProbeResult(rows, query_set.skipped, title, objectives)


def probe_and_write(config: ProbeConfig) -> Path | None:
    """:func:`probe`, then the table on stdout and ``probe.csv`` and ``probe.png`` in ``config.out`` (None:
    :func:`default_out`); returns that directory. What the ``test`` stage calls after testing: in a
    multi-process run only global rank 0 probes, the others return None at once, so several processes
    never write the same files (nor wait on each other: probing needs no collective)."""
    if rank_zero_only.rank != 0:
        return None
    result = probe(config)
    out = Path(config.out) if config.out else default_out(config.ckpt_path, config.facts)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(result.rows, out / "probe.csv")
    plot(result.rows, out / "probe.png", f"{'/'.join(Path(config.ckpt_path).parts[-3:])}, {config.facts}; {' + '.join(result.objectives)}")
    print(format_table(result.rows, result.skipped, result.title))
    print(f"\nwrote {out / 'probe.csv'} and {out / 'probe.png'}")
    return out


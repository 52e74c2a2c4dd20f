"""The settings of ``python -m lightning_kg prepare``: one dataclass, which the CLI turns into flags
and ``--print_config`` into commented YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class PrepareConfig:
    """Inputs, outputs and knobs of ``python -m lightning_kg prepare``."""

    wikipedia: str | list[str]
    """MediaWiki pages-articles XML dumps (.xml, .xml.bz2, multistream too): a path or glob, or a list of them; any language."""
    out: str
    """Dataset directory to write (shards, manifest, vocabulary, tokenizer, knowledge table)."""
    wikidata: str | list[str] = field(default_factory=list)
    """Wikidata JSON dumps (.json, .json.bz2, .json.gz): a path or glob, or a list; without one, entities are ``lang:Title``."""
    languages: list[str] | None = None
    """Languages whose labels, descriptions and facts are kept; None: those of the Wikipedia dumps."""
    tokenizer: str | None = None
    """Local Hugging Face tokenizer directory (e.g. XLM-R's); None trains a BPE tokenizer on the articles."""
    tokenizer_vocab_size: int = 32000
    """Vocabulary size of a trained tokenizer."""
    max_seq_length: int = 256
    """Tokens per text sample, <s> and </s> included."""
    knowledge_max_length: int = 64
    """Tokens per knowledge text (label + description)."""
    min_entity_count: int = 1
    """Keep entities mentioned at least this often (over all languages)."""
    max_entities: int = 1_000_000
    """Largest entity vocabulary, reserved entries included."""
    facts_per_description: int = 8
    """Facts used to compose a knowledge text for an entity without a description."""
    knowledge_aliases: int = 3
    """Wikidata aliases (per language) put after the label in a knowledge text, "Japan (Nippon, JP)"; 0: none, as XLM-K."""
    max_pages: int | dict[str, int] | None = None
    """Read at most this many articles per dump (smoke runs, demos): one number for every dump, or
    {file-name pattern: number} for some (``{"enwiki-*": 40}``); None reads all."""
    fact_languages: int | None = None
    """Languages each fact is written in, picked by hash among those labelling subject, relation and
    object; None: all. Every language is a sample of its own, so all of them multiply the fact shards
    (and the probe's work) by the number of languages; 2 or more keep cross-lingual consistency measurable."""
    val_fraction: float = 0.02
    """Share of documents (by title hash) and of facts kept for validation."""
    heldout_fact_fraction: float = 0.1
    """Share of subjects whose facts are held out for probing and never trained on."""
    shard_max_samples: int = 10_000
    """Samples per shard at most."""
    shard_max_bytes: int = 256 * 1024 * 1024
    """Bytes per shard at most."""
    workers: int = 1
    """Processes parsing Wikipedia dumps: a dump file each when there are at least as many files, else
    the wikitext of each file in chunks. The output is the same for any number."""
    strict: bool = False
    """Stop at the first malformed page or JSON line instead of skipping and counting it."""
    stage: Literal["all", "parse", "merge", "write", "manifest"] = "all"
    """``all`` on one machine; for a SLURM array: ``parse`` and ``write`` per slice, ``merge`` and ``manifest`` once."""
    slice: int = 0
    """This job's slice (``$SLURM_ARRAY_TASK_ID``) for the ``parse`` and ``write`` stages."""
    num_slices: int = 1
    """Slices the Wikipedia dumps are dealt into (dump i goes to slice i mod num_slices)."""

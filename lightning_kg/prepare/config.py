"""The settings of ``python -m lightning_kg prepare``: one dataclass, which the CLI turns into flags
and ``--print_config`` into commented YAML."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from lightning_kg.prepare.entity_types import DEFAULT_TYPE_CLASSES

# A Wikidata label language: "en", "zh-hans", "be-tarask".
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})*")
# Smallest lengths that leave room for text: <s> and </s> around a sample, and around each half of a knowledge pair.
MIN_SEQ_LENGTH = 8
MIN_KNOWLEDGE_LENGTH = 8
# Settings that change how a run goes, not what it writes: the fingerprint and the manifest leave them out.
RUN_SETTINGS = ("out", "stage", "slice", "workers", "strict", "accept_bad_wikidata")


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
    title_mentions: bool = False
    """Make the first bold text of each article's lead ("'''Sweden''' is ...") a mention of the
    article's own entity. A Wikipedia page never links to itself, so otherwise a subject's entity is read
    only where other articles mention it, never beside the facts its own article states."""
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
    transfer_tasks: bool = False
    """Also write silver transfer tasks (``tasks/{typing,ner,relation}/<language>.<split>.<ext>``) from
    the link anchors, typed by Wikidata P31/P279 and related by its facts (prepare/silver_tasks.py)."""
    transfer_language: str = "en"
    """Language of the transfer tasks' train and dev splits; every other language gets a test split."""
    transfer_heldout_fraction: float = 0.5
    """Share of entities (by hash) fine-tuning never sees: dev and test examples hold only these, train
    examples none (an example mixing both is dropped)."""
    no_relation_ratio: float = 1.0
    """``no_relation`` examples (anchor pairs without a fact) per related pair at most, in each relation file."""
    type_classes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TYPE_CLASSES))
    """Wikidata class Q-id -> entity type (NER tag and typing label): an entity takes the type of its
    nearest P31 class found here, climbing P279; the default maps real Wikidata classes to PER/LOC/ORG/MISC."""
    type_depth: int = 3
    """P279 levels climbed above an entity's P31 classes to find one in ``type_classes`` (a Wikidata pass each)."""
    workers: int = 1
    """Processes parsing Wikipedia dumps (a dump file each when there are at least as many files, else
    the wikitext of each file in chunks) and decoding the Wikidata dump in the merge; threads of the
    tokenizer in the write stage. The output is the same for any number."""
    strict: bool = False
    """Stop at the first malformed page or JSON line, or a dump cut short, instead of skipping and counting it;
    also reads the head of every Wikidata file before the Wikipedia dumps are parsed, so a wrong file stops the run at once."""
    accept_bad_wikidata: bool = False
    """Go on although a Wikidata file yields no entity or has more malformed lines than ``wikidata.MAX_MALFORMED_SHARE``
    (normally an error naming the file: a wrong file or a broken download)."""
    stage: Literal["all", "parse", "merge", "write", "manifest"] = "all"
    """``all`` on one machine; for a SLURM array: ``parse`` and ``write`` per slice, ``merge`` and ``manifest`` once."""
    slice: int = 0
    """This job's slice (``$SLURM_ARRAY_TASK_ID``) for the ``parse`` and ``write`` stages."""
    num_slices: int = 1
    """Slices the Wikipedia dumps are dealt into (dump i goes to slice i mod num_slices)."""

    def __post_init__(self) -> None:
        """Every number and the language list checked when the settings are made, before any dump is read."""
        problems = []

        def need(name: str, ok: bool, expected: str) -> None:
            if not ok:
                problems.append(f"{name} {getattr(self, name)!r}: expected {expected}")

        def count(name: str, low: int, why: str = "") -> None:
            value = getattr(self, name)
            need(name, isinstance(value, int) and not isinstance(value, bool) and value >= low,
                 f"a whole number of at least {low}{why}")

        count("tokenizer_vocab_size", 8)
        count("max_seq_length", MIN_SEQ_LENGTH, " (<s>, </s> and the text between)")
        count("knowledge_max_length", MIN_KNOWLEDGE_LENGTH, " (<s> label </s></s> description </s>)")
        count("min_entity_count", 1)
        count("max_entities", 4, " (3 reserved entries and one entity)")
        count("facts_per_description", 0)
        count("knowledge_aliases", 0)
        count("shard_max_samples", 1)
        count("shard_max_bytes", 1 << 16)
        count("workers", 1)
        count("num_slices", 1)
        count("type_depth", 0)
        need("no_relation_ratio", isinstance(self.no_relation_ratio, int | float) and not isinstance(self.no_relation_ratio, bool)
             and self.no_relation_ratio >= 0, "a number of at least 0")
        need("transfer_language", isinstance(self.transfer_language, str) and bool(LANGUAGE_CODE.fullmatch(self.transfer_language)),
             "a Wikidata language code such as en")
        need("type_classes", isinstance(self.type_classes, dict) and all(
            isinstance(k, str) and re.fullmatch(r"Q\d+", k) and isinstance(v, str) and v and v.split() == [v] and "-" not in v
            for k, v in self.type_classes.items()), "{class Q-id: type}, a type one word without '-' (it becomes B-<type>)")
        count("slice", 0)
        if self.fact_languages is not None:
            count("fact_languages", 1, " or null (all)")
        limits = self.max_pages.values() if isinstance(self.max_pages, dict) else [] if self.max_pages is None else [self.max_pages]
        need("max_pages", all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in limits),
             "null, a whole number of at least 0, or {file-name pattern: such a number}")
        for name in ("val_fraction", "heldout_fact_fraction", "transfer_heldout_fraction"):
            value = getattr(self, name)
            need(name, isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1, "a fraction in [0, 1]")
        if self.languages is not None:
            bad = [code for code in self.languages if not (isinstance(code, str) and LANGUAGE_CODE.fullmatch(code))]
            need("languages", bool(self.languages) and not bad and len(set(self.languages)) == len(self.languages),
                 "null (the dumps' languages) or a list of distinct Wikidata language codes such as [en, bg, zh-hans]"
                 + (f"; not one: {bad}" if bad else ""))
        if problems:
            raise ValueError("prepare settings: " + "; ".join(problems))


    def slice_numbers(self, count: int) -> list[int]:
        """The numbers of the dumps (of ``count``) this slice parses and writes."""
        if not 0 <= self.slice < self.num_slices:
            raise ValueError(f"slice {self.slice} is outside 0..{self.num_slices - 1}")
        return [i for i in range(count) if i % self.num_slices == self.slice]

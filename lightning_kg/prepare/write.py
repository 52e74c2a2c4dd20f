"""The write stage of ``prepare``: a slice's parsed articles -> text shards (train/val by document hash)."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from lightning_kg.dataset.tokenizer import load_tokenizer
from lightning_kg.prepare.cached_steps import cached_step, required
from lightning_kg.prepare.config import PrepareConfig
from lightning_kg.prepare.parse import iter_documents
from lightning_kg.prepare.samples import TextSequence, encode_texts, join_sequences, pack_document
from lightning_kg.prepare.shards import ShardJournal, ShardSink, stable_fraction

log = logging.getLogger("lightning_kg.prepare")
SHARDS_PER_SLICE = 10_000  # slice i numbers its text shards from i * SHARDS_PER_SLICE
ENCODE_BATCH_DOCUMENTS = 64  # documents tokenized in one call: amortises the call, bounds what is held


def write(out: Path, work_dir: Path, summaries: list[dict], config: PrepareConfig, digest: str) -> bool:
    """This slice's text shards (step 3). Returns True where they were finished with these
    settings and inputs by an earlier run, and reused."""
    required(work_dir / "merge.json", digest, "run the merge stage before writing shards")  # it writes links.json first
    _, reused = cached_step(work_dir / f"text-{config.slice:03d}.json", digest,
                            f"write: slice {config.slice} finished by an earlier run with these settings and inputs, reused",
                            lambda: _write_slice(out, work_dir, summaries, config, digest), out)
    return reused


def _write_slice(out: Path, work_dir: Path, summaries: list[dict], config: PrepareConfig, digest: str) -> dict:
    links = json.loads((work_dir / "links.json").read_text(encoding="utf-8"))
    tokenizer = load_tokenizer(out / "tokenizer")
    numbers = config.slice_numbers(len(summaries))
    journal = ShardJournal(work_dir / f"shards-text-{config.slice:03d}.jsonl", digest)
    with _tokenizer_threads(config.workers):
        text = write_text_shards(out, work_dir, dict(enumerate(summaries)), numbers, links, tokenizer, journal,
                                 config.slice * SHARDS_PER_SLICE, config)
    return {"documents": text["documents"], "mentions": text["mentions"],
            "shards": {split: [asdict(info) for info in infos] for split, infos in text["shards"].items()}}


@contextlib.contextmanager
def _tokenizer_threads(workers: int) -> Iterator[None]:
    """The Rust tokenizer's own threads for the write stage, where tokenizing is most of the time:
    ``encode_batch`` spreads a batch over them (the CLI turns them off, for the loader's workers).
    Each text is encoded alone, so the ids are the same for any number. The count is read when the
    tokenizer first starts its threads."""
    before = {name: os.environ.get(name) for name in ("TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS")}
    if workers > 1:
        os.environ["TOKENIZERS_PARALLELISM"] = "true"
        os.environ.setdefault("RAYON_NUM_THREADS", str(workers))
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def doc_hash(site: str, title: str) -> str:
    """A document's key: its wiki's site id and title (simplewiki and enwiki share a language, not pages)."""
    return hashlib.blake2b(f"{site}:{title}".encode(), digest_size=8).hexdigest()


def write_text_shards(out: Path, work_dir: Path, summaries: dict[int, dict], numbers: list[int],
                      links: dict[str, dict[str, int]], tokenizer, journal: ShardJournal, first_shard: int,
                      config: PrepareConfig) -> dict:
    """Pack the parsed articles of dumps ``numbers`` into text samples; a document goes wholly to
    train or to val. Shards are numbered from ``first_shard`` (slices write disjoint ranges)."""
    sinks = {split: ShardSink(out, split, journal, config.shard_max_samples, config.shard_max_bytes, first_shard)
             for split in ("train", "val")}
    # Per split, the sample being filled: consecutive sequences of one language share a sample while they fit.
    pending: dict[str, tuple[dict, TextSequence] | None] = {"train": None, "val": None}

    def emit(split: str) -> None:
        meta, sequence = pending[split]
        sinks[split].write({"__key__": meta["key"], "input_ids.npy": sequence.input_ids,
                            "json": {"lang": meta["lang"], "title": meta["title"], "mentions": sequence.mentions.tolist()}})
        pending[split] = None

    documents = {"train": 0, "val": 0}
    mentions = Counter()
    total = sum(summaries[i]["articles"] for i in numbers)
    articles = iter(tqdm(iter_documents(work_dir, numbers), total=total, desc="text", unit="doc", disable=None))
    for batch in iter(lambda: list(itertools.islice(articles, ENCODE_BATCH_DOCUMENTS)), []):
        resolved_batch = []
        for dump, article in batch:
            known = links.get(summaries[dump]["site"], {})
            paragraphs = []
            for text, spans in article["paragraphs"]:
                resolved = [(start, end, known.get(target, -1)) for start, end, target in spans]
                mentions.update("in_vocab" if index > 0 else "out_of_vocab" for _, _, index in resolved)
                paragraphs.append((text, resolved))
            resolved_batch.append(paragraphs)
        # One tokenizer call for the batch's paragraphs: the per-call cost was most of the stage's.
        encoded = iter(encode_texts(tokenizer, [text for paragraphs in resolved_batch for text, _ in paragraphs]))
        for (dump, article), paragraphs in zip(batch, resolved_batch):
            site, lang, title = summaries[dump]["site"], summaries[dump]["lang"], article["title"]
            split = "val" if stable_fraction(f"{site}:{title}") < config.val_fraction else "train"
            documents[split] += 1
            key = doc_hash(site, title)
            document_encoded = [next(encoded) for _ in paragraphs]
            for number, sequence in enumerate(pack_document(paragraphs, tokenizer, config.max_seq_length, document_encoded)):
                held = pending[split]
                if held and held[0]["lang"] == lang and len(held[1].input_ids) + len(sequence.input_ids) - 1 <= config.max_seq_length:
                    pending[split] = (held[0], join_sequences(held[1], sequence))
                    continue
                if held:
                    emit(split)
                pending[split] = ({"key": f"{key}-{number:04d}", "lang": lang, "title": title}, sequence)
    for split in sinks:
        if pending[split]:
            emit(split)
    shards = {split: sink.close() for split, sink in sinks.items()}
    return {"shards": shards, "documents": documents, "mentions": dict(mentions)}

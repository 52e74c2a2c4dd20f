"""``prepare``: Wikipedia and Wikidata dumps to an entity vocabulary, a tokenizer and shards.

The flow, each step resumable:
1. Wikidata dumps -> labels, descriptions, sitelinks, facts (``KnowledgeBase``).
2. Each Wikipedia dump -> parsed documents in ``.work/`` plus its redirects and link counts
   (one process per dump file with ``workers`` > 1; a finished file is never parsed again).
3. Links resolved (redirects, then sitelinks) and counted over all languages -> entity vocabulary.
4. Tokenizer: the given local one, or one trained on the parsed text.
5. Knowledge texts, text shards (train/val by document hash) and fact shards (held out by
   subject hash), then ``manifest.json``.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import queue
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lightning_kg.data.dumps import BadRecord, DumpError, expand_inputs
from lightning_kg.data.entity_vocab import EntityVocab
from lightning_kg.data.knowledge import KnowledgeTable
from lightning_kg.data.knowledge_base import KnowledgeBase
from lightning_kg.data.mediawiki import iter_pages, site_language
from lightning_kg.data.samples import knowledge_text, pack_document
from lightning_kg.data.shards import ShardJournal, ShardSink, file_sha256
from lightning_kg.data.tokenizer import load_tokenizer, train_tokenizer
from lightning_kg.data.wikitext import normalize_title, parse_wikitext

log = logging.getLogger("lightning_kg.prepare")
REDIRECT_HOPS = 5


@dataclass
class PrepareConfig:
    """Inputs, outputs and knobs of ``python -m lightning_kg prepare``."""

    wikipedia: list[str]
    """MediaWiki pages-articles XML dumps (.xml, .xml.bz2, multistream too): paths or globs, any language."""
    out: str
    """Dataset directory to write (shards, manifest, vocabulary, tokenizer, knowledge table)."""
    wikidata: list[str] = field(default_factory=list)
    """Wikidata JSON dumps (.json, .json.bz2, .json.gz); without one, entities are ``lang:Title``."""
    languages: list[str] | None = None
    """Languages whose labels, descriptions and facts are kept; None: those of the Wikipedia dumps."""
    tokenizer: str | None = None
    """Local Hugging Face tokenizer directory (e.g. XLM-R's); None trains a Unigram tokenizer."""
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
    max_pages: int | dict[str, int] | None = None
    """Read at most this many articles per dump (smoke runs, demos): one number for every dump, or
    {file-name pattern: number} for some (``{"enwiki-*": 40}``); None reads all."""
    val_fraction: float = 0.02
    """Share of documents (by title hash) and of facts kept for validation."""
    heldout_fact_fraction: float = 0.1
    """Share of subjects whose facts are held out for probing and never trained on."""
    shard_max_samples: int = 10_000
    """Samples per shard at most."""
    shard_max_bytes: int = 256 * 1024 * 1024
    """Bytes per shard at most."""
    workers: int = 1
    """Processes parsing Wikipedia dumps (one dump file each at a time)."""
    strict: bool = False
    """Stop at the first malformed page or JSON line instead of skipping and counting it."""


def stable_fraction(text: str) -> float:
    """A number in [0, 1) fixed by ``text``: splits by hash are the same on every machine and run."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def doc_hash(lang: str, title: str) -> str:
    return hashlib.blake2b(f"{lang}:{title}".encode("utf-8"), digest_size=8).hexdigest()


class BadRecords:
    """Counts skipped input records, logs each with where it was, or raises under ``strict``."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.records: list[str] = []

    def __call__(self, record: BadRecord) -> None:
        if self.strict:
            raise DumpError(str(record))
        log.warning("skipped %s", record)
        self.records.append(str(record))


# ---------------------------------------------------------------- step 2: parse Wikipedia dumps

_progress_queue = None


def _init_worker(progress_queue) -> None:
    global _progress_queue
    _progress_queue = progress_queue


def page_limit(path: str, max_pages: int | dict[str, int] | None) -> int | None:
    """The article cap that ``max_pages`` sets for this dump file."""
    if not isinstance(max_pages, dict):
        return max_pages
    return next((limit for pattern, limit in max_pages.items() if fnmatch.fnmatch(Path(path).name, pattern)), None)


def parse_dump(path: str, work_file: str, max_pages: int | None, strict: bool) -> dict:
    """Parse one dump into ``work_file`` (gzip JSON lines, one article each); return its summary.

    The summary (redirects, raw link counts, skipped records) is saved beside the work file, and
    its presence marks the dump as done for a restarted run.
    """
    lang = site_language(path)
    if lang is None:
        raise ValueError(f"{path}: cannot tell the dump's language (no xml:lang or dbname in <siteinfo>)")
    bad = BadRecords(strict)
    redirects: dict[str, str] = {}
    link_counts: Counter = Counter()
    articles = pages = 0
    partial = work_file + ".partial"
    with gzip.GzipFile(partial, "wb", mtime=0) as raw:
        for page in iter_pages(path, on_error=bad):
            pages += 1
            if pages % 100 == 0 and _progress_queue is not None:
                _progress_queue.put(100)
            if page.namespace != 0:
                continue
            title = normalize_title(page.title)
            if not title:
                continue
            if page.redirect:
                redirects[title] = page.redirect
                continue
            if max_pages is not None and articles >= max_pages:
                break
            paragraphs = []
            for paragraph in parse_wikitext(page.text):
                mentions = [(m.start, m.end, m.title) for m in paragraph.mentions]
                link_counts.update(title for _, _, title in mentions)
                paragraphs.append([paragraph.text, mentions])
            if paragraphs:
                articles += 1
                line = json.dumps({"title": title, "paragraphs": paragraphs}, ensure_ascii=False)
                raw.write(line.encode("utf-8") + b"\n")
    if _progress_queue is not None:
        _progress_queue.put(pages % 100)
    os.replace(partial, work_file)
    summary = {"path": path, "lang": lang, "pages": pages, "articles": articles, "redirects": redirects,
               "link_counts": dict(link_counts), "bad_records": bad.records}
    Path(work_file + ".summary.json").write_text(json.dumps(summary, ensure_ascii=False), encoding="utf-8")
    return summary


def parse_dumps(paths: list[str], work_dir: Path, config: PrepareConfig) -> list[dict]:
    """Step 2 for every dump, reusing the summaries of dumps a previous run finished."""
    jobs, summaries = [], {}
    for i, path in enumerate(paths):
        work_file = str(work_dir / f"docs-{i:04d}.jsonl.gz")
        summary_file = Path(work_file + ".summary.json")
        if summary_file.exists() and Path(work_file).exists():
            summaries[i] = json.loads(summary_file.read_text(encoding="utf-8"))
            log.info("%s: parsed by an earlier run, reused", path)
        else:
            jobs.append((i, path, work_file))
    start = time.perf_counter()
    pages = 0
    with tqdm(desc="parse", unit="page", disable=None) as bar:
        if config.workers <= 1 or len(jobs) <= 1:
            _init_worker(None)
            for i, path, work_file in jobs:
                summaries[i] = parse_dump(path, work_file, page_limit(path, config.max_pages), config.strict)
                bar.update(summaries[i]["pages"])
        else:
            context = multiprocessing.get_context("spawn")
            progress = context.Queue()
            with context.Pool(config.workers, initializer=_init_worker, initargs=(progress,)) as pool:
                pending = {i: pool.apply_async(parse_dump, (path, work_file, page_limit(path, config.max_pages), config.strict))
                           for i, path, work_file in jobs}
                while pending:
                    try:
                        bar.update(progress.get(timeout=0.2))
                    except queue.Empty:
                        pass
                    for i in [i for i, result in pending.items() if result.ready()]:
                        summaries[i] = pending.pop(i).get()
                while True:
                    try:
                        bar.update(progress.get_nowait())
                    except queue.Empty:
                        break
        for i, _, _ in jobs:
            pages += summaries[i]["pages"]
    elapsed = time.perf_counter() - start
    if jobs:
        log.info("parsed %d pages in %.1f s (%.0f pages/s)", pages, elapsed, pages / max(elapsed, 1e-9))
    return [summaries[i] for i in range(len(paths))]


def iter_documents(work_dir: Path, count: int) -> Iterator[tuple[int, dict]]:
    """Parsed articles in input order, as (dump number, article)."""
    for i in range(count):
        with gzip.open(work_dir / f"docs-{i:04d}.jsonl.gz", "rt", encoding="utf-8") as lines:
            for line in lines:
                yield i, json.loads(line)


# ---------------------------------------------------------------- step 3: resolve links, build the vocabulary

class LinkResolver:
    """Link target -> entity key: follow redirects in the link's language, then sitelinks."""

    def __init__(self, summaries: list[dict], kb: KnowledgeBase):
        self.kb = kb
        self.redirects: dict[str, dict[str, str]] = {}
        for summary in summaries:
            self.redirects.setdefault(summary["lang"], {}).update(summary["redirects"])

    def __call__(self, lang: str, title: str) -> str:
        redirects = self.redirects.get(lang, {})
        for _ in range(REDIRECT_HOPS):
            if title not in redirects:
                break
            title = redirects[title]
        return self.kb.resolve(lang, title)


def build_vocab(summaries: list[dict], resolve: LinkResolver, kb: KnowledgeBase, config: PrepareConfig) -> EntityVocab:
    counts: Counter = Counter()
    titles: dict[str, dict[str, str]] = {}
    for summary in summaries:
        lang = summary["lang"]
        for title, count in summary["link_counts"].items():
            entity = resolve(lang, title)
            counts[entity] += count
            if entity in kb.titles:
                titles[entity] = kb.titles[entity]
            else:
                titles.setdefault(entity, {})[lang] = entity.split(":", 1)[1] if ":" in entity else title
    return EntityVocab.build(counts, titles, min_count=config.min_entity_count, max_size=config.max_entities)


# ---------------------------------------------------------------- step 5: knowledge texts, shards

def entity_labels(vocab: EntityVocab, kb: KnowledgeBase, index: int) -> dict[str, str]:
    """Labels per language: Wikidata's, else the entity's Wikipedia titles."""
    entity = vocab.entities[index]
    return kb.labels.get(entity) or vocab.titles[index]


def tokenize_knowledge(tokenizer, texts: list[tuple[str, str]], max_length: int) -> list[list[int]]:
    """``<s> label </s></s> description </s>`` (or ``<s> label </s>``), truncating the description."""
    result: list[list[int] | None] = [None] * len(texts)
    paired = [i for i, (_, description) in enumerate(texts) if description]
    single = [i for i, (_, description) in enumerate(texts) if not description]
    if paired:
        encoded = tokenizer([texts[i][0] for i in paired], [texts[i][1] for i in paired],
                            truncation=True, max_length=max_length)["input_ids"]
        for i, ids in zip(paired, encoded):
            result[i] = ids
    if single:
        encoded = tokenizer([texts[i][0] for i in single], truncation=True, max_length=max_length)["input_ids"]
        for i, ids in zip(single, encoded):
            result[i] = ids
    return result


def write_knowledge(out: Path, vocab: EntityVocab, kb: KnowledgeBase, tokenizer, languages: list[str],
                    heldout_subjects: set[str], config: PrepareConfig) -> dict:
    """One knowledge text per entity and language; facts of held-out subjects are not used."""
    rows_text, rows_meta = [], []
    wanted = set(languages)
    for index in range(3, len(vocab)):
        entity = vocab.entities[index]
        labels = entity_labels(vocab, kb, index)
        descriptions = kb.descriptions.get(entity, {})
        facts = [] if entity in heldout_subjects else kb.facts.get(entity, [])
        for lang in sorted(labels):
            if lang not in wanted:
                continue
            stated = [(kb.labels[p][lang], kb.labels[o][lang]) for p, o in facts
                      if lang in kb.labels.get(p, {}) and lang in kb.labels.get(o, {})]
            label, description, composed = knowledge_text(labels[lang], descriptions.get(lang), stated[: config.facts_per_description])
            rows_text.append((label, description))
            rows_meta.append((index, lang, composed))
    rows = []
    batch = 1024
    for start in tqdm(range(0, len(rows_text), batch), desc="knowledge", unit="batch", disable=None):
        chunk, meta = rows_text[start : start + batch], rows_meta[start : start + batch]
        for ids, (index, lang, composed) in zip(tokenize_knowledge(tokenizer, chunk, config.knowledge_max_length), meta):
            rows.append((index, lang, ids, composed))
    KnowledgeTable.write(out, rows, num_entities=len(vocab), langs=languages)
    return {"texts": len(rows), "composed": sum(1 for r in rows if r[3])}


def write_text_shards(out: Path, work_dir: Path, summaries: list[dict], resolve: LinkResolver, vocab: EntityVocab,
                      tokenizer, journal: ShardJournal, config: PrepareConfig) -> dict:
    """Pack every parsed article into text samples; a document goes wholly to train or to val."""
    sinks = {split: ShardSink(out, split, journal, config.shard_max_samples, config.shard_max_bytes) for split in ("train", "val")}
    documents = {"train": 0, "val": 0}
    mentions = Counter()
    total = sum(s["articles"] for s in summaries)
    for dump, article in tqdm(iter_documents(work_dir, len(summaries)), total=total, desc="text", unit="doc", disable=None):
        lang, title = summaries[dump]["lang"], article["title"]
        split = "val" if stable_fraction(f"{lang}:{title}") < config.val_fraction else "train"
        documents[split] += 1
        paragraphs = []
        for text, links in article["paragraphs"]:
            spans = []
            for start, end, target in links:
                index = vocab.index(resolve(lang, target))
                mentions["in_vocab" if index > 2 else "out_of_vocab"] += 1
                spans.append((start, end, index if index > 2 else -1))
            paragraphs.append((text, spans))
        key = doc_hash(lang, title)
        for number, sequence in enumerate(pack_document(paragraphs, tokenizer, config.max_seq_length)):
            sinks[split].write({"__key__": f"{key}-{number:04d}", "input_ids.npy": sequence.input_ids,
                                "json": {"lang": lang, "title": title, "mentions": sequence.mentions.tolist()}})
    shards = {split: sink.close() for split, sink in sinks.items()}
    return {"shards": shards, "documents": documents, "mentions": dict(mentions)}


def write_fact_shards(out: Path, vocab: EntityVocab, kb: KnowledgeBase, tokenizer, languages: list[str],
                      heldout_subjects: set[str], journal: ShardJournal, config: PrepareConfig) -> dict:
    """Object Entailment samples: facts whose subject and object are both in the vocabulary,
    one per language that labels subject, relation and object."""
    sinks = {split: ShardSink(out, f"facts-{split}", journal, config.shard_max_samples, config.shard_max_bytes)
             for split in ("train", "val", "heldout")}
    counts = Counter()
    for subject_index in tqdm(range(3, len(vocab)), desc="facts", unit="entity", disable=None):
        subject = vocab.entities[subject_index]
        for relation, obj in kb.facts.get(subject, []):
            object_index = vocab.index(obj)
            if object_index <= 2:
                continue
            if subject in heldout_subjects:
                split = "heldout"
            else:
                split = "val" if stable_fraction(f"{subject}|{relation}|{obj}") < config.val_fraction else "train"
            for lang in languages:
                labels = [kb.labels.get(e, {}).get(lang) for e in (subject, relation, obj)]
                if not all(labels):
                    continue
                query_ids = tokenizer(labels[0], labels[1])["input_ids"]
                sinks[split].write({
                    "__key__": f"{subject_index}-{relation}-{object_index}-{lang}",
                    "json": {"query_ids": query_ids, "lang": lang, "subject": subject_index, "relation": relation, "object": object_index,
                             "subject_label": labels[0], "relation_label": labels[1], "object_label": labels[2]},
                })
                counts[split] += 1
    return {"shards": {f"facts-{split}": sink.close() for split, sink in sinks.items()}, "samples": dict(counts)}


def directory_sha256(directory: Path) -> str:
    """One hash over a directory's files (names and contents), for the manifest."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0" + file_sha256(path).encode())
    return digest.hexdigest()


def peak_memory_mib() -> float:
    """Peak resident memory of this process and its finished children, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _check_output_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PermissionError(f"cannot write to output directory {out}: {error.strerror}") from None


def prepare(config: PrepareConfig) -> dict:
    """Run the whole flow; returns the manifest it wrote."""
    started = time.perf_counter()
    wiki_paths = expand_inputs(config.wikipedia)
    data_paths = expand_inputs(config.wikidata) if config.wikidata else []
    out = Path(config.out)
    _check_output_dir(out)
    work_dir = out / ".work"
    work_dir.mkdir(exist_ok=True)

    summaries = parse_dumps(wiki_paths, work_dir, config)
    languages = sorted(config.languages or {s["lang"] for s in summaries})
    bad = BadRecords(config.strict)
    kb = KnowledgeBase.from_dumps(data_paths, set(languages), on_error=bad)
    if data_paths:
        log.info("wikidata: %d labelled entities, %d with facts, %d sitelinks", len(kb.labels), len(kb.facts), len(kb.sitelinks))
    resolve = LinkResolver(summaries, kb)
    vocab = build_vocab(summaries, resolve, kb, config)
    if len(vocab) <= 3:
        raise ValueError(f"no entity mention found in {len(wiki_paths)} dump(s) ({sum(s['articles'] for s in summaries)} "
                         "articles): nothing to train the entity objectives on; check the inputs")
    vocab.save(out / "entity_vocab.jsonl")

    if config.tokenizer:
        tokenizer = load_tokenizer(config.tokenizer)
    else:
        # Knowledge texts are tokenized too, so their labels and descriptions count as well.
        texts = itertools.chain(
            (text for _, article in iter_documents(work_dir, len(summaries)) for text, _ in article["paragraphs"]),
            (text for per_language in (kb.labels, kb.descriptions) for texts in per_language.values() for text in texts.values()),
        )
        tokenizer = train_tokenizer(texts, config.tokenizer_vocab_size)
    tokenizer.save_pretrained(str(out / "tokenizer"))

    heldout_subjects = {e for e in kb.facts if stable_fraction(f"heldout|{e}") < config.heldout_fact_fraction}
    knowledge = write_knowledge(out, vocab, kb, tokenizer, languages, heldout_subjects, config)
    journal = ShardJournal(work_dir / "shards.jsonl")
    text = write_text_shards(out, work_dir, summaries, resolve, vocab, tokenizer, journal, config)
    facts = write_fact_shards(out, vocab, kb, tokenizer, languages, heldout_subjects, journal, config)
    if not any(info.samples for info in text["shards"]["train"]):
        raise ValueError("no training text sample was produced: the dumps held no article text")

    skipped = [r for s in summaries for r in s["bad_records"]] + bad.records
    shards = {**text["shards"], **facts["shards"]}
    manifest = {
        "format": 1,
        "inputs": {"wikipedia": wiki_paths, "wikidata": data_paths},
        "config": asdict(config),
        "languages": languages,
        "hashes": {"tokenizer": directory_sha256(out / "tokenizer"), "entity_vocab": file_sha256(out / "entity_vocab.jsonl"),
                   "knowledge": directory_sha256(out / "knowledge")},
        "counts": {"pages": sum(s["pages"] for s in summaries), "articles": sum(s["articles"] for s in summaries),
                   "documents": text["documents"], "mentions": text["mentions"], "entities": len(vocab),
                   "knowledge_texts": knowledge["texts"], "composed_knowledge_texts": knowledge["composed"],
                   "facts": facts["samples"], "skipped_records": len(skipped)},
        "shards": {split: [asdict(info) for info in infos] for split, infos in shards.items()},
    }
    # Input paths and the output path vary between machines; the manifest of a rebuild must not.
    manifest["inputs"] = {kind: [Path(p).name for p in paths] for kind, paths in manifest["inputs"].items()}
    manifest["config"] = {**manifest["config"], "wikipedia": [Path(p).name for p in wiki_paths],
                          "wikidata": [Path(p).name for p in data_paths]}
    del manifest["config"]["out"]
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, out / "manifest.json")
    if skipped:
        log.warning("%d malformed record(s) skipped; first: %s", len(skipped), skipped[0])
    log.info("done in %.1f s: %d entities, %d train / %d val text samples, facts %s; peak memory %.0f MiB",
             time.perf_counter() - started, len(vocab), sum(i.samples for i in shards["train"]),
             sum(i.samples for i in shards["val"]), facts["samples"], peak_memory_mib())
    return manifest

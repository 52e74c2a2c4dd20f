"""``prepare``: Wikipedia and Wikidata dumps to an entity vocabulary, a tokenizer and shards.

The flow, each step resumable (a finished dump or shard is never redone):
1. ``parse`` each Wikipedia dump -> parsed articles, redirects and link counts in ``.work/``.
2. ``merge``: Wikidata -> labels, descriptions, sitelinks, facts; links resolved (redirects, then
   sitelinks) and counted over all languages -> entity vocabulary; tokenizer (a local one, or trained
   on the parsed text); knowledge texts; fact shards (held out by subject hash); the link table.
3. ``write`` the text shards (train/val by document hash).
4. ``manifest``: shard list, counts, config and hashes; under ``transfer_tasks``, first the silver
   transfer tasks from the parsed articles' anchors (prepare/silver_tasks.py).
``all`` runs them in order on one machine. For dumps that outgrow one machine, a SLURM array runs
``parse`` and ``write`` per slice and one job runs ``merge`` and ``manifest`` (docs/PREPARE.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from lightning_kg.dataset.files import file_sha256, write_json
from lightning_kg.dataset.manifest import directory_sha256
from lightning_kg.dataset.tokenizer import load_tokenizer
from lightning_kg.prepare.chunk_journal import remove_journals
from lightning_kg.prepare.chunk_pool import ChunkPool
from lightning_kg.prepare.config import PrepareConfig
from lightning_kg.prepare.dumps import expand_inputs
from lightning_kg.prepare.knowledge_base import KnowledgeBase
from lightning_kg.prepare.mediawiki import read_site
from lightning_kg.prepare.parsing import WORKER_PEAK_MIB, BadRecords, iter_documents, parse_dumps, read_summary, work_file
from lightning_kg.prepare.shards import ShardJournal
from lightning_kg.prepare.silver_tasks import prepare_transfer_tasks
from lightning_kg.prepare.tokenizer_training import train_tokenizer
from lightning_kg.prepare.wikidata import check_wikidata_head
from lightning_kg.prepare.writing import (
    LinkResolver,
    build_vocab,
    knowledge_texts,
    link_table,
    linked_targets,
    stable_fraction,
    write_fact_shards,
    write_knowledge,
    write_text_shards,
)

log = logging.getLogger("lightning_kg.prepare")
SHARDS_PER_SLICE = 10_000  # slice i numbers its text shards from i * SHARDS_PER_SLICE
# Settings that change how a run goes, not what it writes: the fingerprint and the manifest leave them out.
RUN_SETTINGS = ("out", "stage", "slice", "workers", "strict", "accept_bad_wikidata")
# What the parse stage's output depends on; the later stages depend on every setting.
PARSE_SETTINGS = ("wikipedia", "max_pages", "title_mentions")
SHARD_NAME = re.compile(r"(train|val|facts-train|facts-val|facts-heldout)-\d{6}\.tar")


def peak_memory_mib() -> float:
    """Peak resident memory of this process plus the peak of each parse worker, MiB. The workers run
    beside this process, so the sum bounds what the run held at once (from above: peaks need not coincide)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + sum(WORKER_PEAK_MIB.values())


def fingerprint(config: PrepareConfig, wiki_paths: list[str], data_paths: list[str]) -> dict:
    """What the output depends on: every setting but the run settings, and each input's name and
    size in order (for a tokenizer directory, its files'). Names rather than paths, so a shared
    filesystem mounted elsewhere on another node gives the same fingerprint."""

    def files(paths: list[str], root: Path | None = None) -> list[list]:
        return [[str(Path(p).relative_to(root)) if root else Path(p).name, os.path.getsize(p)] for p in paths]

    values = {key: value for key, value in asdict(config).items() if key not in RUN_SETTINGS}
    values["wikipedia"], values["wikidata"] = files(wiki_paths), files(data_paths)
    if config.tokenizer and Path(config.tokenizer).is_dir():
        directory = Path(config.tokenizer)
        values["tokenizer"] = files(sorted(str(p) for p in directory.rglob("*") if p.is_file()), directory)
    return json.loads(json.dumps(values))  # as it reads back from the file: lists, not tuples


def hash_of(values: dict) -> str:
    """A short hash of settings: what parsed dumps, stage records and journal lines carry."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def record_fingerprint(out: Path, work_dir: Path, values: dict) -> None:
    """Keep ``values`` in ``.work/fingerprint.json``; where an earlier run kept others, say what changed.

    Nothing is reused on trust: every parsed dump, stage record and journal line carries the hash of
    the settings it was made with and counts as done only for the same hash. So a changed setting
    redoes what it affects (a parsed dump only when its inputs or ``max_pages`` changed; shards and
    the rest whenever any setting did) and a stale dataset is never mixed into a new one.
    """
    path = work_dir / "fingerprint.json"
    if path.exists():
        recorded = json.loads(path.read_text(encoding="utf-8"))

        def short(value) -> str:
            text = json.dumps(value, ensure_ascii=False)
            return text if len(text) <= 120 else text[:117] + "..."

        changes = [f"{key} {short(recorded.get(key))} -> {short(values.get(key))}"
                   for key in sorted(set(recorded) | set(values)) if recorded.get(key) != values.get(key)]
        if changes:
            log.warning("%s was prepared with other settings or inputs (%s): what they affect is done again", out, "; ".join(changes))
    # A staging name per process: slices may start at once.
    write_json(path, values, indent=1, sort_keys=True, staging=work_dir / f"fingerprint.json.{os.getpid()}.tmp")


def _check_output_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PermissionError(f"cannot write to output directory {out}: {error.strerror}") from None


LINK_KEYS = ("link_counts", "redirects")
"""What only the merge reads of a parse summary, and nearly all of it (gigabytes for mLUKE's 24
wikis; docs/PREPARE.md, "At full scale"), which a write slice need not hold."""


def _summaries(work_dir: Path, count: int, digest: str, links: bool = True) -> list[dict]:
    """Every dump's parse summary; without ``links``, each is dropped of ``LINK_KEYS`` as it is read."""
    summaries = []
    for number in range(count):
        summary = read_summary(work_dir, number, digest)
        if summary is not None and not links:
            for key in LINK_KEYS:
                del summary[key]
        summaries.append(summary)
    missing = [str(work_file(work_dir, i)) for i, summary in enumerate(summaries) if summary is None]
    if missing:
        raise FileNotFoundError(f"{len(missing)} dump(s) not parsed yet with these settings (run the parse stage for "
                                f"every slice first); first missing: {missing[0]}.summary.json")
    return summaries


def _slice_numbers(count: int, config: PrepareConfig) -> list[int]:
    if not 0 <= config.slice < config.num_slices:
        raise ValueError(f"slice {config.slice} is outside 0..{config.num_slices - 1}")
    return [i for i in range(count) if i % config.num_slices == config.slice]


def _output_hash(out: Path, name: str) -> str | None:
    path = out / name
    return directory_sha256(path) if path.is_dir() else file_sha256(path) if path.is_file() else None


def _finished(record_path: Path, digest: str, out: Path) -> bool:
    """Whether the stage that writes ``record_path`` finished with this fingerprint (settings and
    inputs) and everything it made is still there as it was made: each shard at its size, each
    other output (``outputs``: name -> sha256) at its hash. Then a restart reuses the stage."""
    if (record := _recorded(record_path, digest)) is None:
        return False
    shards = [info for infos in record["shards"].values() for info in infos]
    return (all((out / s["name"]).is_file() and (out / s["name"]).stat().st_size == s["bytes"] for s in shards)
            and all(_output_hash(out, name) == value for name, value in record.get("outputs", {}).items()))


MERGE_OUTPUTS = ("entity_vocab.jsonl", "tokenizer", "knowledge", ".work/links.json")


def merge(out: Path, work_dir: Path, summaries: list[dict], data_paths: list[str], config: PrepareConfig, digest: str) -> bool:
    """Vocabulary, tokenizer, knowledge table, fact shards and the link table (step 2). Returns
    True where a finished merge of these settings and inputs was reused instead."""
    if _finished(work_dir / "merge.json", digest, out):
        log.info("merge: finished by an earlier run with these settings and inputs, reused")
        return True
    languages = sorted(config.languages or {s["lang"] for s in summaries})
    bad = BadRecords(config.strict)
    # Three passes over Wikidata, so memory follows the vocabulary: sitelinks of the linked items (and
    # the properties), then the vocabulary's items, then the labels of their facts' objects (knowledge_base.py).
    wikidata_started = time.process_time(), time.perf_counter()
    # Each pass's result is kept in .work/, so a run killed in a later pass (or after the three)
    # starts again after the last one it finished: at full scale a pass is half an hour of a node.
    # Two files, so that the first pass's JSON values need not stay in memory to be written again.
    first_file, last_file = work_dir / "wikidata-first.json", work_dir / "wikidata-last.json"
    with ChunkPool(config.workers if data_paths else 1, work_dir) as pool:
        if first := _recorded(first_file, digest):
            kb = KnowledgeBase.from_json(first.pop("knowledge_base"))
            bad.records = first["bad_records"]
            remove_journals(work_dir, "wikidata-first")  # left by a kill between the record and their removal
            log.info("wikidata: the first pass of an earlier run reused")
        else:
            with _pass_bar(data_paths, 1) as told, _journaled(pool, work_dir, "wikidata-first", digest):
                kb = KnowledgeBase.from_dumps(data_paths, set(languages), {s["site"]: s["lang"] for s in summaries}, on_error=bad,
                                              accept_bad=config.accept_bad_wikidata, linked=linked_targets(summaries), pool=pool,
                                              progress=told)
            _keep_pass(first_file, {"fingerprint": digest, "knowledge_base": kb.to_json(), "bad_records": bad.records})
            remove_journals(work_dir, "wikidata-first")
        if data_paths:
            log.info("wikidata: %d properties and %d sitelinks of linked items read", len(kb.decoded), len(kb.sitelinks))
        resolve = LinkResolver(summaries, kb)
        vocab = build_vocab(summaries, resolve, kb, config)
        if len(vocab) <= 3:
            raise ValueError(f"no entity mention found in {len(summaries)} dump(s) ({sum(s['articles'] for s in summaries)} "
                             "articles): nothing to train the entity objectives on; check the inputs")
        if last := _recorded(last_file, digest):
            kb = KnowledgeBase.from_json(last.pop("knowledge_base"))
            remove_journals(work_dir, "wikidata-items")
            remove_journals(work_dir, "wikidata-labels")
            log.info("wikidata: the second and third passes of an earlier run reused")
        else:
            if data_paths:
                with _pass_bar(data_paths, 2) as told, _journaled(pool, work_dir, "wikidata-items", digest):
                    kb.add_items(data_paths, set(vocab.entities[3:]), set(languages), pool, told)
            if missing := kb.keep_only(set(vocab.entities[3:])):
                with _pass_bar(data_paths, 3) as told, _journaled(pool, work_dir, "wikidata-labels", digest):
                    kb.add_labels(data_paths, missing, set(languages), pool, told)
                log.info("wikidata: labels of %d objects of the vocabulary's facts read in a third pass", len(missing))
            _keep_pass(last_file, {"fingerprint": digest, "knowledge_base": kb.to_json()})
            remove_journals(work_dir, "wikidata-items")
            remove_journals(work_dir, "wikidata-labels")
    if data_paths:  # bench/prepare_scale.py reads this line
        log.info("wikidata passes: %.2f CPU s in this process, %.2f s wall", time.process_time() - wikidata_started[0],
                 time.perf_counter() - wikidata_started[1])
    vocab.save(out / "entity_vocab.jsonl")
    heldout_subjects = {e for e in kb.facts if stable_fraction(f"heldout|{e}") < config.heldout_fact_fraction}
    knowledge_rows = knowledge_texts(vocab, kb, languages, heldout_subjects, config)
    if config.tokenizer:
        tokenizer = load_tokenizer(config.tokenizer)
    else:
        # What the model reads: the prepared articles, and the knowledge texts of the vocabulary's
        # entities with the labels of the relations their facts are stated in (keep_only left only
        # the vocabulary's facts; bounded by the vocabulary, not by
        # the Wikidata dump, whose every label once made the tokenizer follow the dump's size).
        relations = {p for claims in kb.facts.values() for p, _ in claims}
        texts = itertools.chain(
            (text for _, article in iter_documents(work_dir, list(range(len(summaries)))) for text, _ in article["paragraphs"]),
            (text for _, _, label, description, _ in knowledge_rows for text in (label, description) if text),
            (kb.labels[p][lang] for p in sorted(relations) for lang in languages if lang in kb.labels.get(p, {})),
        )
        tokenizer = train_tokenizer(texts, config.tokenizer_vocab_size)
    tokenizer.save_pretrained(str(out / "tokenizer"))
    knowledge = write_knowledge(out, vocab, kb, tokenizer, knowledge_rows, languages, config.knowledge_max_length)
    facts = write_fact_shards(out, vocab, kb, tokenizer, languages, heldout_subjects,
                              ShardJournal(work_dir / "shards-facts.jsonl", digest), config)
    links = link_table(summaries, resolve, vocab)
    write_json(work_dir / "links.json", links)
    write_json(work_dir / "merge.json", {
        "fingerprint": digest, "languages": languages, "entities": len(vocab), "knowledge_texts": knowledge["texts"],
        "composed_knowledge_texts": knowledge["composed"], "facts": facts["samples"], "bad_records": bad.records,
        "shards": {split: [asdict(info) for info in infos] for split, infos in facts["shards"].items()},
        "outputs": {name: _output_hash(out, name) for name in MERGE_OUTPUTS}})
    return False


def write(out: Path, work_dir: Path, summaries: list[dict], config: PrepareConfig, digest: str) -> bool:
    """This slice's text shards (step 3). Returns True where they were finished with these
    settings and inputs by an earlier run, and reused."""
    _stage_record(work_dir / "merge.json", digest, "run the merge stage before writing shards")  # it writes links.json first
    if _finished(work_dir / f"text-{config.slice:03d}.json", digest, out):
        log.info("write: slice %d finished by an earlier run with these settings and inputs, reused", config.slice)
        return True
    links = json.loads((work_dir / "links.json").read_text(encoding="utf-8"))
    tokenizer = load_tokenizer(out / "tokenizer")
    numbers = _slice_numbers(len(summaries), config)
    journal = ShardJournal(work_dir / f"shards-text-{config.slice:03d}.jsonl", digest)
    with _tokenizer_threads(config.workers):
        text = write_text_shards(out, work_dir, dict(enumerate(summaries)), numbers, links, tokenizer, journal,
                                 config.slice * SHARDS_PER_SLICE, config)
    write_json(work_dir / f"text-{config.slice:03d}.json", {
        "fingerprint": digest, "documents": text["documents"], "mentions": text["mentions"],
        "shards": {split: [asdict(info) for info in infos] for split, infos in text["shards"].items()}})
    return False


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


@contextlib.contextmanager
def _pass_bar(paths: list[str], number: int) -> Iterator[Callable[[int], None]]:
    """A bar of the Wikidata files' (compressed) bytes for pass ``number`` of 3, and what moves it."""
    with tqdm(total=sum(os.path.getsize(p) for p in paths), desc=f"wikidata pass {number}/3", unit="B", unit_scale=True,
              disable=None) as bar:
        yield lambda position: bar.update(position - bar.n)


@contextlib.contextmanager
def _journaled(pool: ChunkPool, work_dir: Path, name: str, digest: str) -> Iterator[None]:
    """Pass ``name`` with its chunks journaled, resumed where a killed run's journal ends."""
    before = pool.chunks["journal"]
    with pool.journaled(work_dir, name, digest):
        yield
    if replayed := pool.chunks["journal"] - before:
        log.info("wikidata: %s pass resumed: %d chunks from the journal of an earlier run", name.removeprefix("wikidata-"), replayed)


def _keep_pass(path: Path, record: dict) -> None:
    write_json(path, record, staging=path.with_name(f"{path.name}.{os.getpid()}.tmp"))


def _recorded(path: Path, digest: str) -> dict | None:
    """What an earlier run recorded in ``path`` (a stage, a Wikidata pass), if it ran with these
    settings and inputs (``digest``); None if it did not, or nothing is there."""
    record = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return record if record.get("fingerprint") == digest else None


def _stage_record(path: Path, digest: str, remedy: str) -> dict:
    """What an earlier stage recorded in ``path``; an error saying ``remedy`` if it did not run with
    this run's fingerprint."""
    if (record := _recorded(path, digest)) is None:
        raise FileNotFoundError(f"{path} {'is of other settings' if path.exists() else 'not found'}: {remedy}")
    return record


def write_manifest(out: Path, work_dir: Path, summaries: list[dict], wiki_paths: list[str], data_paths: list[str],
                   config: PrepareConfig, digest: str, tasks: dict[str, dict[str, int]] | None = None) -> dict:
    """Combine what the stages recorded into ``manifest.json`` (step 4); ``tasks``: the transfer
    task files written (task -> file name -> examples), listed under ``tasks``."""
    merged = _stage_record(work_dir / "merge.json", digest, "run the merge stage first")
    texts = [_stage_record(work_dir / f"text-{number:03d}.json", digest, f"run the write stage for slice {number} first")
             for number in range(config.num_slices)]
    shards = {split: [s for t in texts for s in t["shards"][split]] for split in ("train", "val")} | merged["shards"]
    if not any(s["samples"] for s in shards["train"]):
        raise ValueError(f"no training text sample was produced from {sum(s['articles'] for s in summaries)} article(s) "
                         f"(val_fraction {config.val_fraction}): expected articles with text in the dumps and val_fraction below 1")
    documents, mentions = {"train": 0, "val": 0}, {}
    for t in texts:
        for key, value in t["documents"].items():
            documents[key] += value
        for key, value in t["mentions"].items():
            mentions[key] = mentions.get(key, 0) + value
    skipped = [r for s in summaries for r in s["bad_records"]] + merged["bad_records"]
    truncated = [r for s in summaries for r in s.get("truncated", [])]
    # Paths, the output, the slicing and the worker count vary between machines and runs; the
    # manifest of a rebuild must not.
    settings = {key: value for key, value in asdict(config).items() if key not in (*RUN_SETTINGS, "num_slices")}
    settings |= {"wikipedia": [Path(p).name for p in wiki_paths], "wikidata": [Path(p).name for p in data_paths]}
    manifest = {
        "format": 1,
        "inputs": {"wikipedia": [Path(p).name for p in wiki_paths], "wikidata": [Path(p).name for p in data_paths]},
        "config": settings,
        "languages": merged["languages"],
        "hashes": {"tokenizer": directory_sha256(out / "tokenizer"), "entity_vocab": file_sha256(out / "entity_vocab.jsonl"),
                   "knowledge": directory_sha256(out / "knowledge")},
        "counts": {"pages": sum(s["pages"] for s in summaries), "articles": sum(s["articles"] for s in summaries),
                   "documents": documents, "mentions": mentions, "entities": merged["entities"],
                   "knowledge_texts": merged["knowledge_texts"], "composed_knowledge_texts": merged["composed_knowledge_texts"],
                   "facts": merged["facts"], "skipped_records": len(skipped), "truncated_inputs": len(truncated)},
        "shards": shards,
    }
    if tasks is not None:
        manifest["tasks"] = tasks
    write_json(out / "manifest.json", manifest, indent=1)
    listed = {shard["name"] for split in shards.values() for shard in split}
    for path in sorted(out.iterdir()):
        if SHARD_NAME.fullmatch(path.name) and path.name not in listed:
            path.unlink()
            log.info("removed %s: a shard of an earlier run with other settings", path)
    if truncated:
        log.warning("%d input(s) cut short, only the pages before the cut are in the dataset: %s", len(truncated), "; ".join(truncated))
    if skipped:
        log.warning("%d malformed record(s) skipped; first: %s", len(skipped), skipped[0])
    return manifest


def check_inputs(config: PrepareConfig, wiki_paths: list[str], data_paths: list[str]) -> None:
    """What can be checked before hours of parsing: the language list against the dumps' languages,
    and the head of every Wikidata file (an empty or wrong file; under ``strict``, any malformed line)."""
    if config.languages:
        dump_languages = {site.language for path in wiki_paths if (site := read_site(path)) is not None}
        if dump_languages and not dump_languages & set(config.languages):
            raise ValueError(f"languages {config.languages}: none is the language of a Wikipedia dump given ({', '.join(sorted(dump_languages))}), "
                             "so no text would have labels, facts or knowledge texts; list some of those, or leave languages out for all of them")
        if others := sorted(set(config.languages) - dump_languages):
            log.info("languages without a Wikipedia dump, kept for labels and facts only: %s", ", ".join(others))
    if config.stage in ("all", "parse", "merge"):
        for path in data_paths:
            check_wikidata_head(path, config.strict, config.accept_bad_wikidata)


def prepare(config: PrepareConfig) -> dict | None:
    """Run ``config.stage`` (``all``: every stage in order); returns the manifest once written."""
    started = time.perf_counter()
    wiki_paths = expand_inputs(config.wikipedia)
    data_paths = expand_inputs(config.wikidata) if config.wikidata else []
    out = Path(config.out)
    _check_output_dir(out)
    work_dir = out / ".work"
    work_dir.mkdir(exist_ok=True)
    if config.stage == "all" and config.num_slices != 1:
        raise ValueError("stage 'all' runs on one machine: leave num_slices at 1, or run the stages one by one")
    check_inputs(config, wiki_paths, data_paths)
    values = fingerprint(config, wiki_paths, data_paths)
    record_fingerprint(out, work_dir, values)
    digest, parse_digest = hash_of(values), hash_of({key: values[key] for key in PARSE_SETTINGS})
    stages = ["parse", "merge", "write", "manifest"] if config.stage == "all" else [config.stage]
    manifest = None
    reused = []  # stages an earlier run finished with these settings and inputs
    for stage in stages:
        if stage == "parse":
            numbers = _slice_numbers(len(wiki_paths), config)
            if all(read_summary(work_dir, i, parse_digest) is not None for i in numbers):
                reused.append(stage)
            parse_dumps(wiki_paths, numbers, work_dir, config.max_pages, config.workers, config.strict, parse_digest,
                        config.title_mentions)
            continue
        summaries = _summaries(work_dir, len(wiki_paths), parse_digest, links=stage == "merge")
        if stage == "merge":
            if merge(out, work_dir, summaries, data_paths, config, digest):
                reused.append(stage)
        elif stage == "write":
            if write(out, work_dir, summaries, config, digest):
                reused.append(stage)
        else:
            tasks = None
            if config.transfer_tasks:
                last = _stage_record(work_dir / "wikidata-last.json", digest, "run the merge stage first")
                tasks = prepare_transfer_tasks(out, work_dir, summaries, data_paths, KnowledgeBase.from_json(last["knowledge_base"]), config)
            manifest = write_manifest(out, work_dir, summaries, wiki_paths, data_paths, config, digest, tasks)
            shards = manifest["shards"]
            log.info("done in %.1f s: %d entities, %d train / %d val text samples, facts %s; peak memory %.0f MiB",
                     time.perf_counter() - started, manifest["counts"]["entities"], sum(s["samples"] for s in shards["train"]),
                     sum(s["samples"] for s in shards["val"]), manifest["counts"]["facts"], peak_memory_mib())
    if reused:
        log.info("stages reused from an earlier run: %s", ", ".join(reused))
    return manifest

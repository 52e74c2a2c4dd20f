"""``prepare``: Wikipedia and Wikidata dumps to an entity vocabulary, a tokenizer and shards.

The flow, each step resumable (a finished dump or shard is never redone: cached_steps.py):
1. ``parse`` (parse.py) each Wikipedia dump -> parsed articles, redirects and link counts in ``.work/``.
2. ``merge`` (merge.py): Wikidata -> labels, descriptions, sitelinks, facts; links resolved and
   counted over all languages -> entity vocabulary; tokenizer (a local one, or trained on the parsed
   text); knowledge texts (knowledge_texts.py); fact shards (fact_shards.py); the link table.
3. ``write`` (write.py) the text shards (train/val by document hash).
4. ``manifest`` (manifest.py): shard list, counts, config and hashes; under ``transfer_tasks``, first
   the silver transfer tasks from the parsed articles' anchors (silver_tasks.py).
``all`` runs them in order on one machine. For dumps that outgrow one machine, a SLURM array runs
``parse`` and ``write`` per slice and one job runs ``merge`` and ``manifest`` (docs/PREPARE.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import time
from dataclasses import asdict
from pathlib import Path

from lightning_kg.dataset.files import write_json
from lightning_kg.prepare.cached_steps import keep, required
from lightning_kg.prepare.config import RUN_SETTINGS, PrepareConfig
from lightning_kg.prepare.dumps import expand_inputs
from lightning_kg.prepare.knowledge_base import KnowledgeBase
from lightning_kg.prepare.manifest import write_manifest
from lightning_kg.prepare.mediawiki import read_site
from lightning_kg.prepare.merge import merge
from lightning_kg.prepare.parse import WORKER_PEAK_MIB, parse_dumps, read_summary, work_file
from lightning_kg.prepare.silver_tasks import prepare_transfer_tasks
from lightning_kg.prepare.wikidata import check_wikidata_head
from lightning_kg.prepare.write import write

log = logging.getLogger("lightning_kg.prepare")
# What the parse stage's output depends on; the later stages depend on every setting.
PARSE_SETTINGS = ("wikipedia", "max_pages", "title_mentions")


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

    A parsed dump is redone only when its inputs or ``PARSE_SETTINGS`` changed; shards and the rest
    whenever any setting did (cached_steps.py).
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
    reused, seconds = [], {}  # the stages an earlier run had finished; each stage's wall time
    for stage in stages:
        stage_started = time.perf_counter()
        finished_before = False  # whether an earlier run finished the stage with these settings and inputs
        if stage == "parse":
            numbers = config.slice_numbers(len(wiki_paths))
            finished_before = all(read_summary(work_dir, i, parse_digest) is not None for i in numbers)
            parse_dumps(wiki_paths, numbers, work_dir, config.max_pages, config.workers, config.strict, parse_digest,
                        config.title_mentions)
        else:
            summaries = _summaries(work_dir, len(wiki_paths), parse_digest, links=stage == "merge")
        if stage == "merge":
            finished_before = merge(out, work_dir, summaries, data_paths, config, digest)
        elif stage == "write":
            finished_before = write(out, work_dir, summaries, config, digest)
        elif stage == "manifest":
            tasks = None
            if config.transfer_tasks:
                last = required(work_dir / "wikidata-last.json", digest, "run the merge stage first")
                tasks = prepare_transfer_tasks(out, work_dir, summaries, data_paths, KnowledgeBase.from_json(last["knowledge_base"]), config)
            manifest = write_manifest(out, work_dir, summaries, wiki_paths, data_paths, config, digest, tasks)
            shards = manifest["shards"]
            log.info("done in %.1f s: %d entities, %d train / %d val text samples, facts %s; peak memory %.0f MiB",
                     time.perf_counter() - started, manifest["counts"]["entities"], sum(s["samples"] for s in shards["train"]),
                     sum(s["samples"] for s in shards["val"]), manifest["counts"]["facts"], peak_memory_mib())
        reused += [stage] if finished_before else []
        seconds[stage] = time.perf_counter() - stage_started
    # What a bench reads of a run (bench/prepare_speed.py): the wall seconds of each stage the last run here ran.
    keep(work_dir / "timings.json", seconds)
    if reused:
        log.info("stages reused from an earlier run: %s", ", ".join(reused))
    return manifest

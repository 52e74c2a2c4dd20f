"""The parse stage of ``prepare``: Wikipedia dumps -> parsed articles in ``.work/``, with redirects and link counts.

With ``workers`` > 1 the work is spread two ways, both writing the same bytes as one process:
- at least as many dump files as workers: one process parses a whole file at a time;
- fewer files (a language's single multi-GB dump): the files in turn, this process reading the
  pages (decompression and XML) while the chunk pool (chunk_pool.py, as for Wikidata) parses their
  wikitext in chunks, taken back in page order.
A dump whose summary exists with this run's fingerprint was finished by an earlier run (or another
slice) and is not parsed again.
"""

from __future__ import annotations

import fnmatch
import gzip
import itertools
import json
import logging
import multiprocessing
import os
import queue
import resource
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from lightning_kg.dataset.files import atomic_file, write_json
from lightning_kg.prepare.cached_steps import recorded
from lightning_kg.prepare.chunk_pool import ChunkPool
from lightning_kg.prepare.dumps import BadRecords
from lightning_kg.prepare.mediawiki import Page, iter_pages, read_site
from lightning_kg.prepare.namespaces import Namespaces, canonical_title
from lightning_kg.prepare.wikitext import parse_wikitext

log = logging.getLogger("lightning_kg.prepare")
CHUNK_PAGES = 64  # pages a pool task parses at once: few enough to keep the bar moving
CHUNK_CHARS = 1 << 20  # or this much wikitext
PROGRESS_EVERY = 16  # pages between a worker process's progress reports
# Peak resident memory of each parse worker process of this run, MiB by pid: prepare reports the
# sum with its own, since the processes run side by side.
WORKER_PEAK_MIB: dict[int, float] = {}


def _note_worker_peak(pid: int, peak: float) -> None:
    WORKER_PEAK_MIB[pid] = max(peak, WORKER_PEAK_MIB.get(pid, 0.0))


@dataclass(frozen=True)
class DumpJob:
    """One dump to parse: its number (position among the inputs), path, work file and article cap,
    and whether each article's lead names its subject as a mention of the page (``title_mentions``)."""

    number: int
    path: str
    target: str
    max_articles: int | None
    title_mentions: bool = False


def own_peak_mib() -> float:
    """Peak resident memory of this process, MiB. Linux's VmHWM where there is one: a spawned
    worker's ru_maxrss starts at its parent's peak (the kernel keeps it across exec), which would
    count the parent twice."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def page_limit(path: str, max_pages: int | dict[str, int] | None) -> int | None:
    """The article cap that ``max_pages`` sets for this dump file."""
    if not isinstance(max_pages, dict):
        return max_pages
    return next((limit for pattern, limit in max_pages.items() if fnmatch.fnmatch(Path(path).name, pattern)), None)


def article_record(title: str, wikitext: str, namespaces: Namespaces, title_mentions: bool = False) -> tuple[bytes | None, list[str]]:
    """An article's work-file line (None when no paragraph is left) and its links' targets; with
    ``title_mentions``, the lead's first bold text links to the article itself."""
    paragraphs, targets = [], []
    for paragraph in parse_wikitext(wikitext, namespaces, title if title_mentions else None):
        mentions = [(m.start, m.end, m.title) for m in paragraph.mentions]
        targets.extend(target for _, _, target in mentions)
        paragraphs.append([paragraph.text, mentions])
    if not paragraphs:
        return None, targets
    return json.dumps({"title": title, "paragraphs": paragraphs}, ensure_ascii=False).encode("utf-8") + b"\n", targets


def _parse_chunk(articles: list[tuple[str, str]], namespaces: Namespaces,
                 title_mentions: bool) -> tuple[list[tuple[bytes | None, list[str]]], int, float]:
    """Pool task: records of (title, wikitext) articles, with the worker's pid and peak memory."""
    return [article_record(title, text, namespaces, title_mentions) for title, text in articles], os.getpid(), own_peak_mib()


def _article_title(page: Page) -> str | None:
    """The normalised title of a main-namespace page that is not a redirect; None otherwise."""
    if page.namespace != 0 or page.redirect is not None:
        return None
    return canonical_title(page.title) or None


def _parsed_pages(pages: Iterator[Page], namespaces: Namespaces, pool: ChunkPool | None,
                  title_mentions: bool) -> Iterator[tuple[Page, tuple[bytes | None, list[str]] | None]]:
    """Each page with its article record (None for pages that are not articles), in dump order.

    Without a pool each article is parsed when its turn comes. With one, chunks of articles are
    parsed ahead (:meth:`ChunkPool.ordered`) and their records taken back in dump order, so the
    output does not depend on which process was faster.
    """
    if pool is None:
        for page in pages:
            title = _article_title(page)
            yield page, article_record(title, page.text, namespaces, title_mentions) if title else None
        return
    batches: deque[list[Page]] = deque()  # the chunks' pages, in the order of their results

    def tasks() -> Iterator[tuple]:
        batch, articles, chars = [], [], 0
        for page in itertools.chain(pages, [None]):
            if page is not None:
                title = _article_title(page)
                batch.append(Page(page.title, page.namespace, "", page.redirect, page.location))  # the text goes to the pool
                if title:
                    articles.append((title, page.text))
                    chars += len(page.text)
            if batch and (page is None or len(batch) >= CHUNK_PAGES or chars >= CHUNK_CHARS):
                batches.append(batch)
                yield articles, namespaces, title_mentions
                batch, articles, chars = [], [], 0

    for records, pid, peak in pool.ordered(_parse_chunk, tasks()):
        if pid != os.getpid():
            _note_worker_peak(pid, peak)
        records = iter(records)
        for page in batches.popleft():
            yield page, next(records) if _article_title(page) else None


def parse_dump(job: DumpJob, fingerprint: str, strict: bool, progress: Callable[[int], None], pool: ChunkPool | None = None) -> dict:
    """Parse one dump into ``job.target`` (gzip JSON lines, one article each); return its summary.

    ``progress`` is told of every page as it is read; ``pool`` parses the wikitext when given. The summary (site and language, redirects,
    raw link counts, skipped records, the run's ``fingerprint``) is saved beside the work file;
    its presence marks the dump as done for a restarted run with the same fingerprint.
    """
    site = read_site(job.path)
    if site is None:
        raise ValueError(f"{job.path}: cannot tell the dump's wiki (expected <mediawiki xml:lang> or <dbname> in <siteinfo>)")
    bad = BadRecords(strict)
    redirects: dict[str, str] = {}
    link_counts: Counter = Counter()
    articles = pages = 0
    partial = job.target + ".partial"
    # compresslevel 1: a scratch file read once by the next stage; level 9 costs a third of the parse time.
    with atomic_file(job.target, staging=partial) as stream, gzip.GzipFile(fileobj=stream, mode="wb", compresslevel=1, mtime=0) as raw:
        for page, record in _parsed_pages(iter_pages(job.path, on_error=bad), site.namespaces, pool, job.title_mentions):
            pages += 1
            progress(1)
            if page.namespace != 0:
                continue
            if page.redirect is not None:
                # "" for a redirect out of the main namespace (English Wikipedia's MOS:BOLD): links to it name no entity.
                if title := canonical_title(page.title):
                    redirects[title] = page.redirect
                continue
            if record is None:  # an empty title
                continue
            if job.max_articles is not None and articles >= job.max_articles:
                break
            line, targets = record
            link_counts.update(targets)
            if line is not None:
                articles += 1
                raw.write(line)
    summary = {"path": job.path, "site": site.site, "lang": site.language, "pages": pages, "articles": articles,
               "redirects": redirects, "link_counts": dict(link_counts), "bad_records": bad.records, "truncated": bad.truncated,
               "fingerprint": fingerprint}
    write_json(Path(job.target + ".summary.json"), summary)  # a kill mid-write leaves no summary that reads as finished
    return summary


_progress_queue = None


def _init_worker(progress_queue) -> None:
    global _progress_queue
    _progress_queue = progress_queue


def _parse_whole_dump(job: DumpJob, fingerprint: str, strict: bool) -> tuple[dict, int, float]:
    """Pool task: one dump parsed in a worker, reporting pages to the parent every ``PROGRESS_EVERY``."""
    unreported = 0

    def progress(count: int) -> None:
        nonlocal unreported
        unreported += count
        if unreported >= PROGRESS_EVERY:
            _progress_queue.put(unreported)
            unreported = 0

    summary = parse_dump(job, fingerprint, strict, progress)
    _progress_queue.put(unreported)
    return summary, os.getpid(), own_peak_mib()


def work_file(work_dir: Path, number: int) -> Path:
    return work_dir / f"docs-{number:04d}.jsonl.gz"


def read_summary(work_dir: Path, number: int, fingerprint: str) -> dict | None:
    """The summary of dump ``number`` if it was parsed with this ``fingerprint``, else None."""
    target = work_file(work_dir, number)
    return recorded(Path(f"{target}.summary.json"), fingerprint) if target.exists() else None


def parse_dumps(paths: list[str], numbers: list[int], work_dir: Path, max_pages, workers: int, strict: bool,
                fingerprint: str, title_mentions: bool = False) -> dict[int, dict]:
    """Parse the dumps ``numbers`` (indices into ``paths``), reusing those finished with this fingerprint."""
    jobs, summaries = [], {}
    for i in numbers:
        if (summary := read_summary(work_dir, i, fingerprint)) is not None:
            summaries[i] = summary
            log.info("%s: parsed by an earlier run, reused", paths[i])
        else:
            jobs.append(DumpJob(i, paths[i], str(work_file(work_dir, i)), page_limit(paths[i], max_pages), title_mentions))
    start = time.perf_counter()
    with tqdm(desc="parse", unit="page", disable=None) as bar:
        if workers <= 1:
            for job in jobs:
                summaries[job.number] = parse_dump(job, fingerprint, strict, bar.update)
        elif len(jobs) >= workers:
            summaries |= _parse_files_in_parallel(jobs, workers, fingerprint, strict, bar)
        elif jobs:
            with ChunkPool(workers, work_dir, shared_chunks=False) as pool:
                for job in jobs:
                    summaries[job.number] = parse_dump(job, fingerprint, strict, bar.update, pool)
    elapsed = time.perf_counter() - start
    if jobs:
        pages = sum(summaries[job.number]["pages"] for job in jobs)
        log.info("parsed %d pages in %.1f s (%.0f pages/s)", pages, elapsed, pages / max(elapsed, 1e-9))
    return summaries


def _parse_files_in_parallel(jobs: list[DumpJob], workers: int, fingerprint: str, strict: bool, bar) -> dict[int, dict]:
    """One dump file per worker at a time; the bar follows the pages the workers report."""
    context = multiprocessing.get_context("spawn")
    progress = context.Queue()
    summaries, reported = {}, 0

    def report(timeout: float) -> bool:
        nonlocal reported
        try:
            count = progress.get(timeout=timeout)
        except queue.Empty:
            return False
        bar.update(count)
        reported += count
        return True

    with context.Pool(workers, initializer=_init_worker, initargs=(progress,)) as pool:
        pending = {job.number: pool.apply_async(_parse_whole_dump, (job, fingerprint, strict)) for job in jobs}
        while pending:
            report(timeout=0.2)
            for number in [n for n, result in pending.items() if result.ready()]:
                summaries[number], pid, peak = pending.pop(number).get()
                _note_worker_peak(pid, peak)
        # A worker's last report can reach the queue after its result (the queue's feeder thread
        # sends it): wait for every page the summaries count, not only for what is there now.
        expected = sum(summary["pages"] for summary in summaries.values())
        while reported < expected and report(timeout=30):
            pass
    return summaries


def iter_documents(work_dir: Path, numbers: list[int]) -> Iterator[tuple[int, dict]]:
    """Parsed articles of the dumps ``numbers``, in input order, as (dump number, article)."""
    for i in numbers:
        with gzip.open(work_file(work_dir, i), "rt", encoding="utf-8") as lines:
            for line in lines:
                yield i, json.loads(line)

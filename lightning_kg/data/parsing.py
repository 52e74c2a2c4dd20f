"""Step 2 of ``prepare``: Wikipedia dumps -> parsed articles in ``.work/``, with redirects and link counts.

One process per dump file with ``workers`` > 1; a dump whose summary exists was finished by an
earlier run (or another slice) and is not parsed again.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import logging
import multiprocessing
import os
import queue
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from lightning_kg.data.dumps import BadRecord, DumpError
from lightning_kg.data.mediawiki import iter_pages, site_language
from lightning_kg.data.wikitext import normalize_title, parse_wikitext

log = logging.getLogger("lightning_kg.prepare")


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


_progress_queue = None


def _init_worker(progress_queue) -> None:
    global _progress_queue
    _progress_queue = progress_queue


def page_limit(path: str, max_pages: int | dict[str, int] | None) -> int | None:
    """The article cap that ``max_pages`` sets for this dump file."""
    if not isinstance(max_pages, dict):
        return max_pages
    return next((limit for pattern, limit in max_pages.items() if fnmatch.fnmatch(Path(path).name, pattern)), None)


def parse_dump(path: str, target: str, max_pages: int | None, strict: bool) -> dict:
    """Parse one dump into ``target`` (gzip JSON lines, one article each); return its summary.

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
    partial = target + ".partial"
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
    os.replace(partial, target)
    summary = {"path": path, "lang": lang, "pages": pages, "articles": articles, "redirects": redirects,
               "link_counts": dict(link_counts), "bad_records": bad.records}
    Path(target + ".summary.json").write_text(json.dumps(summary, ensure_ascii=False), encoding="utf-8")
    return summary


def work_file(work_dir: Path, number: int) -> Path:
    return work_dir / f"docs-{number:04d}.jsonl.gz"


def parse_dumps(paths: list[str], numbers: list[int], work_dir: Path, max_pages, workers: int, strict: bool) -> dict[int, dict]:
    """Parse the dumps ``numbers`` (indices into ``paths``), reusing summaries of finished ones."""
    jobs, summaries = [], {}
    for i in numbers:
        path = paths[i]
        target = str(work_file(work_dir, i))
        summary_file = Path(target + ".summary.json")
        if summary_file.exists() and Path(target).exists():
            summaries[i] = json.loads(summary_file.read_text(encoding="utf-8"))
            log.info("%s: parsed by an earlier run, reused", path)
        else:
            jobs.append((i, path, target))
    start = time.perf_counter()
    pages = 0
    with tqdm(desc="parse", unit="page", disable=None) as bar:
        if workers <= 1 or len(jobs) <= 1:
            _init_worker(None)
            for i, path, target in jobs:
                summaries[i] = parse_dump(path, target, page_limit(path, max_pages), strict)
                bar.update(summaries[i]["pages"])
        else:
            context = multiprocessing.get_context("spawn")
            progress = context.Queue()
            with context.Pool(workers, initializer=_init_worker, initargs=(progress,)) as pool:
                pending = {i: pool.apply_async(parse_dump, (path, target, page_limit(path, max_pages), strict))
                           for i, path, target in jobs}
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
    return summaries


def iter_documents(work_dir: Path, numbers: list[int]) -> Iterator[tuple[int, dict]]:
    """Parsed articles of the dumps ``numbers``, in input order, as (dump number, article)."""
    for i in numbers:
        with gzip.open(work_file(work_dir, i), "rt", encoding="utf-8") as lines:
            for line in lines:
                yield i, json.loads(line)

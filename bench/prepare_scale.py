"""``prepare`` at three dump sizes, stage by stage, and what that makes of the full dumps.

Synthetic dumps in the real formats (lightning_kg.recipes.synthetic_dumps: Wikidata JSON lines with
labels, descriptions and aliases in 12 languages, 5-20 item claims with references and sitelinks;
English and German pages-articles XML with links and redirects) at three Wikidata sizes and a fixed
number of articles, so the entity vocabulary stays the same while the dump grows. Each stage runs
as its own subprocess, parse and merge with 1 and with 2 workers (write and manifest take none); its wall time, CPU time (user + system of it and its
children) and peak resident memory (ru_maxrss) come from wait4.

Also: lines per CPU second of gzip decompression and of each JSON decoder (json, msgspec, orjson
where installed) on the largest dump.

Extrapolation: the Wikidata passes' CPU per entity (the merge records it in .work/merge.json), the merge's memory per dump
entity as the slope between the smallest and the largest size, and the per-article costs of parse
and write less the start-up, multiplied by the full dumps' counts, divided by the cores a stage can
use; the assumptions are printed with the figures.

    python bench/prepare_scale.py --quick
    python bench/prepare_scale.py --quick --passes-only --pass-workers 2 4 8 15   # on a machine of 16 cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import record

from lightning_kg.recipes.synthetic_dumps import write_synthetic_dumps

STAGES = ["parse", "merge", "write", "manifest"]
SIZES = {"quick": ([3000, 6000, 12000], 400), "full": ([20000, 100000, 300000], 2000)}  # entities, pages per wiki
LINK_TARGETS = {"quick": [100_000, 200_000, 400_000], "full": [250_000, 500_000, 1_000_000]}
# The full dumps (assumptions, printed): Wikidata latest-all, mLUKE's 24 Wikipedias, one node.
FULL_ENTITIES = 110e6
FULL_ARTICLES = 40e6  # articles of the 24 Wikipedias together (English about 6.9M)
FULL_PAGES = 75e6  # pages, redirects included (English alone about 17M)
FULL_LINK_TARGETS = 1.1 * FULL_ARTICLES  # (wiki, title) pairs linked to: nearly every article, and red links
NODE_CORES, NODE_GIB = 64, 256


def run_stage(dumps: Path, out: Path, stage: str, workers: int) -> dict:
    """One stage as a subprocess: wall s, CPU s, peak MiB."""
    command = [sys.executable, "-m", "lightning_kg", "prepare", "--wikipedia", f"[{dumps}/enwiki-synthetic-pages-articles.xml.bz2,"
               f"{dumps}/dewiki-synthetic-pages-articles.xml.bz2]", "--wikidata", str(dumps / "wikidata-synthetic-all.json.gz"),
               "--out", str(out), "--stage", stage, "--workers", str(workers), "--tokenizer_vocab_size", "8000",
               "--max_seq_length", "128", "--min_entity_count", "2"]
    start = time.perf_counter()
    with open(out.with_suffix(".log"), "a") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(command)} failed:\n{out.with_suffix('.log').read_text()[-3000:]}")
    figures = {"wall": time.perf_counter() - start, "cpu": usage.ru_utime + usage.ru_stime, "peak": usage.ru_maxrss / 1024}
    if stage == "merge":
        # The merge's own figures, from its record: its Wikidata passes alone (CPU of the main
        # process, which with workers decompresses and hands out the chunks, and wall time).
        passes = json.loads((out / ".work" / "merge.json").read_text())["wikidata_passes"]
        figures["wikidata_cpu"], figures["wikidata_wall"] = passes["cpu_s"], passes["wall_s"]
    return figures


def startup_cpu() -> float:
    """CPU seconds a stage spends before any work: Python and the imports (torch, transformers)."""
    before = os.times()
    subprocess.run([sys.executable, "-c", "import lightning_kg.prepare.pipeline"], check=True)
    after = os.times()
    return after.children_user + after.children_system - before.children_user - before.children_system


def decoder_speeds(path: Path, lines: int = 2000) -> dict[str, float]:
    """Lines per CPU second of each way to read the dump: decompression alone, then decoders of a line."""
    import gzip
    import json

    import msgspec

    from lightning_kg.prepare.dumps import line_chunks
    from lightning_kg.prepare.wikidata import HEAD_DECODER

    start = time.process_time()
    with gzip.open(path) as stream:
        count = sum(1 for _ in stream)
    speeds = {"gzip decompression (stdlib, by line)": count / (time.process_time() - start)}
    start = time.process_time()
    count = sum(len(chunk.lines()) - 1 for chunk in line_chunks(path))
    speeds["ISA-L decompression, split in 4 MiB chunks (prepare's)"] = count / (time.process_time() - start)
    with gzip.open(path) as stream:
        sample = [raw.rstrip(b",\n") for _, raw in zip(range(lines + 1), stream)][1:]
    decoders = {"json.loads": json.loads, "msgspec.json.decode": msgspec.json.Decoder().decode,
                "msgspec id + kind + raw sitelinks (first pass)": HEAD_DECODER.decode}
    try:
        import orjson

        decoders["orjson.loads"] = orjson.loads
    except ImportError:
        pass
    for name, decode in decoders.items():
        start = time.process_time()
        for line in sample:
            decode(line)
        speeds[name] = len(sample) / (time.process_time() - start)
    return speeds


def wikidata_passes(dump: Path, work_dir: Path, workers: int, rounds: int = 2) -> dict:
    """The merge's three Wikidata passes alone, in this process, on the wikis parsed into
    ``work_dir``: the best of ``rounds`` (wall s, CPU s of this process and of the workers) after
    the workers have started, which a real merge pays once (about a second) for hours of passes. The
    vocabulary is every linked item (the merge's cut by mention count is left out)."""
    from lightning_kg.prepare.chunk_pool import ChunkPool
    from lightning_kg.prepare.knowledge_base import KnowledgeBase
    from lightning_kg.prepare.merge import linked_targets
    from lightning_kg.prepare.wikidata import iter_labels

    summaries = [json.loads(path.read_text()) for path in sorted(work_dir.glob("*.summary.json"))]
    linked, sites = linked_targets(summaries), {s["site"]: s["lang"] for s in summaries}
    languages = set(sites.values())
    best = {"wall": float("inf")}
    with ChunkPool(workers, work_dir) as pool:
        list(iter_labels(dump, set(), pool))  # the workers start and import
        for _ in range(rounds):
            pids = _worker_pids()
            before = [_process_cpu(pid) for pid in pids]
            chunks = dict(pool.chunks)
            start = time.perf_counter(), time.process_time()
            kb = KnowledgeBase.from_dumps([str(dump)], languages, sites, on_error=lambda record: None, linked=linked, pool=pool)
            vocabulary = set(kb.titles)
            kb.add_items([str(dump)], vocabulary, languages, pool)
            kb.add_labels([str(dump)], kb.keep_only(vocabulary), languages, pool)
            wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
            workers_cpu = sum(_process_cpu(pid) - start_cpu for pid, start_cpu in zip(pids, before))
            here, sent = (pool.chunks[where] - chunks[where] for where in ("here", "workers"))
            if wall < best["wall"]:
                # The reading's own CPU: this process's (its reading thread's included), less the
                # chunks it decoded itself at the workers' CPU per chunk.
                reading = cpu - (here * workers_cpu / sent if sent else 0)
                best = {"wall": wall, "cpu": cpu, "workers_cpu": workers_cpu, "decoded_here": here / max(here + sent, 1), "reading_cpu": reading}
        # The reading alone, as fast as it goes when the workers keep up (they only count lines):
        # the decompressing thread and the handing out overlap, so its wall time is the bound from below.
        start = time.perf_counter()
        list(pool.map_lines(_count_lines, dump))
        best["reading_wall"] = 3 * (time.perf_counter() - start)  # three passes
    return best


def journal_costs(dump: Path, work_dir: Path) -> dict:
    """The three passes (1 worker) plain and journaled as the merge runs them (:mod:`chunk_journal`),
    the journals' bytes, and the time to replay them whole: what a rerun after a kill at the end of
    the passes spends instead of decoding them again."""
    import contextlib
    import shutil

    from lightning_kg.prepare.chunk_pool import ChunkPool
    from lightning_kg.prepare.knowledge_base import KnowledgeBase
    from lightning_kg.prepare.merge import linked_targets

    summaries = [json.loads(path.read_text()) for path in sorted(work_dir.glob("*.summary.json"))]
    linked, sites = linked_targets(summaries), {s["site"]: s["lang"] for s in summaries}
    languages = set(sites.values())
    journals = work_dir.parent / "journals"
    shutil.rmtree(journals, ignore_errors=True)
    journals.mkdir()

    def passes(pool: ChunkPool, journaled: bool) -> float:
        start = time.perf_counter()
        context = (lambda name: pool.journaled(journals, name, "bench")) if journaled else (lambda name: contextlib.nullcontext())
        with context("first"):
            kb = KnowledgeBase.from_dumps([str(dump)], languages, sites, on_error=lambda record: None, linked=linked, pool=pool)
        vocabulary = set(kb.titles)
        with context("items"):
            kb.add_items([str(dump)], vocabulary, languages, pool)
        with context("labels"):
            kb.add_labels([str(dump)], kb.keep_only(vocabulary), languages, pool)
        return time.perf_counter() - start

    with ChunkPool(1, work_dir) as pool:
        plain = min(passes(pool, False) for _ in range(2))
        journaled = passes(pool, True)
        size = sum(path.stat().st_size for path in journals.glob("*.journal"))
        replay = passes(pool, True)  # every journal complete: replayed, the dump not read
    shutil.rmtree(journals)
    return {"plain": plain, "journaled": journaled, "bytes": size, "replay": replay}


def _count_lines(chunk) -> int:
    """A worker task that does next to nothing: what is left is the reading and the handing out."""
    from lightning_kg.prepare import chunk_pool

    return len(chunk.lines(chunk_pool.SLOTS))


def link_target_memory(targets: int) -> dict:
    """What the merge holds per link target of the wikis, whatever the dump: the parse summaries'
    link counts and redirects, the set of (site, title) that selects the first pass's items, and
    that pass's knowledge base (an item per target, each with its sitelink), as tracemalloc counts
    them; and the cost of keeping that knowledge base in .work/ as JSON and reading it back."""
    import tracemalloc

    from lightning_kg.prepare.knowledge_base import KnowledgeBase
    from lightning_kg.prepare.merge import linked_targets
    from lightning_kg.prepare.namespaces import canonical_title

    wikis = [("enwiki", "en"), ("dewiki", "de")]
    per_wiki = targets // len(wikis)
    texts = [json.dumps({"site": site, "lang": lang, "redirects": {f"Other name {n:08d}": f"Page title {n:08d}" for n in range(0, per_wiki, 10)},
                         "link_counts": {f"Page title {n:08d}": 1 + n % 50 for n in range(per_wiki)}}) for site, lang in wikis]
    tracemalloc.start()
    summaries = [json.loads(text) for text in texts]
    held = {"summaries": tracemalloc.get_traced_memory()[0]}
    linked = linked_targets(summaries)
    held["linked"] = tracemalloc.get_traced_memory()[0] - held["summaries"]
    kb = KnowledgeBase()
    for index, (site, title) in enumerate(sorted(linked)):
        item = f"Q{index % per_wiki + 1}"  # the same item in both wikis, as sitelinks join them
        kb.sitelinks[(site, canonical_title(title))] = item
        kb.titles.setdefault(item, {})[dict(wikis)[site]] = title
    held["first pass"] = tracemalloc.get_traced_memory()[0] - held["summaries"] - held["linked"]
    tracemalloc.stop()
    start = time.perf_counter()
    text = json.dumps(kb.to_json())
    written = time.perf_counter() - start
    start = time.perf_counter()
    KnowledgeBase.from_json(json.loads(text))
    return {"bytes": {name: value / targets for name, value in held.items()}, "json_bytes": len(text) / targets,
            "json_write_s": written, "json_read_s": time.perf_counter() - start}


def _worker_pids() -> list[int]:
    """This process's children: the chunk pool's workers, while a pool is open."""
    import psutil

    return [child.pid for child in psutil.Process().children()]


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def slope(results: dict, sizes: list[int], workers: int, stage: str, key: str) -> float:
    """Cost per entity between the smallest and the largest size."""
    low, high = results[(sizes[0], workers)][stage][key], results[(sizes[-1], workers)][stage][key]
    return (high - low) / (sizes[-1] - sizes[0])


def passes_inputs(scratch: Path, largest: int, entities: int, pages: int) -> tuple[Path, Path]:
    """(the Wikidata dump of ``entities`` that the passes alone read, the work directory of the wikis
    parsed at the ``largest`` size). The same wikis link into a dump of any size (the linked items are
    the first 3 x pages), so the largest size's parse serves; it is run here when no stage ran it."""
    work_dir = scratch / f"out-{largest}-1" / ".work"
    if not work_dir.is_dir():
        dumps = scratch / f"dumps-{largest}"
        write_synthetic_dumps(dumps, largest, pages)
        run_stage(dumps, work_dir.parent, "parse", 1)
    big_dumps = scratch / f"dumps-{entities}"
    write_synthetic_dumps(big_dumps, entities, pages)
    return big_dumps / "wikidata-synthetic-all.json.gz", work_dir


def report_passes(passes: dict[int, dict], entities: int) -> None:
    """A line and a results.csv row per worker count, against one process in the same run."""
    print(f"\n  the Wikidata passes alone, {entities} entities, workers started, machine {os.cpu_count()} cores:")
    for workers, figures in passes.items():
        scaling = passes[1]["wall"] / figures["wall"]
        print(f"  {workers:3d} worker(s): {figures['wall']:.2f} s wall, {scaling:.2f}x of 1; main process {figures['cpu']:.2f} CPU s, "
              f"decoding {figures['decoded_here']:.0%} of the chunks itself; workers {figures['workers_cpu']:.2f} CPU s")
        if workers > 1:
            record("cpu", f"prepare Wikidata passes wall, {workers} workers vs 1, synthetic {entities}", figures["wall"],
                   passes[1]["wall"], scaling, 2, ())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"sizes {SIZES['quick']} instead of {SIZES['full']}")
    parser.add_argument("--pass-workers", type=int, nargs="+", default=[2], metavar="N",
                        help="worker counts the Wikidata passes alone run with, beside 1 (default: 2; on a machine with more "
                             "cores, e.g. 2 4 8 15, to see how they scale)")
    parser.add_argument("--passes-only", action="store_true",
                        help="only parse the wikis once and time the Wikidata passes alone at 1 and each --pass-workers count")
    args = parser.parse_args()
    sizes, pages = SIZES["quick" if args.quick else "full"]
    counts = sorted({1, 2, *args.pass_workers})
    passes_entities = 4 * sizes[-1]  # the passes alone read a dump four times the largest size
    if args.passes_only:
        with tempfile.TemporaryDirectory() as scratch:
            passes_dump, work_dir = passes_inputs(Path(scratch), sizes[-1], passes_entities, pages)
            passes = {workers: wikidata_passes(passes_dump, work_dir, workers) for workers in counts}
        report_passes(passes, passes_entities)
        return
    results = {}
    startup = startup_cpu()
    with tempfile.TemporaryDirectory() as scratch:
        for entities in sizes:
            dumps = Path(scratch) / f"dumps-{entities}"
            write_synthetic_dumps(dumps, entities, pages)
            for workers in (1, 2):
                out = Path(scratch) / f"out-{entities}-{workers}"
                # write and manifest take no workers: run once, with 1.
                stages = STAGES if workers == 1 else ["parse", "merge"]
                results[(entities, workers)] = {stage: run_stage(dumps, out, stage, workers) for stage in stages}
            dump_mib = (dumps / "wikidata-synthetic-all.json.gz").stat().st_size / 2**20
            print(f"{entities} entities ({dump_mib:.0f} MiB gz), 2 x {pages} articles: done", flush=True)
        speeds = decoder_speeds(dumps / "wikidata-synthetic-all.json.gz")
        passes_dump, work_dir = passes_inputs(Path(scratch), sizes[-1], passes_entities, pages)
        passes = {workers: wikidata_passes(passes_dump, work_dir, workers) for workers in counts}
        journal = journal_costs(passes_dump, work_dir)
        targets = {count: link_target_memory(count) for count in LINK_TARGETS["quick" if args.quick else "full"]}
    articles = 2 * pages
    print(f"\nprepare on synthetic dumps, 2 x {pages} articles (~500 words), machine {os.cpu_count()} cores")
    print(f"  {'entities':>8s} {'workers':>7s} {'stage':>8s} {'wall s':>7s} {'CPU s':>7s} {'peak MiB':>9s} {'KiB/entity':>10s}")
    for (entities, workers), stages in results.items():
        for stage, r in stages.items():
            print(f"  {entities:8d} {workers:7d} {stage:>8s} {r['wall']:7.1f} {r['cpu']:7.1f} {r['peak']:9.0f} "
                  f"{r['peak'] * 1024 / entities:10.2f}")
    # The Wikidata passes' CPU per entity, as the merge records it: the rest of the merge (tokenizer,
    # knowledge, facts) follows the vocabulary, which is fixed here, but not exactly (more of the
    # facts' objects are in the vocabulary of a small dump), so a slope of the whole stage misleads.
    merge_mib = slope(results, sizes, 1, "merge", "peak")  # MiB per entity of dump
    big = results[(sizes[-1], 1)]
    merge_two = results[(sizes[-1], 2)]["merge"]
    merge_scaling = big["merge"]["wall"] / merge_two["wall"]
    merge_cpu = passes[1]["cpu"] / passes_entities
    per_core = 1 / merge_cpu
    # With workers, what stays in the main process (decompression, handing out chunks, taking the
    # results back) does not divide by the workers: its CPU per entity (its thread and itself one
    # after the other: a bound from above) or its wall time alone (a bound from below) bounds the passes.
    serial_cpu = passes[2]["reading_cpu"] / passes_entities
    serial_wall = passes[2]["reading_wall"] / passes_entities
    # Articles are fixed across sizes: their costs are those of the largest, less the start-up.
    write_cpu = (big["write"]["cpu"] - startup) / articles
    parse_cpu = (big["parse"]["cpu"] - startup) / (articles * 1.2)  # a redirect page per five articles
    print(f"\n  merge: peak memory {merge_mib * 2**20:,.0f} bytes per dump entity; wall with 2 workers / 1: "
          f"{merge_scaling:.2f}x (at {sizes[-1]} entities the passes are {big['merge']['wikidata_wall']:.1f} of its "
          f"{big['merge']['wall']:.1f} s)")
    report_passes(passes, passes_entities)
    print(f"  one process decodes {per_core:,.0f} entities per CPU s; with 2 workers "
          f"the main process spends {passes[2]['cpu']:.2f} CPU s, decoding {passes[2]['decoded_here']:.0%} of the chunks "
          f"itself (its reading {passes[2]['reading_cpu']:.2f} CPU s, {serial_cpu * 1e6:,.0f} us per entity; the reading alone, "
          f"workers only counting lines: {passes[2]['reading_wall']:.2f} s wall, {serial_wall * 1e6:,.0f} us), the worker "
          f"{passes[2]['workers_cpu']:.2f}")
    print(f"  journaled (a rerun resumes a killed pass): the passes {journal['journaled']:.2f} s against {journal['plain']:.2f} s "
          f"plain ({journal['journaled'] / journal['plain'] - 1:+.1%}); journals {journal['bytes'] / passes_entities:.0f} bytes per "
          f"dump entity; replayed whole in {journal['replay']:.2f} s ({journal['replay'] / journal['plain']:.0%} of the passes)")
    print(f"  write: {1 / write_cpu:,.0f} articles per CPU second; parse: {1 / parse_cpu:,.0f} pages per CPU second "
          f"(start-up of {startup:.1f} CPU s taken off)")
    print(f"  reading the {sizes[-1]}-entity dump, lines per CPU second: "
          + "; ".join(f"{name} {speed:,.0f}" for name, speed in speeds.items()))
    hours = {"parse": FULL_PAGES * parse_cpu / NODE_CORES / 3600,
             "merge": FULL_ENTITIES * max(serial_cpu, merge_cpu / NODE_CORES) / 3600,
             "write": FULL_ARTICLES * write_cpu / NODE_CORES / 3600}
    memory_gib = (big["merge"]["peak"] + max(merge_mib, 0) * (FULL_ENTITIES - sizes[-1])) / 1024
    print(f"\nExtrapolation to the full dumps on one node ({NODE_CORES} cores, {NODE_GIB} GB), assuming "
          f"{FULL_ENTITIES / 1e6:.0f}M Wikidata entities, {FULL_ARTICLES / 1e6:.0f}M articles and {FULL_PAGES / 1e6:.0f}M pages "
          "(mLUKE's 24 Wikipedias), synthetic costs per item equal to real ones:")
    print(f"  parse = pages x CPU s/page / {NODE_CORES} cores = {hours['parse']:.1f} h (a dump file per worker; split dumps)")
    print(f"  merge = entities x max(main process's CPU s/entity with workers, CPU s/entity of one process / {NODE_CORES} "
          f"workers) = {FULL_ENTITIES / 1e6:.0f}M x max({serial_cpu * 1e6:.0f}, {merge_cpu * 1e6:.0f} / {NODE_CORES}) us "
          f"= {hours['merge']:.1f} h (its vocabulary-sized rest, tokenizer and knowledge, not included; with the reading's "
          f"wall time, {serial_wall * 1e6:.0f} us, instead: {FULL_ENTITIES * max(serial_wall, merge_cpu / NODE_CORES) / 3600:.1f} h)")
    print(f"  write = articles x CPU s/article / {NODE_CORES} cores = {hours['write']:.1f} h (slices or workers)")
    print(f"  total {sum(hours.values()):.1f} h; merge peak memory = peak at {sizes[-1]} + bytes/entity x the rest = "
          f"{memory_gib:,.1f} GiB" + (" (the slope is not above 0: no growth with the dump measured)" if merge_mib <= 0 else ""))
    print("\nWhat the merge holds per link target of the wikis (tracemalloc), and the first pass kept as JSON:")
    for count, figures in targets.items():
        print(f"  {count:9,d} targets: " + ", ".join(f"{name} {value:.0f}" for name, value in figures["bytes"].items())
              + f" bytes; JSON {figures['json_bytes']:.0f} bytes, written in {figures['json_write_s']:.2f} s, read in "
              f"{figures['json_read_s']:.2f} s")
    largest = targets[max(targets)]
    per_target = sum(largest["bytes"].values())
    print(f"  at {FULL_LINK_TARGETS / 1e6:.0f}M link targets (the articles of the 24 Wikipedias and a tenth more for red links): "
          f"{per_target:.0f} bytes x {FULL_LINK_TARGETS / 1e6:.0f}M = {per_target * FULL_LINK_TARGETS / 2**30:.0f} GiB held through "
          f"the merge; the first pass's JSON {largest['json_bytes'] * FULL_LINK_TARGETS / 1e9:.1f} GB, written in "
          f"{largest['json_write_s'] / max(targets) * FULL_LINK_TARGETS / 60:.0f} min, read back in "
          f"{largest['json_read_s'] / max(targets) * FULL_LINK_TARGETS / 60:.0f} min")
    record("cpu", f"prepare merge bytes held per link target, synthetic {max(targets)}", per_target, None, None, 0, ())
    record("cpu", f"prepare merge Wikidata passes entities per CPU s, synthetic {passes_entities}", per_core, None, None, 0, ())
    record("cpu", f"prepare merge peak bytes per dump entity, synthetic {sizes[0]}-{sizes[-1]}", merge_mib * 2**20, None, None, 0, ())
    record("cpu", "prepare merge wall, 2 workers vs 1", merge_two["wall"], big["merge"]["wall"], merge_scaling, 1, ())
    record("cpu", f"prepare Wikidata passes wall, journaled vs plain, synthetic {passes_entities}", journal["journaled"],
           journal["plain"], journal["journaled"] / journal["plain"], 2, ())
    record("cpu", "prepare write articles per CPU s, synthetic", 1 / write_cpu, None, None, 0, ())
    for name, speed in speeds.items():
        record("cpu", f"prepare wikidata lines per CPU s, {name}", speed, speeds["json.loads"], speed / speeds["json.loads"], 0, ())
    record("cpu", "prepare full dumps extrapolated hours, one 64-core node", sum(hours.values()), None, None, 1, ())
    record("cpu", "prepare full dumps extrapolated merge peak GiB", memory_gib, None, None, 0, ())


if __name__ == "__main__":
    main()

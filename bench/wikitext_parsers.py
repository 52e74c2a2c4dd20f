"""Pages/s of our regex wikitext parser against mwparserfromhell on the gensim English excerpt.

The issue asks for a well-kept parser where it is fast enough. Both get the same job: the
excerpt's main-namespace articles, already read from the dump into memory (decompression and XML
are the same for both and left out), turned into plain text plus the article links. For
mwparserfromhell that is ``parse``, ``filter_wikilinks`` and ``strip_code`` (its plain text,
which still keeps some markup our parser drops, e.g. table cells); for ours ``parse_wikitext``.
Best of ``--repeats`` runs each. The link counts differ by design: ``filter_wikilinks`` returns every
``[[...]]``, those inside templates and refs and file, category and interlanguage links included;
ours keeps the article links of the text.

    python bench/wikitext_parsers.py [--quick]

mwparserfromhell is not a dependency of this project; without it the script says how to install it
and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib.util import find_spec
from pathlib import Path

from common import record

from lightning_kg.prepare.mediawiki import iter_pages
from lightning_kg.prepare.wikitext import parse_wikitext

EXCERPT = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def ours(text: str) -> int:
    return sum(len(paragraph.mentions) for paragraph in parse_wikitext(text))


def mwparserfromhell_links(text: str) -> int:
    import mwparserfromhell

    code = mwparserfromhell.parse(text)
    links = code.filter_wikilinks()
    code.strip_code(normalize=True, collapse=True)
    return len(links)


def best_pages_per_second(parse, texts: list[str], repeats: int) -> tuple[float, int]:
    """(pages/s of the fastest run, links found)."""
    best, links = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        links = sum(parse(text) for text in texts)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best, links


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per parser (the fastest is shown)")
    parser.add_argument("--quick", action="store_true", help="one run per parser")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    if find_spec("mwparserfromhell") is None:
        print("mwparserfromhell is not installed (it is not a dependency of lightning_kg). To measure it:\n"
              "  python -m venv /tmp/mwp && /tmp/mwp/bin/pip install mwparserfromhell\n"
              "  PYTHONPATH=/tmp/mwp/lib/python3.X/site-packages python bench/wikitext_parsers.py")
        return
    if find_spec("gensim") is None:
        sys.exit("gensim is not installed: its wheel ships the English Wikipedia excerpt this benchmark reads")
    excerpt = Path(find_spec("gensim").origin).parent / EXCERPT
    texts = [page.text for page in iter_pages(excerpt) if page.namespace == 0 and not page.redirect]
    megabytes = sum(len(text.encode()) for text in texts) / 2**20
    print(f"{len(texts)} articles, {megabytes:.1f} MiB of wikitext ({excerpt.name}), best of {args.repeats}")
    results = {name: best_pages_per_second(parse, texts, args.repeats)
               for name, parse in (("lightning_kg regex parser", ours), ("mwparserfromhell", mwparserfromhell_links))}
    for name, (speed, links) in results.items():
        print(f"  {name:26s} {speed:8.1f} pages/s  {speed * megabytes / len(texts):6.2f} MiB/s  {links} links")
    ratio = results["lightning_kg regex parser"][0] / results["mwparserfromhell"][0]
    print(f"  ours / mwparserfromhell: {ratio:.1f}x")
    record("cpu", "wikitext parse pages/s, gensim en excerpt, ours vs mwparserfromhell", results["lightning_kg regex parser"][0],
           results["mwparserfromhell"][0], ratio, packages=("lightning-kg", "mwparserfromhell"))


if __name__ == "__main__":
    main()

"""Dumps in the real formats, written one way for the recipes, the benches and the tests: MediaWiki
``pages-articles`` XML (as Special:Export writes it) and the Wikidata JSON array (one entity a line)."""

from __future__ import annotations

import bz2
import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

EXPORT = "http://www.mediawiki.org/xml/export-0.10/"


def page_xml(title: str, text: str, namespace: int | str = 0, page_id: int = 1, redirect: str | None = None,
             revision_id: int | None = None) -> str:
    """One ``<page>`` with its latest revision (``revision_id``, else ``page_id + 1``); ``text`` is
    wikitext, escaped here."""
    lines = ["  <page>", f"    <title>{escape(title)}</title>", f"    <ns>{namespace}</ns>", f"    <id>{page_id}</id>"]
    lines += [f"    <redirect title={quoteattr(redirect)} />"] if redirect else []
    lines += ["    <revision>", f"      <id>{page_id + 1 if revision_id is None else revision_id}</id>", "      <model>wikitext</model>",
              "      <format>text/x-wiki</format>",
              f'      <text bytes="{len(text.encode())}" xml:space="preserve">{escape(text)}</text>', "    </revision>", "  </page>"]
    return "\n".join(lines)


def mediawiki_xml(lang: str, pages: Iterable[str], site: str | None = None, namespaces: dict[int, str] | None = None,
                  sitename: str = "Wikipedia", generator: str = "lightning_kg") -> str:
    """An export of ``pages`` (:func:`page_xml`) from wiki ``site`` (default ``{lang}wiki``), whose
    ``<siteinfo>`` names ``namespaces`` (key -> local name) besides the main one."""
    xml = [f'<mediawiki xmlns="{EXPORT}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
           f'xsi:schemaLocation="{EXPORT} {EXPORT.rstrip("/")}.xsd" version="0.10" xml:lang="{lang}">',
           "  <siteinfo>", f"    <sitename>{escape(sitename)}</sitename>", f"    <dbname>{site or f'{lang}wiki'}</dbname>",
           f"    <generator>{escape(generator)}</generator>", "    <case>first-letter</case>", "    <namespaces>",
           '      <namespace key="0" case="first-letter" />',
           *(f'      <namespace key="{key}" case="first-letter">{escape(name)}</namespace>' for key, name in (namespaces or {}).items()),
           "    </namespaces>", "  </siteinfo>", *pages, "</mediawiki>\n"]
    return "\n".join(xml)


def wikidata_json(lines: Iterable[str]) -> Iterator[str]:
    """Wikidata's dump shape around JSON ``lines``: "[" alone, one entity a line ending in "," but the
    last, "]" alone. A generator, so a large dump is never held."""
    yield "[\n"
    lines = iter(lines)
    if (line := next(lines, None)) is not None:
        for following in lines:
            yield line + ",\n"
            line = following
        yield line + "\n"
    yield "]\n"


def write_dump(path: str | Path, parts: str | Iterable[str]) -> Path:
    """``parts`` (text) into ``path``, compressed as its name says (``.bz2``, ``.gz``; else UTF-8 as
    it is); the same text gives the same bytes (bz2 stores no name or time, gzip's is left out)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".bz2":
        compressor = bz2.BZ2Compressor(9)
        with open(path, "wb") as stream:
            for part in [parts] if isinstance(parts, str) else parts:
                stream.write(compressor.compress(part.encode("utf-8")))
            stream.write(compressor.flush())
    else:
        with gzip.GzipFile(path, "wb", compresslevel=6, mtime=0) if path.suffix == ".gz" else open(path, "wb") as stream:
            for part in [parts] if isinstance(parts, str) else parts:
                stream.write(part.encode("utf-8"))
    return path

"""Stream pages out of MediaWiki ``pages-articles`` XML dumps.

expat is fed the file in blocks (read and decompressed by a thread meanwhile), so memory stays
flat whatever the dump's size, the XML encoding comes from the file itself (BOM or declaration:
the gensim bgwiki excerpt is UTF-16), and every page knows the line it started on for error messages.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from xml.parsers import expat

from lightning_kg.prepare.dumps import BadRecord, BlockReader, open_dump, raise_on_error
from lightning_kg.prepare.wikitext import normalize_title

BLOCK = 1 << 20
FIELDS = {"title", "ns", "text"}


@dataclass
class Page:
    title: str
    namespace: int
    text: str
    redirect: str | None  # normalised target when the page is a redirect
    location: str  # "line N" where the page starts


class _PageCollector:
    """expat callbacks that assemble <page> elements into ``Page`` objects."""

    def __init__(self, parser, path: str, on_error: Callable[[BadRecord], None]):
        self.parser, self.path, self.on_error = parser, path, on_error
        self.pages: list[Page] = []
        self.language: str | None = None
        self.dbname: str | None = None
        self._stack: list[str] = []
        self._page: dict | None = None
        self._buffer: list[str] | None = None
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = self.data
        parser.buffer_text = True

    def start(self, name: str, attrs: dict) -> None:
        name = name.rsplit(":", 1)[-1]
        self._stack.append(name)
        if name == "mediawiki":
            self.language = attrs.get("xml:lang")
        elif name == "page":
            self._page = {"line": self.parser.CurrentLineNumber, "text": ""}
        elif self._page is not None and name == "redirect":
            self._page["redirect"] = attrs.get("title", "")
        if (self._page is not None and name in FIELDS and len(self._stack) >= 2
                and self._stack[-2] in ("page", "revision")) or name == "dbname":
            self._buffer = []

    def data(self, text: str) -> None:
        if self._buffer is not None:
            self._buffer.append(text)

    def end(self, name: str) -> None:
        name = name.rsplit(":", 1)[-1]
        self._stack.pop()
        if self._buffer is not None:
            value, self._buffer = "".join(self._buffer), None
            if name == "dbname":
                self.dbname = value.strip()
            elif self._page is not None:
                self._page[name] = value  # a later revision's text replaces an earlier one's
        if name == "page" and self._page is not None:
            self._finish(self._page)
            self._page = None

    def _finish(self, page: dict) -> None:
        location = f"line {page['line']}"
        title = page.get("title", "").strip()
        if not title:
            self.on_error(BadRecord(self.path, location, "page without a <title>"))
            return
        try:
            namespace = int(page.get("ns", "0").strip() or 0)
        except ValueError:
            self.on_error(BadRecord(self.path, f"page {title!r} ({location})", f"<ns> is not a number: {page['ns']!r}"))
            return
        redirect = page.get("redirect")
        self.pages.append(Page(title, namespace, page["text"], normalize_title(redirect) or None if redirect else None, location))


def iter_pages(path: str | os.PathLike, on_error: Callable[[BadRecord], None] | None = None) -> Iterator[Page]:
    """Every page of a dump, all namespaces (callers keep namespace 0). A malformed page is
    reported to ``on_error`` and skipped; invalid or truncated XML ends the file with one report.
    Without ``on_error``, both raise ``DumpError``."""
    on_error = on_error or raise_on_error
    path = str(path)
    parser = expat.ParserCreate()
    collector = _PageCollector(parser, path, on_error)
    with open_dump(path) as stream, BlockReader(stream, BLOCK) as blocks:
        try:
            for block in blocks:
                parser.Parse(block, False)
                yield from collector.pages
                collector.pages.clear()
            parser.Parse(b"", True)
        except expat.ExpatError as error:
            yield from collector.pages
            on_error(BadRecord(path, f"line {error.lineno}", f"invalid XML ({expat.ErrorString(error.code)}); the rest of the file is skipped"))
            return
        except (OSError, EOFError) as error:
            yield from collector.pages
            on_error(BadRecord(path, f"line {parser.CurrentLineNumber}", f"unreadable ({error}); the rest of the file is skipped"))
            return
    yield from collector.pages


def wiki_site(path: str | os.PathLike) -> tuple[str, str] | None:
    """The wiki's site id and language, ``("nowiki", "nb")``, from ``<dbname>`` and ``<mediawiki xml:lang>``.

    They differ for some wikis (nowiki is ``nb``, simplewiki ``en``, alswiki ``gsw``): Wikidata's
    sitelinks are keyed by the site id, while the language names the text and picks its labels.
    Where one is missing it is derived from the other (``zh_yuewiki`` <-> ``zh-yue``); None when both are.
    """
    parser = expat.ParserCreate()
    collector = _PageCollector(parser, str(path), lambda record: None)
    with open_dump(path) as stream:
        try:
            while collector.dbname is None and not collector.pages and (block := stream.read(1 << 16)):
                parser.Parse(block, False)
        except expat.ExpatError:
            pass
    site, lang = collector.dbname, collector.language
    if site and not lang and site.endswith("wiki") and len(site) > len("wiki"):
        lang = site[: -len("wiki")].replace("_", "-")
    if lang and not site:
        site = lang.replace("-", "_") + "wiki"
    return (site, lang) if site and lang else None

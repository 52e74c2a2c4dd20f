"""Stream pages out of MediaWiki ``pages-articles`` XML dumps.

expat is fed the file in blocks (read and decompressed by a thread meanwhile), so memory stays
flat whatever the dump's size, the XML encoding comes from the file itself (BOM or declaration:
the gensim bgwiki excerpt is UTF-16), and every page knows the line it started on for error messages.
The ``<siteinfo>`` gives the wiki's site id, language and namespace names (``Namespaces``), which
tell an article link from a link into another namespace in that wiki's own words.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from xml.parsers import expat

from lightning_kg.prepare.dumps import BadRecord, BlockReader, open_dump, raise_on_error
from lightning_kg.prepare.namespaces import Namespaces

BLOCK = 1 << 20
FIELDS = {"title", "ns", "text"}


@dataclass
class Page:
    title: str
    namespace: int
    text: str
    redirect: str | None  # a redirect's target article (normalised), "" when it leads out of the main namespace; None: no redirect
    location: str  # "line N" where the page starts


@dataclass(frozen=True)
class Site:
    """What a dump's header says about its wiki."""

    site: str  # site id, "nowiki" (Wikidata's sitelinks are keyed by it)
    language: str  # "nb": the language of the text and of the labels kept for it
    namespaces: Namespaces


class _PageCollector:
    """expat callbacks that assemble <page> elements into ``Page`` objects."""

    def __init__(self, parser, path: str, on_error: Callable[[BadRecord], None]):
        self.parser, self.path, self.on_error = parser, path, on_error
        self.pages: list[Page] = []
        self.language: str | None = None
        self.dbname: str | None = None
        self.namespace_names: dict[int, str] = {}
        self.namespaces = Namespaces.of_wiki()  # until </siteinfo> names them
        self.siteinfo_done = False
        self._namespace_key: int | None = None
        self.pages_read = 0
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
        elif name == "namespace" and self._page is None:
            try:
                self._namespace_key = int(attrs.get("key", ""))
            except ValueError:
                self._namespace_key = None
        if (self._page is not None and name in FIELDS and len(self._stack) >= 2
                and self._stack[-2] in ("page", "revision")) or name == "dbname" or (name == "namespace" and self._page is None):
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
            elif name == "namespace" and self._page is None:
                if self._namespace_key is not None and value.strip():
                    self.namespace_names[self._namespace_key] = value.strip()
            elif self._page is not None:
                self._page[name] = value  # a later revision's text replaces an earlier one's
        if name == "siteinfo":
            site = self.site()
            self.namespaces = site.namespaces if site else Namespaces.of_wiki(local=self.namespace_names)
            self.siteinfo_done = True
        if name == "page" and self._page is not None:
            self._finish(self._page)
            self._page = None

    def site(self) -> Site | None:
        """The wiki as far as the header has been read; None without a site id or language.

        They differ for some wikis (nowiki is ``nb``, simplewiki ``en``, alswiki ``gsw``); where one
        is missing it is derived from the other (``zh_yuewiki`` <-> ``zh-yue``).
        """
        site, lang = self.dbname, self.language
        if site and not lang and site.endswith("wiki") and len(site) > len("wiki"):
            lang = site[: -len("wiki")].replace("_", "-")
        if lang and not site:
            site = lang.replace("-", "_") + "wiki"
        if not (site and lang):
            return None
        return Site(site, lang, Namespaces.of_wiki(site, lang, self.namespace_names))

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
        if redirect is not None:
            redirect = self.namespaces.article_title(redirect)
        self.pages.append(Page(title, namespace, page["text"], redirect, location))
        self.pages_read += 1


def iter_pages(path: str | os.PathLike, on_error: Callable[[BadRecord], None] | None = None) -> Iterator[Page]:
    """Every page of a dump, all namespaces (callers keep namespace 0). A malformed page is
    reported to ``on_error`` and skipped; invalid or truncated XML ends the file with one report
    (``truncated``: it names the line and the pages read). Without ``on_error``, both raise ``DumpError``."""
    on_error = on_error or raise_on_error
    path = str(path)
    parser = expat.ParserCreate()
    collector = _PageCollector(parser, path, on_error)

    def cut(line: int, why: str) -> BadRecord:
        return BadRecord(path, f"line {line}", f"{why} after {collector.pages_read} page(s); the rest of the file is skipped",
                         truncated=True)

    with open_dump(path) as stream, BlockReader(stream, BLOCK) as blocks:
        try:
            for block in blocks:
                parser.Parse(block, False)
                yield from collector.pages
                collector.pages.clear()
            parser.Parse(b"", True)
        except expat.ExpatError as error:
            yield from collector.pages
            on_error(cut(error.lineno, f"invalid XML ({expat.ErrorString(error.code)})"))
            return
        except (OSError, EOFError) as error:
            yield from collector.pages
            on_error(cut(parser.CurrentLineNumber, f"unreadable ({error})"))
            return
    yield from collector.pages


def read_site(path: str | os.PathLike) -> Site | None:
    """The wiki of a dump, from its header (``<dbname>``, ``<mediawiki xml:lang>``, ``<namespaces>``):
    the first blocks only. None when neither the site id nor the language is there."""
    parser = expat.ParserCreate()
    collector = _PageCollector(parser, str(path), lambda record: None)
    with open_dump(path) as stream:
        try:
            while not collector.siteinfo_done and not collector.pages and (block := stream.read(1 << 14)):
                parser.Parse(block, False)
        except (expat.ExpatError, OSError, EOFError):
            pass  # a broken or cut file: what the header said so far; iter_pages reports the break
    return collector.site()


def wiki_site(path: str | os.PathLike) -> tuple[str, str] | None:
    """The wiki's site id and language, ``("nowiki", "nb")``, from ``<dbname>`` and ``<mediawiki xml:lang>``:
    Wikidata's sitelinks are keyed by the site id, while the language names the text and picks its labels."""
    site = read_site(path)
    return (site.site, site.language) if site else None

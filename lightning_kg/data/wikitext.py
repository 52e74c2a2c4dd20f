"""Wikitext -> plain paragraphs with every article link kept as a mention span.

A hand-written single pass: templates, tables, refs, files, categories and interlanguage links
are dropped whole (links inside them vanish with them), ``[[Target|anchor]]`` becomes the anchor
text plus its link trail, and bold/italic, headings and list markers go. mwparserfromhell builds a
full tree per page and is several times slower (see the prepare issue's note); links are all we need.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

# Namespaces whose links are not articles: canonical English names and common localised ones.
NON_ARTICLE_PREFIXES = {
    "file", "image", "media", "category", "template", "wikipedia", "wp", "help", "portal", "user", "user talk",
    "talk", "special", "module", "draft", "mediawiki", "book", "timedtext", "project",
    "файл", "изображение", "категория", "шаблон", "уикипедия", "портал", "потребител", "картинка",
    "datei", "bild", "kategorie", "vorlage", "fichier", "catégorie", "modèle", "archivo", "categoría", "plantilla",
    "imagen", "ficheiro", "categoria", "predefinição", "bestand", "categorie", "sjabloon", "plik", "kategoria",
    "szablon", "ファイル", "カテゴリ", "画像", "文件", "分类", "ملف", "تصنيف", "fil", "kategori", "dosya",
}
# Interwiki prefixes: sister projects; language codes are recognised by their shape.
INTERWIKI_PREFIXES = {"wikt", "wiktionary", "commons", "meta", "s", "wikisource", "q", "wikiquote", "b", "wikibooks",
                      "n", "wikinews", "v", "wikiversity", "voy", "wikivoyage", "species", "d", "wikidata", "mw", "m"}
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")

COMMENT = re.compile(r"<!--.*?(-->|$)", re.DOTALL)
DROPPED_ELEMENTS = re.compile(
    r"<(ref|gallery|math|timeline|score|syntaxhighlight|source|imagemap|graph|chem|ce|templatedata|mapframe)\b[^>]*?/>"
    r"|<(ref|gallery|math|timeline|score|syntaxhighlight|source|imagemap|graph|chem|ce|templatedata|mapframe)\b[^>]*>.*?(</\2\s*>|$)",
    re.DOTALL | re.IGNORECASE)
HTML_TAG = re.compile(r"</?[a-zA-Z][^<>]*?/?>")
EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]+\s*([^\]]*)\]")
BOLD_ITALIC = re.compile(r"'{2,}")
HEADING = re.compile(r"^\s*=+.*=+\s*$")
LIST_MARKER = re.compile(r"^[*#:;]+\s*")
MAGIC_WORD = re.compile(r"__[A-Z]+__")
# Link trails only in scripts that separate words with spaces (MediaWiki: "[[bus]]es" -> "buses").
LINK_TRAIL = re.compile(r"[a-zA-Z\u00C0-\u024F\u0370-\u03FF\u0400-\u04FF]+")
WHITESPACE = re.compile(r"\s+")
NESTED_MARK = re.compile(r"\{\{|\}\}|\{\||\|\}")


def normalize_title(title: str) -> str:
    """A link target as MediaWiki names the page; "" when it is not a main-namespace article."""
    title = html.unescape(title).replace("_", " ")
    title = title.split("#", 1)[0]
    title = WHITESPACE.sub(" ", title).strip()
    if not title or title.startswith(":"):
        # "[[:Category:X]]" links to a category page; "[[:fr:X]]" to another wiki.
        return ""
    if ":" in title:
        prefix = title.split(":", 1)[0].strip().lower()
        if prefix in NON_ARTICLE_PREFIXES or prefix in INTERWIKI_PREFIXES or LANGUAGE_CODE.match(prefix):
            return ""
    return title[0].upper() + title[1:]


@dataclass(frozen=True)
class Mention:
    start: int
    end: int  # character offsets in Paragraph.text, end exclusive
    title: str  # normalised link target


@dataclass
class Paragraph:
    text: str
    mentions: list[Mention]


def _drop_nested(text: str) -> str:
    """Remove ``{{templates}}`` and ``{| tables |}``, nested in any mix."""
    out, depth, last = [], 0, 0
    for match in NESTED_MARK.finditer(text):
        if match.group() in ("{{", "{|"):
            if depth == 0:
                out.append(text[last : match.start()])
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                last = match.end()
    if depth == 0:
        out.append(text[last:])
    return "".join(out)


def _link_end(text: str, start: int) -> int:
    """Index just past the ``]]`` closing the link opened at ``start``, or -1."""
    depth, i = 0, start
    while True:
        opening, closing = text.find("[[", i), text.find("]]", i)
        if closing < 0:
            return -1
        if 0 <= opening < closing:
            depth += 1
            i = opening + 2
        else:
            depth -= 1
            i = closing + 2
            if depth == 0:
                return i


def _clean_inline(text: str) -> str:
    text = EXTERNAL_LINK.sub(r"\1", text)
    text = BOLD_ITALIC.sub("", text)
    return HTML_TAG.sub("", text)


def _paragraph(source: str) -> Paragraph | None:
    """Resolve the links of one paragraph's wikitext into text and mention spans."""
    pieces: list[str] = []
    mentions: list[Mention] = []
    length = 0

    def emit(piece: str) -> None:
        nonlocal length
        piece = WHITESPACE.sub(" ", piece)
        if length == 0 or (pieces and pieces[-1].endswith(" ")):
            piece = piece.lstrip()
        pieces.append(piece)
        length += len(piece)

    i = 0
    while i < len(source):
        start = source.find("[[", i)
        if start < 0:
            emit(_clean_inline(source[i:]))
            break
        emit(_clean_inline(source[i:start]))
        end = _link_end(source, start)
        if end < 0:  # an unclosed "[[": keep the rest as text
            emit(_clean_inline(source[start:].replace("[[", "")))
            break
        inner = source[start + 2 : end - 2]
        target, _, anchor = inner.partition("|")
        title = normalize_title(target) if "[[" not in target else ""
        trail = LINK_TRAIL.match(source, end)
        i = trail.end() if (trail and title) else end
        if not title:
            continue  # files, categories, interlanguage links: dropped with their captions
        anchor_text = WHITESPACE.sub(" ", _clean_inline(anchor if anchor else target.replace("_", " "))).strip()
        anchor_text += trail.group(0) if trail else ""
        if not anchor_text:
            continue
        mentions.append(Mention(length, length + len(anchor_text), title))
        pieces.append(anchor_text)
        length += len(anchor_text)
    text = "".join(pieces)
    stripped = text.rstrip()
    mentions = [m for m in mentions if m.end <= len(stripped)]
    return Paragraph(stripped, mentions) if stripped else None


def parse_wikitext(wikitext: str) -> list[Paragraph]:
    """Plain paragraphs of an article (blank-line separated; headings dropped) with their links."""
    text = COMMENT.sub("", wikitext)
    text = DROPPED_ELEMENTS.sub("", text)
    text = _drop_nested(text)
    text = MAGIC_WORD.sub("", html.unescape(text))
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [LIST_MARKER.sub("", line) for line in block.split("\n") if line.strip() and not HEADING.match(line)]
        if not lines:
            continue
        paragraph = _paragraph(" ".join(lines))
        if paragraph is not None:
            paragraphs.append(paragraph)
    return paragraphs

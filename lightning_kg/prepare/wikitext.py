"""Wikitext -> plain paragraphs with every article link kept as a mention span, as MediaWiki renders them.

A hand-written pass of a few regex scans: comments, ``<ref>``s and other extension tags,
``{{templates}}`` and ``{| tables |}`` are dropped whole (links inside them vanish with them), and
the punctuation a dropped template leaves is tidied ("( , )" goes); files, categories and
interlanguage links are removed whole, captions over several lines included; then each blank-line
separated paragraph is walked link by link: ``[[Target|anchor]]`` becomes the anchor text plus its
link trail, other links (other namespaces, interwiki, ``[[:Category:X|y]]``) keep the text they show
but are not mentions. Which prefix is a namespace comes from the wiki's own names (namespaces.py).

What the objectives read is running text, so:
- headings are dropped (a section title is not a sentence and would run into the next one);
  Wikipedia2Vec, which LUKE and mLUKE build their data with, drops them too;
- list items are kept, joined into their paragraph, their markers dropped: they are prose often
  enough ("* [[Jōmon period|Jōmon]] people lived here"), and Wikipedia2Vec keeps them too (a line
  each); wikiextractor keeps them only with ``--lists``;
- tables are dropped whole, with the links in their cells: cells are not sentences; Wikipedia2Vec
  and wikiextractor drop them as well;
- templates are dropped, as in Wikipedia2Vec and in wikiextractor without the template pages to
  expand them: their output (infoboxes, citations, pronunciations) is mostly not prose, and
  expanding them needs the wiki's templates and Lua modules.
Wikipedia2Vec keeps a file's caption and a category's name as text with a link; MediaWiki shows
neither in the paragraph, and neither do we. mwparserfromhell builds a full tree per page and is
many times slower (docs/PERFORMANCE.md, bench/wikitext_parsers.py); links are all we need.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from lightning_kg.prepare.namespaces import ANY_WIKI, Namespaces

WHITESPACE = re.compile(r"\s+")
# What a dropped template or table leaves where it stood, so the punctuation around it can be tidied
# ("from the Greek {{lang|grc|...}}, i.e." -> "from the Greek, i.e.", "({{IPA|...}})" -> ""); a
# control character, so it is never taken for text or for part of a title.
DROPPED = "\x01"
RUN_OF_DROPPED = re.compile(r"\x01(?:[ \t]*\x01)+")
EMPTY_BRACKETS = re.compile(r"\((?:[\s,;:/–—-]|\x01)*\x01(?:[\s,;:/–—-]|\x01)*\)")
BRACKET_OPENED_BY_DROPPED = re.compile(r"\((?:\s|\x01)*\x01[\s,;:–—]*")
CLOSING_PUNCTUATION = frozenset(",.;:!?]")
# A link whose target has a prefix: the candidates for files, categories and interlanguage links.
PREFIXED_LINK = re.compile(r"\[\[[ \t]*([^\[\]|{}\n]*:[^\[\]|{}\n]*)(?=\||\]\])")
COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)  # an unclosed comment hides the rest, as in MediaWiki
NOWIKI = re.compile(r"<nowiki\s*>(.*?)</nowiki\s*>|<nowiki\s*/>", re.DOTALL | re.IGNORECASE)
# Markup characters inside <nowiki> become entities, so no later step reads them as markup.
NOWIKI_ESCAPES = {ord(c): f"&#{ord(c)};" for c in "&<>[]{}|'#*:;=~_-"}
DROPPED_TAGS = "ref|gallery|math|timeline|score|syntaxhighlight|source|pre|imagemap|graph|chem|ce|templatedata|mapframe|maplink|hiero|inputbox|categorytree"
# A self-closing tag, or an open one with its close; an unclosed one is removed alone by HTML_TAG.
DROPPED_ELEMENTS = re.compile(rf"<({DROPPED_TAGS})\b[^>]*?/>|<({DROPPED_TAGS})\b[^>]*>.*?</\2\s*>", re.DOTALL | re.IGNORECASE)
LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# Templates, and tables whose "{|" / "|}" open a line; "|}}" closes a template, not a table.
NESTED_MARK = re.compile(r"\{\{|\}\}|^[ \t]*\{\||^[ \t]*\|\}(?!\})", re.MULTILINE)
MAGIC_WORD = re.compile(r"__[A-Z]+__")
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
HEADING = re.compile(r"^\s*=+.*=+\s*$")
FIRST_HEADING = re.compile(r"^[ \t]*=+.*=+[ \t]*$", re.MULTILINE)
# Bold text ('''X''', or bold italics '''''X''''') on one line: the lead's first names the article's subject.
BOLD = re.compile(r"'{3,5}([^'\n](?:[^\n]*?[^'\n])?)'{3,5}")
LINE_PREFIX = re.compile(r"^(?:[*#:;]+|-{4,})\s*")  # list markers, horizontal rules
EXTERNAL_LINK = re.compile(r"\[(?:https?://|ftps?://|//|mailto:|irc://|news:)[^\s\]<>\"]*\s*((?:[^\[\]]|\[\[[^\[\]]*\]\])*)\]",
                           re.IGNORECASE)
INNER_LINK = re.compile(r"\[\[(?:[^\[\]|]*\|)?([^\[\]]*)\]\]")
BOLD_ITALIC = re.compile(r"'{2,}")
HTML_TAG = re.compile(r"</?[a-zA-Z][^<>]*?/?>")
# Link trails of spaced scripts (MediaWiki: "[[bus]]es" -> "buses"): lowercase Latin, Greek, Cyrillic.
LINK_TRAIL = re.compile(r"[a-z\u00DF-\u00F6\u00F8-\u00FF\u0100-\u024F\u03AC-\u03CE\u0430-\u045F]+")
PIPE_TRICK = re.compile(r"\s*\([^()]*\)\s*$")


def normalize_title(title: str, namespaces: Namespaces = ANY_WIKI) -> str:
    """A link target as MediaWiki names the article; "" when it is not a main-namespace article of
    the wiki whose ``namespaces`` are given (default: names every wiki accepts).

    Underscores and runs of whitespace become one space, ``#fragment``s and HTML entities go, the
    first letter is upper-cased (first-letter case); one leading ":" is allowed (``[[:Tokyo]]``).
    """
    return namespaces.article_title(title)


@dataclass(frozen=True)
class Mention:
    start: int
    end: int  # character offsets in Paragraph.text, end exclusive
    title: str  # normalised link target


@dataclass
class Paragraph:
    text: str
    mentions: list[Mention]


def _escape_nowiki(match: re.Match) -> str:
    # "<nowiki/>" becomes NUL, which ends a link trail ("[[a]]<nowiki/>s") and is removed with the markup.
    return match.group(1).translate(NOWIKI_ESCAPES) if match.group(1) is not None else "\0"


def _drop_nested(text: str) -> str:
    """Remove ``{{templates}}`` and ``{| tables |}``, nested in any mix ("}}" closes only a template,
    "|}" only a table). An opener that is never closed is dropped alone and the text after it kept,
    so one stray "{{" costs no article. Each dropped stretch leaves ``DROPPED`` in its place."""
    out: list[str] = []
    pos = 0
    while True:
        open_kinds: list[str] = []  # "{" per open template, "|" per open table
        last, unclosed = pos, None
        for match in NESTED_MARK.finditer(text, pos):
            mark = match.group().lstrip(" \t")
            if mark[0] == "{":
                if not open_kinds:
                    out.append(text[last : match.start()])
                    out.append(DROPPED)
                    unclosed = match
                open_kinds.append(mark[1])
            elif open_kinds and open_kinds[-1] == ("{" if mark == "}}" else "|"):
                open_kinds.pop()
                if not open_kinds:
                    last = match.end()
        if not open_kinds:
            out.append(text[last:])
            return "".join(out)
        out.pop()  # the unclosed opener is dropped alone: nothing was dropped with it
        pos = unclosed.end()


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
    """Markup-free text of a stretch without article links; entities decoded last, so "&lt;b&gt;" stays."""
    text = HTML_TAG.sub("", BOLD_ITALIC.sub("", text))
    if "\0" in text:
        text = text.replace("\0", "")
    return html.unescape(text) if "&" in text else text


def _anchor(target: str, anchor: str | None) -> str:
    """The text a link shows: its anchor, the pipe trick's ("[[Paris (band)|]]" -> "Paris"), or its target."""
    if anchor is None:
        shown = target.strip().removeprefix(":").replace("_", " ").split("#", 1)[0] or target
    elif anchor.strip():
        shown = INNER_LINK.sub(r"\1", anchor) if "[[" in anchor else anchor
    else:
        shown = PIPE_TRICK.sub("", target.split(":", 1)[-1].replace("_", " ")).split(",", 1)[0]
    return WHITESPACE.sub(" ", _clean_inline(shown))


def _drop_hidden_links(text: str, namespaces: Namespaces) -> str:
    """Remove files, categories and interlanguage links whole, before the text is cut into paragraphs:
    a caption may run over several lines, blank ones included where templates stood."""
    out: list[str] = []
    pos = 0
    for match in PREFIXED_LINK.finditer(text):
        if match.start() < pos or namespaces.classify(match.group(1))[0] != "hidden":
            continue
        end = _link_end(text, match.start())
        if end < 0:
            continue
        out.append(text[pos : match.start()])
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _tidy_dropped(text: str) -> str:
    """The punctuation dropped templates leave, tidied: "( , )" and "()" go, "Greek , i.e." reads
    "Greek, i.e.", "(; born 1950)" reads "(born 1950)"; then the ``DROPPED`` marks go. Every pattern
    starts at a mark or a bracket, and the rest is one pass over the pieces between the marks."""
    if DROPPED not in text:
        return text
    text = RUN_OF_DROPPED.sub(DROPPED, text)
    text = EMPTY_BRACKETS.sub(DROPPED, text)
    text = BRACKET_OPENED_BY_DROPPED.sub("(", text)
    pieces = text.split(DROPPED)
    out = [pieces[0]]
    for piece in pieces[1:]:
        following = piece.lstrip(" \t")
        if following[:1] == ")":
            out[-1] = out[-1].rstrip(" \t,;:–—")
            piece = following
        elif following and following[0] in CLOSING_PUNCTUATION:
            out[-1] = out[-1].rstrip(" \t")
            piece = following
        out.append(piece)
    return "".join(out)


def _paragraph(source: str, namespaces: Namespaces) -> Paragraph | None:
    """Resolve the links of one paragraph's wikitext into text and mention spans."""
    pieces: list[str] = []
    mentions: list[Mention] = []
    length = 0

    def emit(piece: str) -> None:
        nonlocal length
        piece = WHITESPACE.sub(" ", piece)
        if length == 0 or pieces[-1].endswith(" "):
            piece = piece.lstrip()
        if piece:
            pieces.append(piece)
            length += len(piece)

    source = EXTERNAL_LINK.sub(r"\1", source) if "[" in source else source
    i = 0
    while i < len(source):
        start = source.find("[[", i)
        if start < 0:
            emit(_clean_inline(source[i:]))
            break
        emit(_clean_inline(source[i:start]))
        end = _link_end(source, start)
        if end < 0:  # an unclosed "[[": keep the rest as text
            emit(_clean_inline(source[start + 2 :]))
            break
        i = end
        inner = source[start + 2 : end - 2]
        target, pipe, anchor = inner.partition("|")
        kind, title = namespaces.classify(target) if "[[" not in target else ("hidden", "")
        if kind == "hidden":
            continue  # files, categories, interlanguage links: dropped with their captions
        shown = _anchor(target, anchor if pipe else None)
        if kind == "text" or not shown.strip():
            emit(shown)
            continue
        if shown[0] == " ":
            emit(" ")
        core = shown.strip()
        trail = LINK_TRAIL.match(source, end) if shown[-1] != " " else None
        if trail:
            core += trail.group()
            i = trail.end()
        mentions.append(Mention(length, length + len(core), title))
        pieces.append(core)
        length += len(core)
        if shown[-1] == " ":
            emit(" ")
    text = "".join(pieces).rstrip()
    return Paragraph(text, mentions) if text else None


def link_own_title(text: str, title: str) -> str:
    """``text`` with the lead's first bold text made a link to ``title``. Wikipedia's lead names its
    subject in bold ("'''Sweden''' is a Nordic country") and a page never links to itself, so
    without this the subject's entity is never read beside the facts its own article states. Bold
    text that holds or sits inside a link, or comes after the first heading, is left as it is."""
    lead = FIRST_HEADING.search(text)
    match = BOLD.search(text, 0, lead.start() if lead else len(text))
    if match is None or "[[" in match.group(1) or "]]" in match.group(1):
        return text
    if text.count("[[", 0, match.start()) != text.count("]]", 0, match.start()):
        return text  # inside a link's anchor
    return f"{text[: match.start()]}[[{title}|{match.group(1)}]]{text[match.end() :]}"


def parse_wikitext(wikitext: str, namespaces: Namespaces = ANY_WIKI, own_title: str | None = None) -> list[Paragraph]:
    """Plain paragraphs of an article with their article links as mentions, the text as MediaWiki renders it.

    ``namespaces``: the wiki's (from its dump's ``<siteinfo>``), which tell article links from the
    others. Paragraphs are blank-line separated; the lines of one paragraph (list items included) are joined
    with spaces; headings are dropped, so section titles never run into the text. With ``own_title``
    (the page's title), the lead's first bold text is a mention of the page itself (:func:`link_own_title`).
    """
    text = COMMENT.sub("", wikitext)
    if "<" in text:
        text = NOWIKI.sub(_escape_nowiki, text)
        text = DROPPED_ELEMENTS.sub("", text)
        text = LINE_BREAK.sub(" ", text)
    text = _drop_nested(text)
    if own_title is not None:
        text = link_own_title(text, own_title)
    if "[[" in text:
        text = _drop_hidden_links(text, namespaces)
    text = _tidy_dropped(MAGIC_WORD.sub("", text))
    paragraphs = []
    for block in PARAGRAPH_BREAK.split(text):
        lines = [LINE_PREFIX.sub("", line) for line in block.split("\n") if line.strip() and not HEADING.match(line)]
        if lines:
            paragraph = _paragraph(" ".join(lines), namespaces)
            if paragraph is not None:
                paragraphs.append(paragraph)
    return paragraphs

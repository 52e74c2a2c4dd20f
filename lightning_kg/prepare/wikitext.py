"""Wikitext -> plain paragraphs with every article link kept as a mention span.

A hand-written pass of a few regex scans: comments, ``<ref>``s and other extension tags,
``{{templates}}`` and ``{| tables |}`` are dropped whole (links inside them vanish with them), then
each blank-line separated paragraph is walked link by link: ``[[Target|anchor]]`` becomes the anchor
text plus its link trail, files, categories and interlanguage links vanish, other links (interwiki,
``[[:Category:X]]``, ``[[Help:X]]``) keep their text but are not mentions. Headings are dropped;
list markers, bold/italic and HTML tags go, their text stays. mwparserfromhell builds a full tree per
page and is about 10x slower on the gensim enwiki excerpt (bench/wikitext_parsers.py); links are all we need.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import unquote

# Namespaces whose links render nothing inline (the image or the category box), so their captions
# and sort keys are not text: canonical names and common localised ones.
HIDDEN_NAMESPACES = {
    "file", "image", "category",
    "файл", "изображение", "картинка", "категория", "зображення", "категорія",
    "datei", "bild", "kategorie", "fichier", "catégorie", "archivo", "imagen", "categoría", "ficheiro", "arquivo",
    "imagem", "categoria", "immagine", "bestand", "afbeelding", "categorie", "plik", "grafika", "kategoria",
    "fil", "kategori", "dosya", "resim", "soubor", "obrázek", "tiedosto", "luokka", "kuva", "fájl", "kép",
    "kategória", "berkas", "tập tin", "hình", "thể loại", "ファイル", "画像", "カテゴリ", "文件", "檔案", "图像",
    "分类", "分類", "파일", "분류", "ملف", "صورة", "تصنيف", "קובץ", "תמונה", "קטגוריה", "پرونده", "رده",
}
# Other namespaces: the link shows its text but points to no article.
OTHER_NAMESPACES = {
    "media", "talk", "user", "user talk", "wikipedia", "wp", "project", "help", "portal", "template", "module",
    "draft", "special", "mediawiki", "book", "timedtext", "gadget", "education program",
    "шаблон", "уикипедия", "википедия", "вікіпедія", "портал", "потребител", "участник", "справка", "помощ",
    "vorlage", "hilfe", "benutzer", "modèle", "aide", "utilisateur", "plantilla", "ayuda", "usuario", "predefinição",
    "ajuda", "sjabloon", "szablon", "pomoc", "テンプレート", "利用者", "模板", "帮助", "قالب", "مساعدة",
}
# Sister projects (interwiki): text only.
INTERWIKI_PREFIXES = {"wikt", "wiktionary", "commons", "meta", "s", "wikisource", "q", "wikiquote", "b", "wikibooks",
                      "n", "wikinews", "v", "wikiversity", "voy", "wikivoyage", "species", "d", "wikidata", "mw",
                      "m", "foundation", "wmf", "phab", "outreach", "incubator", "w", "wikipedia"}
# Wikipedia language editions: ``[[fr:Japon]]`` is an interlanguage link (hidden), ``[[:fr:Japon]]``
# an inline link to another wiki (text). A real list, not a shape test, so "Ali: Fear Eats the Soul"
# stays an article.
LANGUAGE_CODES = {"aa", "ab", "ace", "ady", "af", "ak", "als", "alt", "am", "ami", "an", "ang", "ann", "anp", "ar", "arc", "ary", "arz", "as", "ast", "atj", "av", "avk", "awa", "ay", "az", "azb", "ba", "ban", "bar", "bat-smg", "bbc", "bcl", "bdr", "be", "be-tarask", "be-x-old", "bew", "bg", "bh", "bi", "bjn", "blk", "bm", "bn", "bo", "bpy", "br", "bs", "btm", "bug", "bxr", "ca", "cbk-zam", "cdo", "ce", "ceb", "ch", "cho", "chr", "chy", "ckb", "co", "cr", "crh", "cs", "csb", "cu", "cv", "cy", "da", "dag", "de", "dga", "din", "diq", "dsb", "dtp", "dty", "dv", "dz", "ee", "el", "eml", "en", "eo", "es", "et", "eu", "ext", "fa", "fat", "ff", "fi", "fiu-vro", "fj", "fo", "fon", "fr", "frp", "frr", "fur", "fy", "ga", "gag", "gan", "gcr", "gd", "gl", "glk", "gn", "gom", "gor", "got", "gpe", "gsw", "gu", "guc", "gur", "guw", "gv", "ha", "hak", "haw", "he", "hi", "hif", "ho", "hr", "hsb", "ht", "hu", "hy", "hyw", "hz", "ia", "iba", "id", "ie", "ig", "igl", "ii", "ik", "ilo", "inh", "io", "is", "it", "iu", "ja", "jam", "jbo", "jv", "ka", "kaa", "kab", "kbd", "kbp", "kcg", "kg", "kge", "ki", "kj", "kk", "kl", "km", "kn", "knc", "ko", "koi", "kr", "krc", "ks", "ksh", "ku", "kus", "kv", "kw", "ky", "la", "lad", "lb", "lbe", "lez", "lfn", "lg", "li", "lij", "lld", "lmo", "ln", "lo", "lrc", "lt", "ltg", "lv", "lzh", "mad", "mai", "map-bms", "mdf", "mg", "mh", "mhr", "mi", "min", "mk", "ml", "mn", "mni", "mnw", "mo", "mos", "mr", "mrj", "ms", "mt", "mus", "mwl", "my", "myv", "mzn", "na", "nah", "nan", "nap", "nb", "nds", "nds-nl", "ne", "new", "ng", "nia", "nl", "nn", "no", "nov", "nqo", "nr", "nrm", "nso", "nup", "nv", "ny", "oc", "olo", "om", "or", "os", "pa", "pag", "pam", "pap", "pcd", "pcm", "pdc", "pfl", "pi", "pih", "pms", "pnb", "pnt", "ps", "pt", "pwn", "qu", "rki", "rm", "rmy", "rn", "ro", "roa-rup", "roa-tara", "rsk", "ru", "rue", "rup", "rw", "sa", "sah", "sat", "sc", "scn", "sco", "sd", "se", "sg", "sgs", "sh", "shi", "shn", "si", "simple", "sk", "skr", "sl", "sm", "smn", "sn", "so", "sq", "sr", "srn", "ss", "st", "stq", "su", "sv", "sw", "syl", "szl", "szy", "ta", "tay", "tcy", "tdd", "te", "tet", "tg", "th", "ti", "tig", "tk", "tl", "tly", "tn", "to", "tok", "tpi", "tr", "trv", "ts", "tt", "tum", "tw", "ty", "tyv", "udm", "ug", "uk", "ur", "uz", "ve", "vec", "vep", "vi", "vls", "vo", "vro", "wa", "war", "wo", "wuu", "xal", "xh", "xmf", "yi", "yo", "yue", "za", "zea", "zgh", "zh", "zh-classical", "zh-min-nan", "zh-yue", "zu"}  # noqa: E501 - one list, one line

WHITESPACE = re.compile(r"\s+")
BIDI_MARKS = dict.fromkeys(map(ord, "\u200e\u200f\u202a\u202b\u202c\u202d\u202e"))
INVALID_TITLE = re.compile(r"[<>\[\]{}|\x00-\x1f\x7f\ufffd]")

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
LINE_PREFIX = re.compile(r"^(?:[*#:;]+|-{4,})\s*")  # list markers, horizontal rules
EXTERNAL_LINK = re.compile(r"\[(?:https?://|ftps?://|//|mailto:|irc://|news:)[^\s\]<>\"]*\s*((?:[^\[\]]|\[\[[^\[\]]*\]\])*)\]",
                           re.IGNORECASE)
INNER_LINK = re.compile(r"\[\[(?:[^\[\]|]*\|)?([^\[\]]*)\]\]")
BOLD_ITALIC = re.compile(r"'{2,}")
HTML_TAG = re.compile(r"</?[a-zA-Z][^<>]*?/?>")
# Link trails of spaced scripts (MediaWiki: "[[bus]]es" -> "buses"): lowercase Latin, Greek, Cyrillic.
LINK_TRAIL = re.compile(r"[a-z\u00DF-\u00F6\u00F8-\u00FF\u0100-\u024F\u03AC-\u03CE\u0430-\u045F]+")
PIPE_TRICK = re.compile(r"\s*\([^()]*\)\s*$")


def _canonical(title: str) -> str:
    """The title MediaWiki would link to, whatever its namespace; "" when it is not a valid title."""
    if "%" in title:
        title = unquote(title)  # MediaWiki decodes %XX in link targets
    if "&" in title:
        title = html.unescape(title)
    title = title.translate(BIDI_MARKS).replace("_", " ").split("#", 1)[0]
    title = WHITESPACE.sub(" ", title).strip()
    if not title or INVALID_TITLE.search(title):
        return ""
    return title[0].upper() + title[1:]


def _classify(target: str) -> tuple[str, str]:
    """("article", title), ("hidden", "") for links that render nothing, or ("text", "") for links
    that show their text but name no article of this wiki."""
    target = target.strip()
    colon = target.startswith(":")  # "[[:Category:X]]" shows a link to the category page
    title = _canonical(target[1:] if colon else target)
    if not title:
        return "text", ""
    if ":" in title:
        prefix = title.split(":", 1)[0].strip().lower()
        if prefix in HIDDEN_NAMESPACES or prefix in LANGUAGE_CODES:
            return ("text" if colon else "hidden"), ""
        if prefix in OTHER_NAMESPACES or prefix in INTERWIKI_PREFIXES:
            return "text", ""
    return "article", title


def normalize_title(title: str) -> str:
    """A link target as MediaWiki names the article; "" when it is not a main-namespace article.

    Underscores and runs of whitespace become one space, ``#fragment``s and HTML entities go, the
    first letter is upper-cased (first-letter case); one leading ":" is allowed (``[[:Tokyo]]``).
    """
    kind, normalised = _classify(title)
    return normalised if kind == "article" else ""


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
    so one stray "{{" costs no article."""
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
                    unclosed = match
                open_kinds.append(mark[1])
            elif open_kinds and open_kinds[-1] == ("{" if mark == "}}" else "|"):
                open_kinds.pop()
                if not open_kinds:
                    last = match.end()
        if not open_kinds:
            out.append(text[last:])
            return "".join(out)
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


def _paragraph(source: str) -> Paragraph | None:
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
        kind, title = _classify(target) if "[[" not in target else ("hidden", "")
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


def parse_wikitext(wikitext: str) -> list[Paragraph]:
    """Plain paragraphs of an article with their article links as mentions.

    Paragraphs are blank-line separated; the lines of one paragraph (list items included) are joined
    with spaces; headings are dropped, so section titles never run into the text.
    """
    text = COMMENT.sub("", wikitext)
    if "<" in text:
        text = NOWIKI.sub(_escape_nowiki, text)
        text = DROPPED_ELEMENTS.sub("", text)
        text = LINE_BREAK.sub(" ", text)
    text = _drop_nested(text)
    text = MAGIC_WORD.sub("", text)
    paragraphs = []
    for block in PARAGRAPH_BREAK.split(text):
        lines = [LINE_PREFIX.sub("", line) for line in block.split("\n") if line.strip() and not HEADING.match(line)]
        if lines:
            paragraph = _paragraph(" ".join(lines))
            if paragraph is not None:
                paragraphs.append(paragraph)
    return paragraphs

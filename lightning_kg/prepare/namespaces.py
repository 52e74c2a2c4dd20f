"""Which wiki a link points into: an article of this wiki, another namespace, another wiki.

MediaWiki reads a link target's prefix (``[[Категория:Азия]]``, ``[[fr:Japon]]``) first as a
namespace of this wiki, then as an interwiki prefix; a prefix that is neither belongs to an article
title ("Star Wars: Episode I"). The namespace names come from the dump itself (``<siteinfo>
<namespaces>``: the local name of each namespace), to which this module adds what a dump cannot
say and MediaWiki still accepts: the canonical English names, valid on every wiki; MediaWiki's
aliases (``Image:`` for ``File:``); the aliases Wikimedia configures per wiki (``WP:``, and ``WT:``
on English Wikipedia); and English Wikipedia's shortcut prefixes (``MOS:``, ``H:``), which are
article-namespace redirects into the project namespace. Interlanguage and interwiki prefixes come
from Wikimedia's lists below, not from ISO 639 at large.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

# MediaWiki's canonical namespace names (core, and the extensions every Wikipedia runs: Scribunto's
# Module, TimedMediaHandler's TimedText, Gadgets): valid on every wiki whatever its language.
CANONICAL_NAMESPACES = {
    -2: "Media", -1: "Special", 1: "Talk", 2: "User", 3: "User talk", 4: "Project", 5: "Project talk", 6: "File",
    7: "File talk", 8: "MediaWiki", 9: "MediaWiki talk", 10: "Template", 11: "Template talk", 12: "Help", 13: "Help talk",
    14: "Category", 15: "Category talk", 710: "TimedText", 711: "TimedText talk", 828: "Module", 829: "Module talk",
    2300: "Gadget", 2301: "Gadget talk", 2302: "Gadget definition", 2303: "Gadget definition talk",
}
# Aliases MediaWiki itself accepts on every wiki ($wgNamespaceAliases' defaults) and those Wikimedia
# sets for every Wikipedia (operations/mediawiki-config, wgNamespaceAliases "+wikipedia").
EVERY_WIKI_ALIASES = {"Image": 6, "Image talk": 7, "Wikipedia": 4, "Wikipedia talk": 5, "WP": 4}
# Old or alternative names MediaWiki's language files keep as aliases (languages/messages/MessagesXx.php,
# $namespaceAliases), by wiki language: a dump lists only the current names.
LANGUAGE_ALIASES = {
    "de": {"Bild": 6, "Bild Diskussion": 7},
    "el": {"Μέσον": -2, "Εικόνα": 6, "Συζήτηση εικόνας": 7},
    "ru": {"Изображение": 6, "Обсуждение изображения": 7},
    "th": {"ภาพ": 6, "คุยเรื่องภาพ": 7},
}
# Shortcuts Wikimedia configures for single Wikipedias (operations/mediawiki-config, wgNamespaceAliases;
# read for the languages of mLUKE's set), by site id.
SITE_ALIASES = {
    "enwiki": {"WT": 5, "TM": 10},
    "dewiki": {"P": 100, "PD": 101, "WD": 5, "BD": 3, "H": 12, "HD": 13},
    "elwiki": {"ΒΠ": 4},
    "eswiki": {"CAT": 14, "PR": 102},
    "frwiki": {"DW": 5, "Utilisatrice": 2, "Discussion Utilisatrice": 3},
    "hiwiki": {"वि": 4, "विवा": 5, "WPT": 5, "U": 2, "UT": 3, "स": 2, "सवा": 3, "श्र": 14, "श्रवा": 15, "CT": 15, "सा": 10,
               "सावा": 11, "T": 10, "मी": 8, "मीवा": 9, "P": 100, "प्र": 100, "प्रवा": 101, "Portal": 100, "Portal talk": 101},
    "itwiki": {"CAT": 14, "DP": 103, "DW": 5, "T": 10},
    "nlwiki": {"H": 12, "P": 100},
}
# English Wikipedia's pseudo-namespaces (Wikipedia:Shortcut): article-namespace redirects such as
# "MOS:BOLD" into the project, help, category, portal and template namespaces. Written in capitals,
# and matched only so: "[[MOS:BOLD]]" names a style guide page, "[[mos:...]]" the Mossi Wikipedia.
PSEUDO_NAMESPACES = {"enwiki": {"CAT", "H", "MOS", "P", "T"}}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Interlanguage prefixes: the language editions of Wikipedia, as Wikimedia lists them for its wikis
# (operations/mediawiki-config, the file "langlist", read in 2025, with Mossi "mos" and the other
# editions opened since), and the old codes its interwiki map still forwards (nb -> no, zh-cn -> zh).
INTERLANGUAGE_PREFIXES = _words("""
aa ab ace ady af ak als alt am ami an ang ann anp ar arc ary arz as ast atj av avk awa ay az azb ba ban bar bat-smg bbc
bcl bdr be be-tarask be-x-old bew bg bh bi bjn blk bm bn bo bpy br bs btm bug bxr ca cbk-zam cdo ce ceb ch cho chr chy
ckb co cr crh cs csb cu cv cy da dag de dga din diq dk dsb dtp dty dv dz ee el eml en eo es et eu ext fa fat ff fi
fiu-vro fj fo fon fr frp frr fur fy ga gag gan gcr gd gl glk gn gom gor got gpe gsw gu guc gur guw gv ha hak haw he hi
hif ho hr hsb ht hu hy hyw hz ia iba id ie ig igl ii ik ilo inh io is it iu ja jam jbo jv ka kaa kab kbd kbp kcg kg kge
ki kj kk kl km kn knc ko koi kr krc ks ksh ku kus kv kw ky la lad lb lbe lez lfn lg li lij lld lmo ln lo lrc lt ltg lv
lzh mad mai map-bms mdf mg mh mhr mi min mk ml mn mni mnw mo mos mr mrj ms mt mus mwl my myv mzn na nah nan nap nb nds
nds-nl ne new ng nia nl nn no nov nqo nr nrm nso nup nv ny oc olo om or os pa pag pam pap pcd pcm pdc pfl pi pih pl pms
pnb pnt ps pt pwn qu rki rm rmy rn ro roa-rup roa-tara rsk ru rue rup rw sa sah sat sc scn sco sd se sg sgs sh shi shn
shy si simple sk skr sl sm smn sn so sq sr srn ss st stq su sv sw syl szl szy ta tay tcy tdd te tet tg th ti tig tk tl
tly tn to tok tokipona tp tpi tr trv ts tt tum tw ty tyv udm ug uk ur uz ve vec vep vi vls vo vro wa war wo wuu xal xh
xmf yi yo yue za zea zgh zh zh-classical zh-cn zh-min-nan zh-tw zh-yue zu
""")
# Interwiki prefixes of Wikimedia's interwiki map (meta.wikimedia.org, Interwiki map) that articles
# link with: the sister projects, and the identifier and archive prefixes seen in article text.
INTERWIKI_PREFIXES = _words("""
wikt wiktionary commons meta s wikisource q wikiquote b wikibooks n wikinews v wikiversity voy wikivoyage species
wikispecies d wikidata mw mediawikiwiki m metawikimedia foundation wmf phab phabricator outreach incubator w wikipedia
wikimedia c f wikifunctions nost bugzilla mediazilla gerrit wikitech doi hdl arxiv rfc issn google imdbname
imdbtitle imdbcompany oeis openlibrary wikiapiary
""")

WHITESPACE = re.compile(r"\s+")
BIDI_MARKS = dict.fromkeys(map(ord, "\u200e\u200f\u202a\u202b\u202c\u202d\u202e"))
INVALID_TITLE = re.compile(r"[<>\[\]{}|\x00-\x1f\x7f\ufffd]")


def canonical_title(title: str) -> str:
    """The title MediaWiki stores for a link target, namespace prefix and all; "" when it is not a valid title.

    %XX escapes and HTML entities are decoded, a ``#fragment`` dropped, underscores and runs of
    whitespace become one space, and the first letter is upper-cased (first-letter case).
    """
    if "%" in title:
        title = unquote(title)
    if "&" in title:
        title = html.unescape(title)
    title = title.translate(BIDI_MARKS).replace("_", " ").split("#", 1)[0]
    title = WHITESPACE.sub(" ", title).strip()
    if not title or INVALID_TITLE.search(title):
        return ""
    return title[0].upper() + title[1:]


def _key(name: str) -> str:
    """How MediaWiki compares namespace names: case-insensitive, "_" as a space."""
    return WHITESPACE.sub(" ", name.replace("_", " ")).strip().casefold()


@dataclass(frozen=True)
class Namespaces:
    """The namespace names of one wiki, and what its links point to.

    ``names``: casefolded name -> namespace number, every name this wiki accepts (local names from
    the dump, canonical names, aliases); ``pseudo``: shortcut prefixes, matched in capitals only.
    """

    names: Mapping[str, int] = field(default_factory=dict)
    pseudo: frozenset[str] = frozenset()

    @classmethod
    def of_wiki(cls, site: str = "", language: str = "", local: Mapping[int, str] | None = None) -> Namespaces:
        """The names a wiki accepts: ``local`` (namespace number -> its name in the dump's
        ``<siteinfo>``), the canonical names, MediaWiki's and Wikimedia's aliases for ``language`` and ``site``."""
        names = {_key(name): number for number, name in (*CANONICAL_NAMESPACES.items(), *(local or {}).items()) if number and name}
        for aliases in (EVERY_WIKI_ALIASES, LANGUAGE_ALIASES.get(language, {}), SITE_ALIASES.get(site, {})):
            names.update({_key(name): number for name, number in aliases.items()})
        return cls(names, frozenset(PSEUDO_NAMESPACES.get(site, ())))

    def namespace(self, prefix: str) -> int | None:
        """The namespace number a title prefix names on this wiki; None when it names none."""
        return self.names.get(_key(prefix))

    def classify(self, target: str) -> tuple[str, str]:
        """What a link target points to, as ``(kind, title)``:

        - ``("article", title)``: an article of this wiki (``title`` canonical);
        - ``("hidden", "")``: a link that renders nothing where it stands: a file (the image), a
          category (the box at the page's foot), an interlanguage link (the sidebar);
        - ``("text", "")``: a link that shows its text but names no article: other namespaces,
          ``[[:Category:X]]``, interwiki links, shortcuts, invalid titles.
        """
        target = target.strip()
        colon = target.startswith(":")  # "[[:Category:X]]", "[[:fr:Japon]]": an inline link, shown
        title = canonical_title(target[1:] if colon else target)
        if not title:
            return "text", ""
        if ":" not in title:
            return "article", title
        prefix = title.split(":", 1)[0].strip()
        number = self.namespace(prefix)
        if number is not None:
            return ("hidden" if number in (6, 14) and not colon else "text"), ""
        if prefix in self.pseudo:
            return "text", ""
        lowered = prefix.lower()
        if lowered in INTERLANGUAGE_PREFIXES:
            return ("text" if colon else "hidden"), ""
        if lowered in INTERWIKI_PREFIXES:
            return "text", ""
        return "article", title

    def article_title(self, target: str) -> str:
        """A link target as the title of an article of this wiki; "" when it names no article."""
        kind, title = self.classify(target)
        return title if kind == "article" else ""


# For text of an unknown wiki (no <siteinfo>): the canonical names and MediaWiki's own aliases.
ANY_WIKI = Namespaces.of_wiki()

"""What prepare keeps of a Wikidata dump: labels, descriptions, sitelinks and item-to-item facts.

Only the languages being prepared are kept, which is what makes a full dump fit in memory on a
large machine; for dumps beyond that, the slice flow (docs/PREPARE.md) spreads the text side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lightning_kg.data.dumps import BadRecord
from lightning_kg.data.wikidata import iter_entities
from lightning_kg.data.wikitext import normalize_title

# Wikimedia sites whose name ends in "wiki" but that are not a language's Wikipedia.
NON_LANGUAGE_WIKIS = {"commons", "meta", "species", "wikidata", "mediawiki", "sources", "outreach", "wikimania", "incubator", "wikifunctions"}


def wiki_language(site: str) -> str | None:
    """``"enwiki"`` -> ``"en"``, ``"zh_yuewiki"`` -> ``"zh-yue"``; None for other projects."""
    if not site.endswith("wiki"):
        return None
    code = site[: -len("wiki")]
    if not code or code in NON_LANGUAGE_WIKIS:
        return None
    return code.replace("_", "-")


@dataclass
class KnowledgeBase:
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # entity id -> lang -> label
    descriptions: dict[str, dict[str, str]] = field(default_factory=dict)
    facts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # item -> [(property, object item)]
    sitelinks: dict[tuple[str, str], str] = field(default_factory=dict)  # (lang, normalised title) -> item
    titles: dict[str, dict[str, str]] = field(default_factory=dict)  # item -> lang -> sitelink title

    @classmethod
    def from_dumps(
        cls,
        paths: Iterable[str],
        languages: set[str] | None,
        on_error: Callable[[BadRecord], None] | None,
    ) -> KnowledgeBase:
        """Read Wikidata JSON dumps, keeping ``languages`` (None: every language)."""
        kb = cls()

        def keep(per_language: dict) -> dict:
            return {lang: text for lang, text in per_language.items() if languages is None or lang in languages}

        for path in paths:
            for entity in iter_entities(path, on_error=on_error):
                labels, descriptions = keep(entity.labels), keep(entity.descriptions)
                if labels:
                    kb.labels[entity.id] = labels
                if descriptions:
                    kb.descriptions[entity.id] = descriptions
                if entity.kind != "item":
                    continue
                if entity.claims:
                    kb.facts[entity.id] = list(entity.claims)
                titles = {}
                for site, title in entity.sitelinks.items():
                    lang = wiki_language(site)
                    if lang is not None and (languages is None or lang in languages):
                        titles[lang] = title
                        kb.sitelinks[(lang, normalize_title(title))] = entity.id
                if titles:
                    kb.titles[entity.id] = titles
        return kb

    def resolve(self, lang: str, title: str) -> str:
        """Entity key of a link target: its Q-id through ``sitelinks``, else ``lang:Title``."""
        return self.sitelinks.get((lang, title), f"{lang}:{title}")

"""What prepare keeps of a Wikidata dump: labels, descriptions, aliases, sitelinks and item-to-item facts.

Only the languages being prepared are kept, which is what makes a full dump fit in memory on a
large machine; for dumps beyond that, the slice flow (docs/PREPARE.md) spreads the text side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lightning_kg.prepare.dumps import BadRecord
from lightning_kg.prepare.namespaces import canonical_title
from lightning_kg.prepare.wikidata import iter_entities


@dataclass
class KnowledgeBase:
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # entity id -> lang -> label
    descriptions: dict[str, dict[str, str]] = field(default_factory=dict)
    aliases: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # entity id -> lang -> other names
    facts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # item -> [(property, object item)]
    sitelinks: dict[tuple[str, str], str] = field(default_factory=dict)  # (site id, normalised title) -> item
    titles: dict[str, dict[str, str]] = field(default_factory=dict)  # item -> lang -> sitelink title

    @classmethod
    def from_dumps(
        cls,
        paths: Iterable[str],
        languages: set[str] | None,
        sites: dict[str, str],
        on_error: Callable[[BadRecord], None] | None,
        accept_bad: bool = False,
    ) -> KnowledgeBase:
        """Read Wikidata JSON dumps, keeping ``languages`` (None: every language) and the sitelinks
        of ``sites`` (site id -> its language, ``{"nowiki": "nb"}``: the wikis being prepared)."""
        kb = cls()

        def keep(per_language: dict) -> dict:
            return {lang: text for lang, text in per_language.items() if languages is None or lang in languages}

        for path in paths:
            for entity in iter_entities(path, on_error=on_error, accept_bad=accept_bad):
                for table, values in ((kb.labels, entity.labels), (kb.descriptions, entity.descriptions),
                                      (kb.aliases, entity.aliases)):
                    if kept := {lang: value for lang, value in keep(values).items() if value}:
                        table[entity.id] = kept
                if entity.kind != "item":
                    continue
                if entity.claims:
                    kb.facts[entity.id] = list(entity.claims)
                titles = {}
                for site in sorted(set(entity.sitelinks) & set(sites)):  # sorted: enwiki's title before simplewiki's
                    title = entity.sitelinks[site]
                    titles.setdefault(sites[site], title)
                    kb.sitelinks[(site, canonical_title(title))] = entity.id
                if titles:
                    kb.titles[entity.id] = titles
        return kb

    def resolve(self, site: str, lang: str, title: str) -> str:
        """Entity key of a link target in wiki ``site`` (language ``lang``): its Q-id through
        ``sitelinks``, else ``lang:Title``."""
        return self.sitelinks.get((site, title), f"{lang}:{title}")

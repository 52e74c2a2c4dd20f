"""What prepare keeps of a Wikidata dump: labels, descriptions, aliases, sitelinks and item-to-item facts.

Only what the dataset can use is kept, so memory follows the entity vocabulary, not the dump: the
first pass decodes whole only the items a prepared wiki links to (through their sitelinks) and the
properties, and looks at every other line only for its id, kind and sitelinks; once the vocabulary
is known, :meth:`KnowledgeBase.keep_only` drops the rest and a second pass reads the labels of the
objects of kept facts that the first pass did not decode. Only the languages prepared are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec

from lightning_kg.prepare.dumps import BadRecord
from lightning_kg.prepare.namespaces import canonical_title
from lightning_kg.prepare.wikidata import EntityHead, iter_entities

GENERIC_DECODER = msgspec.json.Decoder()


@dataclass
class KnowledgeBase:
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # entity id -> lang -> label
    descriptions: dict[str, dict[str, str]] = field(default_factory=dict)
    aliases: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # entity id -> lang -> other names
    facts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # item -> [(property, object item)]
    sitelinks: dict[tuple[str, str], str] = field(default_factory=dict)  # (site id, normalised title) -> item
    titles: dict[str, dict[str, str]] = field(default_factory=dict)  # item -> lang -> sitelink title
    decoded: set[str] = field(default_factory=set)  # ids read whole: the linked items and the properties

    @classmethod
    def from_dumps(
        cls,
        paths: Iterable[str],
        languages: set[str] | None,
        sites: dict[str, str],
        on_error: Callable[[BadRecord], None] | None,
        accept_bad: bool = False,
        linked: set[tuple[str, str]] | None = None,
    ) -> KnowledgeBase:
        """Read Wikidata JSON dumps, keeping ``languages`` (None: every language) and the sitelinks
        of ``sites`` (site id -> its language, ``{"nowiki": "nb"}``: the wikis being prepared).
        ``linked``: the (site, title) pairs the wikis link to, redirects followed; only items with a
        sitelink among them (and properties) are kept. None keeps every entity."""
        kb = cls()

        def is_linked(head: EntityHead) -> bool:
            if head.type != "item":
                return True
            try:
                links = GENERIC_DECODER.decode(head.sitelinks)
            except msgspec.DecodeError:
                return True  # decoded whole, which reports it
            if not isinstance(links, dict):
                return True
            for site in sites:
                link = links.get(site)
                if link is None:
                    continue
                if not isinstance(link, dict) or not isinstance(link.get("title", ""), str):
                    return True
                if "title" in link and (site, canonical_title(link["title"])) in linked:
                    return True
            return False

        def keep(per_language: dict) -> dict:
            return {lang: text for lang, text in per_language.items() if languages is None or lang in languages}

        for path in paths:
            for entity in iter_entities(path, on_error=on_error, accept_bad=accept_bad, wanted=None if linked is None else is_linked):
                kb.decoded.add(entity.id)
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

    def keep_only(self, entities: set[str]) -> set[str]:
        """Keep the facts, descriptions and aliases of ``entities`` (the vocabulary's) and of
        properties, and the labels of those and of the objects of their facts (knowledge texts
        state them); drop the rest. Returns the objects whose labels the first pass did not read."""
        self.facts = {e: claims for e, claims in self.facts.items() if e in entities}
        objects = {o for claims in self.facts.values() for _, o in claims}
        labelled = entities | objects
        self.labels = {e: v for e, v in self.labels.items() if e in labelled or not e.startswith("Q")}
        self.descriptions = {e: v for e, v in self.descriptions.items() if e in entities or not e.startswith("Q")}
        self.aliases = {e: v for e, v in self.aliases.items() if e in entities or not e.startswith("Q")}
        return objects - self.decoded

    def add_labels(self, paths: Iterable[str], ids: set[str], languages: set[str] | None) -> None:
        """The second pass: labels of ``ids`` in ``languages``. Bad lines were reported by the first."""
        for path in paths:
            for entity in iter_entities(path, on_error=lambda record: None, accept_bad=True, wanted=lambda head: head.id in ids):
                if kept := {lang: v for lang, v in entity.labels.items() if v and (languages is None or lang in languages)}:
                    self.labels[entity.id] = kept

    def resolve(self, site: str, lang: str, title: str) -> str:
        """Entity key of a link target in wiki ``site`` (language ``lang``): its Q-id through
        ``sitelinks``, else ``lang:Title``."""
        return self.sitelinks.get((site, title), f"{lang}:{title}")

"""What prepare keeps of a Wikidata dump: labels, descriptions, aliases, sitelinks and item-to-item facts.

Only what the dataset can use is kept, so memory follows the entity vocabulary, not the dump. The
first pass looks at every line only for its id, kind and sitelinks, and decodes whole only the
properties (kept) and the items a prepared wiki links to (through their sitelinks: of those only
the sitelinks are kept, on which the vocabulary is counted); the second reads the texts and facts
of the vocabulary's items, the third the labels of their facts' objects (:meth:`KnowledgeBase.keep_only`
says which). Only the languages prepared are kept.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from lightning_kg.prepare.chunk_pool import ChunkPool
from lightning_kg.prepare.dumps import BadRecord
from lightning_kg.prepare.namespaces import canonical_title
from lightning_kg.prepare.wikidata import Selection, iter_entities, iter_labels

Progress = Callable[[int], None]
"""Told the bytes read so far (of the compressed files)."""


def _each_file(paths: Iterable[str], progress: Progress | None) -> Iterator[tuple[str, Progress | None]]:
    """Each path with what tells ``progress`` the bytes of all paths read so far, from its own."""
    done = 0
    for path in paths:
        yield path, None if progress is None else (lambda position, before=done: progress(before + position))
        done += os.path.getsize(path)


@dataclass
class KnowledgeBase:
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # entity id -> lang -> label
    descriptions: dict[str, dict[str, str]] = field(default_factory=dict)
    aliases: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # entity id -> lang -> other names
    facts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # item -> [(property, object item)]
    sitelinks: dict[tuple[str, str], str] = field(default_factory=dict)  # (site id, normalised title) -> item
    titles: dict[str, dict[str, str]] = field(default_factory=dict)  # item -> lang -> sitelink title
    decoded: set[str] = field(default_factory=set)  # ids whose texts were read: properties, then the vocabulary's items

    @classmethod
    def from_dumps(
        cls,
        paths: Iterable[str],
        languages: set[str] | None,
        sites: dict[str, str],
        on_error: Callable[[BadRecord], None] | None,
        accept_bad: bool = False,
        linked: set[tuple[str, str]] | None = None,
        pool: ChunkPool | None = None,
        progress: Progress | None = None,
    ) -> KnowledgeBase:
        """Read Wikidata JSON dumps, keeping ``languages`` (None: every language) and the sitelinks
        of ``sites`` (site id -> its language, ``{"nowiki": "nb"}``: the wikis being prepared).
        ``linked``: the (site, title) pairs the wikis link to, redirects followed; only items with a
        sitelink among them (and properties) are kept. None keeps every entity. ``pool``: the
        processes that decode the lines (here and in the later passes); ``progress`` is told the
        bytes of all ``paths`` read so far (here and in the later passes)."""
        kb = cls()
        selection = None if linked is None else Selection(linked, tuple(sites), None if languages is None else frozenset(languages))
        for path, told in _each_file(paths, progress):
            for entity in iter_entities(path, on_error=on_error, accept_bad=accept_bad, selection=selection, pool=pool,
                                        progress=told):
                # With ``linked``, an item's texts and facts wait for the second pass, which reads the
                # vocabulary's only: this one keeps its sitelinks (the vocabulary is counted on them).
                if linked is None or entity.kind != "item":
                    kb._add_texts(entity, languages)
                if entity.kind == "item":
                    kb._add_sitelinks(entity, sites)
        return kb

    def _add_texts(self, entity, languages: set[str] | None) -> None:
        """Labels, descriptions and aliases in ``languages`` and the facts of a decoded entity."""
        self.decoded.add(entity.id)
        for table, values in ((self.labels, entity.labels), (self.descriptions, entity.descriptions), (self.aliases, entity.aliases)):
            if kept := {lang: value for lang, value in values.items() if value and (languages is None or lang in languages)}:
                table[entity.id] = kept
        if entity.kind == "item" and entity.claims:
            self.facts[entity.id] = list(entity.claims)

    def _add_sitelinks(self, entity, sites: dict[str, str]) -> None:
        titles = {}
        for site in sorted(set(entity.sitelinks) & set(sites)):  # sorted: enwiki's title before simplewiki's
            title = entity.sitelinks[site]
            titles.setdefault(sites[site], title)
            self.sitelinks[(site, canonical_title(title))] = entity.id
        if titles:
            self.titles[entity.id] = titles

    def add_items(self, paths: Iterable[str], ids: set[str], languages: set[str] | None, pool: ChunkPool | None = None,
                  progress: Progress | None = None) -> None:
        """The second pass: texts and facts of the items ``ids`` (the vocabulary's). Bad lines were
        reported by the first pass (and a linked item that could not be read has no sitelinks)."""
        for path, told in _each_file(paths, progress):
            for entity in iter_entities(path, on_error=lambda record: None, accept_bad=True,
                                      selection=Selection(ids, languages=None if languages is None else frozenset(languages)),
                                      pool=pool, progress=told):
                self._add_texts(entity, languages)

    def keep_only(self, entities: set[str]) -> set[str]:
        """Keep the facts, descriptions and aliases of ``entities`` (the vocabulary's) and of
        properties, and the labels of those and of the objects of their facts (knowledge texts
        state them); drop the rest. Returns the objects whose labels no pass has read yet."""
        self.facts = {e: claims for e, claims in self.facts.items() if e in entities}
        objects = {o for claims in self.facts.values() for _, o in claims}
        labelled = entities | objects
        self.labels = {e: v for e, v in self.labels.items() if e in labelled or not e.startswith("Q")}
        self.descriptions = {e: v for e, v in self.descriptions.items() if e in entities or not e.startswith("Q")}
        self.aliases = {e: v for e, v in self.aliases.items() if e in entities or not e.startswith("Q")}
        return objects - self.decoded

    def add_labels(self, paths: Iterable[str], ids: set[str], languages: set[str] | None, pool: ChunkPool | None = None,
                   progress: Progress | None = None) -> None:
        """The third pass: labels of ``ids`` in ``languages`` (objects of the vocabulary's facts), only
        their labels decoded. (An object whose other members are malformed now has its labels; a
        single whole pass left it out.)"""
        for path, told in _each_file(paths, progress):
            for entity_id, labels in iter_labels(path, ids, pool, None if languages is None else frozenset(languages), told):
                if kept := {lang: v for lang, v in labels.items() if v and (languages is None or lang in languages)}:
                    self.labels[entity_id] = kept

    def to_json(self) -> dict:
        """The knowledge base as JSON values, in the order of its tables (a restart reads it back)."""
        return {"labels": self.labels, "descriptions": self.descriptions, "aliases": self.aliases, "facts": self.facts,
                "sitelinks": [[site, title, entity] for (site, title), entity in self.sitelinks.items()],
                "titles": self.titles, "decoded": sorted(self.decoded)}

    @classmethod
    def from_json(cls, values: dict) -> KnowledgeBase:
        return cls(labels=values["labels"], descriptions=values["descriptions"], aliases=values["aliases"],
                   facts={entity: [tuple(fact) for fact in facts] for entity, facts in values["facts"].items()},
                   sitelinks={(site, title): entity for site, title, entity in values["sitelinks"]},
                   titles=values["titles"], decoded=set(values["decoded"]))

    def resolve(self, site: str, lang: str, title: str) -> str:
        """Entity key of a link target in wiki ``site`` (language ``lang``): its Q-id through
        ``sitelinks``, else ``lang:Title``."""
        return self.sitelinks.get((site, title), f"{lang}:{title}")

"""Coarse entity types from Wikidata classes, as WikiANN typed its link anchors: an entity's ``P31``
classes, and their ``P279`` superclasses up to a bounded depth, looked up in a small table of class
Q-ids -> type (PER, LOC, ORG, MISC). The silver transfer tasks (``silver_tasks``) tag anchors with it.

The merge keeps the item-valued claims, ``P31`` among them, of the vocabulary's entities only; the
classes are seldom in the vocabulary, so their ``P279`` claims are read here, one Wikidata pass per
level climbed, and only for classes the table does not already type.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

from lightning_kg.prepare.chunk_pool import ChunkPool
from lightning_kg.prepare.wikidata import Selection, iter_entities

log = logging.getLogger("lightning_kg.prepare")
INSTANCE_OF, SUBCLASS_OF = "P31", "P279"

# Real Wikidata classes -> WikiANN's types. A class below one of these (through P279) takes its type.
DEFAULT_TYPE_CLASSES = {
    "Q5": "PER",  # human
    "Q215627": "PER",  # person
    "Q43229": "ORG",  # organization
    "Q4830453": "ORG",  # business
    "Q2221906": "LOC",  # geographic location
    "Q618123": "LOC",  # geographical feature
    "Q82794": "LOC",  # geographic region
    "Q486972": "LOC",  # human settlement
    "Q6256": "LOC",  # country
    "Q515": "LOC",  # city
    "Q1656682": "MISC",  # event
    "Q7725634": "MISC",  # literary work
    "Q11424": "MISC",  # film
    "Q34770": "MISC",  # language
    "Q8192": "MISC",  # writing system
    "Q8142": "MISC",  # currency
}


def instance_classes(facts: dict[str, list[tuple[str, str]]], entities: Iterable[str]) -> dict[str, list[str]]:
    """entity -> its ``P31`` classes, in claim order (entities without one left out)."""
    found = {}
    for entity in entities:
        if classes := [o for p, o in facts.get(entity, []) if p == INSTANCE_OF]:
            found[entity] = classes
    return found


def read_superclasses(paths: list[str], classes: set[str], type_classes: dict[str, str], depth: int,
                      pool: ChunkPool | None = None) -> dict[str, list[str]]:
    """class -> its ``P279`` superclasses, for ``classes`` and those above them, up to ``depth``
    levels; a class the table types is not climbed from. One pass over ``paths`` per level with
    classes left to climb from (bad lines were reported by the merge's first pass)."""
    parents: dict[str, list[str]] = {}
    frontier = {c for c in classes if c not in type_classes}
    asked = set(frontier)
    for _ in range(depth):
        if not frontier or not paths:
            break
        for path in paths:
            for entity in iter_entities(path, on_error=lambda record: None, accept_bad=True,
                                        selection=Selection(frontier, languages=frozenset()), pool=pool):
                parents[entity.id] = [o for p, o in entity.claims if p == SUBCLASS_OF]
        frontier = {p for c in frontier for p in parents.get(c, [])} - asked - set(type_classes)
        asked |= frontier
    return parents


def entity_type(classes: list[str], parents: dict[str, list[str]], type_classes: dict[str, str], depth: int) -> str | None:
    """The type of an entity with ``P31`` ``classes``: that of the nearest mapped class, 0 to
    ``depth`` ``P279`` steps up; None where none maps, or two types are equally near (ambiguous)."""
    level, seen = list(dict.fromkeys(classes)), set(classes)
    for _ in range(depth + 1):
        if found := {type_classes[c] for c in level if c in type_classes}:
            return found.pop() if len(found) == 1 else None
        level = [p for c in level for p in parents.get(c, []) if p not in seen]
        seen.update(level)
    return None


def type_entities(entities: Iterable[str], facts: dict[str, list[tuple[str, str]]], paths: list[str],
                  type_classes: dict[str, str], depth: int, pool: ChunkPool | None = None) -> dict[str, str]:
    """entity -> type for every entity of ``entities`` a class types, with a log line counting
    those typed, those without ``P31`` and those whose classes map to no type (or to two)."""
    classes = instance_classes(facts, entities)
    parents = read_superclasses(paths, {c for found in classes.values() for c in found}, type_classes, depth, pool)
    types, counts = {}, Counter()
    for entity in entities:
        if entity not in classes:
            counts["without P31"] += 1
        elif (found := entity_type(classes[entity], parents, type_classes, depth)) is None:
            counts["untyped (no class maps within the depth, or two types as near)"] += 1
        else:
            types[entity] = found
            counts[found] += 1
    log.info("entity types (P31, P279 up to %d levels): %s", depth, ", ".join(f"{n} {what}" for what, n in sorted(counts.items())))
    return types

"""Fact shards -> cloze queries, each with the candidate objects it is ranked against.

As mLAMA does, a query's candidates are all objects of its relation (here: in every fact split
of the dataset, so the held-out answer is always among them) that have a label in the query's
language; the entity-based and the word-based prompts rank the same set. A fact is skipped, and
counted with its reason, when its relation has no template in its language or when its relation
has a single candidate (nothing to rank: P@1 would be 1 for any model).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import webdataset as wds

NO_TEMPLATE = "no template"
ONE_CANDIDATE = "a single candidate"


@dataclass(frozen=True)
class Fact:
    """One fact sample (docs/FORMATS.md): entity indices and the labels in ``lang``."""

    subject: int
    relation: str
    object: int
    lang: str
    subject_label: str
    object_label: str


@dataclass(frozen=True)
class ClozeQuery:
    fact: Fact
    template: str
    candidates: tuple[int, ...]
    """Entity indices ranked for this query; the answer is among them."""
    candidate_labels: tuple[str, ...]
    """Their labels in the query's language, in the same order."""

    @property
    def answer(self) -> int:
        """Position of the fact's object in ``candidates``."""
        return self.candidates.index(self.fact.object)


def read_facts(urls: Iterable[str]) -> list[Fact]:
    """Every fact sample of the shards ``urls``, in order; a bad sample's error names its shard and key."""
    facts = []
    for raw in wds.DataPipeline(wds.SimpleShardList(list(urls)), wds.tarfile_to_samples()):
        where = f"{raw.get('__url__', '?')}: sample {raw.get('__key__', '?')}"
        try:
            meta = json.loads(raw["json"])
            fact = Fact(int(meta["subject"]), str(meta["relation"]), int(meta["object"]), str(meta["lang"]),
                        str(meta["subject_label"]), str(meta["object_label"]))
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(f"{where}: not a fact sample (expected json with subject, relation, object, lang "
                             f"and labels; {error!r})") from None
        # A blank label has no token to mask or to put the subject's entity on.
        for field in ("subject_label", "object_label"):
            if not getattr(fact, field).strip():
                raise ValueError(f"{where}: {field} is {getattr(fact, field)!r}; a fact sample's labels are non-empty text")
        facts.append(fact)
    return facts


@dataclass
class QuerySet:
    queries: list[ClozeQuery]
    skipped: Counter
    """(language, relation, reason) -> facts skipped."""


def build_queries(probed: list[Fact], known: list[Fact], templates: dict[str, dict[str, str]],
                  titles: list[dict[str, str]]) -> QuerySet:
    """Cloze queries for the facts ``probed``; candidates come from ``known`` (all fact splits) and
    ``probed``. Labels are the facts' own (Wikidata's), else the entity vocabulary's ``titles``."""
    objects: dict[str, set[int]] = {}
    labels: dict[tuple[int, str], str] = {}
    for fact in [*known, *probed]:
        objects.setdefault(fact.relation, set()).add(fact.object)
        labels.setdefault((fact.object, fact.lang), fact.object_label)
    queries, skipped = [], Counter()
    for fact in probed:
        template = templates.get(fact.relation, {}).get(fact.lang)
        if template is None:
            skipped[fact.lang, fact.relation, NO_TEMPLATE] += 1
            continue
        candidates, candidate_labels = [], []
        for entity in sorted(objects[fact.relation]):
            label = labels.get((entity, fact.lang)) or (titles[entity].get(fact.lang) if entity < len(titles) else None)
            if label and label.strip():
                candidates.append(entity)
                candidate_labels.append(label)
        if len(candidates) < 2:
            skipped[fact.lang, fact.relation, ONE_CANDIDATE] += 1
            continue
        queries.append(ClozeQuery(fact, template, tuple(candidates), tuple(candidate_labels)))
    return QuerySet(queries, skipped)

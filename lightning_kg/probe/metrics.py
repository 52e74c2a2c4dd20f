"""Scores -> ranks -> P@1, P@10, MRR per language and relation; cross-lingual consistency; entity alignment.

Averages are macro, as mLAMA reports them: a (language, relation) cell is the mean over its
queries, a language's row the mean over its relations' cells, a relation's row the mean over its
languages' cells, and the overall row the mean over languages. ``chance_p1`` goes through the same
averaging, so it is the P@1 a random scorer would get on exactly these queries. ``majority_p1`` is
LAMA's frequency baseline: the P@1 of always answering the relation's most frequent object (over
all the facts asked, whatever their language: objects are entities), what a model gets from knowing
the relation's usual answer without knowing the subject.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import NamedTuple

import numpy as np
import torch

from lightning_kg.probe.queries import ClozeQuery, Fact
from lightning_kg.probe.scoring import Scorer

KINDS = ("entity", "word")
ALIGNMENT = ("alignment_acc1", "alignment_acc1_distinct", "alignment_same_label")
"""Entity alignment columns: acc@1 over all entities asked, acc@1 over those whose two labels differ
(spelling alone cannot find these), and the share of entities whose two labels are the same string."""
METRICS = ("p1", "p10", "mrr")
COLUMNS = ("scope", "key", "queries", "skipped", "candidates", "chance_p1", "majority_p1",
           *(f"{kind}_{metric}" for kind in KINDS for metric in METRICS),
           *(f"{kind}_consistency" for kind in KINDS), *ALIGNMENT)


def _nan_last(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    return np.where(np.isnan(scores), -np.inf, scores)


def answer_rank(scores: np.ndarray, answer: int) -> int:
    """0-based rank of candidate ``answer``: the other candidates scoring at least as high. Ties count
    against the model, so a scorer that gives every candidate the same score gets P@1 = 0, not 1; a
    NaN score (a diverged model) ranks below every number, so NaN everywhere is one big tie too."""
    scores = _nan_last(scores)
    others = np.delete(scores, answer)
    return int((others >= scores[answer]).sum())


def top_candidate(scores: np.ndarray, candidates: Sequence[int]) -> int | None:
    """The entity scored highest, or None when several share the highest score (no top-1 prediction:
    two tied rankings must not count as agreeing because both fall back to the first candidate)."""
    scores = _nan_last(scores)
    best = np.flatnonzero(scores == scores.max())
    return candidates[int(best[0])] if len(best) == 1 else None


@dataclass(frozen=True)
class QueryResult:
    fact: Fact
    candidates: int
    ranks: dict[str, int]
    """Prompt kind -> rank of the answer, for the kinds that were scored."""
    top: dict[str, int | None]
    """Prompt kind -> the entity ranked first (None: a tie for first)."""


def evaluate(queries: Sequence[ClozeQuery], scorers: dict[str, Scorer]) -> list[QueryResult]:
    """Score every query with every scorer (``{"entity": ..., "word": ...}``, either may be missing)."""
    scores = {kind: scorer(queries) for kind, scorer in scorers.items()}
    results = []
    for number, query in enumerate(queries):
        ranks, top = {}, {}
        for kind, per_query in scores.items():
            values = per_query[number]
            if len(values) != len(query.candidates):
                raise ValueError(f"{kind} scorer gave {len(values)} scores for {len(query.candidates)} candidates")
            ranks[kind] = answer_rank(values, query.answer)
            top[kind] = top_candidate(values, query.candidates)
        results.append(QueryResult(query.fact, len(query.candidates), ranks, top))
    return results


def _query_values(result: QueryResult, majority: int) -> dict[str, float]:
    """One query's metrics; ``majority`` is the most frequent object of its relation."""
    values = {"chance_p1": 1.0 / result.candidates, "majority_p1": float(result.fact.object == majority)}
    for kind, rank in result.ranks.items():
        values.update({f"{kind}_p1": float(rank < 1), f"{kind}_p10": float(rank < 10), f"{kind}_mrr": 1.0 / (rank + 1)})
    return values


def _mean(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    rows = list(rows)
    return {key: float(np.mean([row[key] for row in rows])) for key in (rows[0] if rows else {})}


def _agreement(pairs: list[tuple[QueryResult, QueryResult]], kind: str) -> float | None:
    """Share of pairs with the same top-1 entity; a pair where either side has no top-1 (a tie) disagrees."""
    pairs = [(a, b) for a, b in pairs if kind in a.top and kind in b.top]
    return float(np.mean([a.top[kind] is not None and a.top[kind] == b.top[kind] for a, b in pairs])) if pairs else None


def _alignment_means(alignments: Iterable[Alignment]) -> dict[str, float | None]:
    """Macro means over language pairs of :data:`ALIGNMENT`; a pair with no entity of differing
    labels has no ``acc1_distinct`` and is left out of that mean."""
    alignments = list(alignments)
    values = {"alignment_acc1": [a.acc1 for a in alignments],
              "alignment_acc1_distinct": [a.acc1_distinct for a in alignments if a.acc1_distinct is not None],
              "alignment_same_label": [a.same_label for a in alignments]}
    return {column: float(np.mean(v)) if v else None for column, v in values.items()}


def summarise(results: Sequence[QueryResult], skipped: Counter, alignment: dict[tuple[str, str], Alignment]) -> list[dict]:
    """Rows of :data:`COLUMNS`: one per language, one per relation, and ``all``. Metrics of a prompt
    kind that was not scored are None; ``skipped`` is (language, relation, reason) -> facts;
    ``alignment`` is :func:`alignment_accuracy`'s (a language row averages the pairs it asks from)."""
    objects: dict[str, Counter] = defaultdict(Counter)
    for result in results:
        objects[result.fact.relation][result.fact.object] += 1
    # The most frequent object; a tie goes to the smaller entity index, so the figure is repeatable.
    majority = {relation: min(counts, key=lambda entity: (-counts[entity], entity)) for relation, counts in objects.items()}
    cells: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for result in results:
        cells[result.fact.lang, result.fact.relation].append(_query_values(result, majority[result.fact.relation]))
    cell_means = {key: _mean(values) for key, values in cells.items()}
    # Pairs of one fact asked in two languages, for consistency.
    by_fact: dict[tuple[int, str, int], list[QueryResult]] = defaultdict(list)
    for result in results:
        by_fact[result.fact.subject, result.fact.relation, result.fact.object].append(result)
    pairs = [pair for group in by_fact.values() for pair in combinations(group, 2)]

    def row(scope: str, key: str, members: list[QueryResult], means: list[dict[str, float]],
            pair_subset: list, skipped_count: int, aligned: list[Alignment]) -> dict:
        values = _mean(means)
        out = dict.fromkeys(COLUMNS)
        out.update(_alignment_means(aligned))
        out.update(scope=scope, key=key, queries=len(members), skipped=skipped_count,
                   candidates=float(np.mean([m.candidates for m in members])) if members else None)
        out.update({k: v for k, v in values.items() if k in out})
        for kind in KINDS:
            out[f"{kind}_consistency"] = _agreement(pair_subset, kind)
        return out

    languages = sorted({r.fact.lang for r in results} | {lang for lang, _, _ in skipped} | {a for a, _ in alignment})
    # P17 before P282: by the property's number where the name has one.
    relations = sorted({r.fact.relation for r in results} | {relation for _, relation, _ in skipped},
                       key=lambda name: (len(name), name))
    rows = []
    for lang in languages:
        rows.append(row("language", lang, [r for r in results if r.fact.lang == lang],
                        [m for (cell_lang, _), m in cell_means.items() if cell_lang == lang],
                        [p for p in pairs if lang in (p[0].fact.lang, p[1].fact.lang)],
                        sum(n for (skipped_lang, _, _), n in skipped.items() if skipped_lang == lang),
                        [aligned for (a, _), aligned in alignment.items() if a == lang]))
    for relation in relations:
        rows.append(row("relation", relation, [r for r in results if r.fact.relation == relation],
                        [m for (_, rel), m in cell_means.items() if rel == relation],
                        [p for p in pairs if p[0].fact.relation == relation],
                        sum(n for (_, rel, _), n in skipped.items() if rel == relation), []))
    language_means = [_mean(m for (cell_lang, _), m in cell_means.items() if cell_lang == lang) for lang in languages]
    rows.append(row("all", "mean", list(results), [m for m in language_means if m], pairs, sum(skipped.values()),
                    list(alignment.values())))
    return rows


class LabelVectors(NamedTuple):
    """One language's side of the alignment test."""

    entities: Sequence[int]
    labels: Sequence[str]
    """Each entity's label in this language."""
    vectors: torch.Tensor
    """(len(entities), H) L2-normalised label vectors, same order."""


@dataclass(frozen=True)
class Alignment:
    """Entity alignment from one language to another."""

    acc1: float
    """Accuracy@1 over every entity asked."""
    acc1_distinct: float | None
    """Accuracy@1 over the entities whose two labels differ (None: there are none). A label spelt the
    same in both languages ("Europa") finds itself by spelling alone."""
    same_label: float
    """Share of the entities asked whose two labels are the same string."""


def alignment_accuracy(embeddings: dict[str, LabelVectors], chunk_size: int = 1024) -> dict[tuple[str, str], Alignment]:
    """Entity alignment for every ordered language pair (a, b): each entity's label in ``a``
    retrieves, by cosine similarity, among all entities' labels in ``b``; right when it finds itself
    and nothing else scores as high. Two entities with the same label in ``b`` tie (their vectors are
    one), so neither can be found. Entities with a label in both languages are asked; every entity with
    a label in ``b`` is a candidate; ``chunk_size`` queries at a time bound the (chunk, candidates) matrix.
    """
    accuracy = {}
    for a, b in ((a, b) for a in embeddings for b in embeddings if a != b):
        side_a, side_b = embeddings[a], embeddings[b]
        row_of_b = {entity: i for i, entity in enumerate(side_b.entities)}
        shared = [(i, row_of_b[entity]) for i, entity in enumerate(side_a.entities) if entity in row_of_b]
        if not shared:
            continue
        label_count_b = Counter(side_b.labels)
        label_unique_b = torch.as_tensor([label_count_b[label] == 1 for label in side_b.labels])
        correct = []
        for start in range(0, len(shared), chunk_size):
            chunk = shared[start : start + chunk_size]
            rows_a = torch.as_tensor([i for i, _ in chunk])
            rows_b = torch.as_tensor([j for _, j in chunk])
            similarity = side_a.vectors[rows_a] @ side_b.vectors.T
            own = similarity[torch.arange(len(chunk)), rows_b]
            correct.append((((similarity >= own[:, None]).sum(1) == 1) & label_unique_b[rows_b]).numpy())
        correct = np.concatenate(correct)
        distinct = np.array([side_a.labels[i] != side_b.labels[j] for i, j in shared])
        accuracy[a, b] = Alignment(float(correct.mean()), float(correct[distinct].mean()) if distinct.any() else None,
                                   float(1.0 - distinct.mean()))
    return accuracy

"""Scores -> ranks -> P@1, P@10, MRR per language and relation; cross-lingual consistency; entity alignment.

Averages are macro, as mLAMA reports them: a (language, relation) cell is the mean over its
queries, a language's row the mean over its relations' cells, a relation's row the mean over its
languages' cells, and the overall row the mean over languages. ``chance_p1`` goes through the same
averaging, so it is the P@1 a random scorer would get on exactly these queries.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch

from lightning_kg.probe.queries import ClozeQuery, Fact
from lightning_kg.probe.scoring import Scorer

KINDS = ("entity", "word")
METRICS = ("p1", "p10", "mrr")
COLUMNS = ("scope", "key", "queries", "skipped", "candidates", "chance_p1",
           *(f"{kind}_{metric}" for kind in KINDS for metric in METRICS),
           *(f"{kind}_consistency" for kind in KINDS), "alignment_acc1")


def answer_rank(scores: np.ndarray, answer: int) -> int:
    """0-based rank of candidate ``answer``: the other candidates scoring at least as high. Ties count
    against the model, so a scorer that gives every candidate the same score gets P@1 = 0, not 1."""
    others = np.delete(np.asarray(scores), answer)
    return int((others >= scores[answer]).sum())


@dataclass(frozen=True)
class QueryResult:
    fact: Fact
    candidates: int
    ranks: dict[str, int]
    """Prompt kind -> rank of the answer, for the kinds that were scored."""
    top: dict[str, int]
    """Prompt kind -> the entity ranked first."""


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
            top[kind] = query.candidates[int(np.argmax(values))]
        results.append(QueryResult(query.fact, len(query.candidates), ranks, top))
    return results


def _query_values(result: QueryResult) -> dict[str, float]:
    values = {"chance_p1": 1.0 / result.candidates}
    for kind, rank in result.ranks.items():
        values.update({f"{kind}_p1": float(rank < 1), f"{kind}_p10": float(rank < 10), f"{kind}_mrr": 1.0 / (rank + 1)})
    return values


def _mean(rows: Iterable[dict[str, float]]) -> dict[str, float]:
    rows = list(rows)
    return {key: float(np.mean([row[key] for row in rows])) for key in (rows[0] if rows else {})}


def _agreement(pairs: list[tuple[QueryResult, QueryResult]], kind: str) -> float | None:
    pairs = [(a, b) for a, b in pairs if kind in a.top and kind in b.top]
    return float(np.mean([a.top[kind] == b.top[kind] for a, b in pairs])) if pairs else None


def summarise(results: Sequence[QueryResult], skipped: Counter, alignment: dict[tuple[str, str], float]) -> list[dict]:
    """Rows of :data:`COLUMNS`: one per language, one per relation, and ``all``. Metrics of a prompt
    kind that was not scored are None; ``skipped`` is (language, relation, reason) -> facts."""
    cells: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for result in results:
        cells[result.fact.lang, result.fact.relation].append(_query_values(result))
    cell_means = {key: _mean(values) for key, values in cells.items()}
    # Pairs of one fact asked in two languages, for consistency.
    by_fact: dict[tuple[int, str, int], list[QueryResult]] = defaultdict(list)
    for result in results:
        by_fact[result.fact.subject, result.fact.relation, result.fact.object].append(result)
    pairs = [pair for group in by_fact.values() for pair in combinations(group, 2)]

    def row(scope: str, key: str, members: list[QueryResult], means: list[dict[str, float]],
            pair_subset: list, skipped_count: int, aligned: float | None) -> dict:
        values = _mean(means)
        out = {column: None for column in COLUMNS}
        out.update(scope=scope, key=key, queries=len(members), skipped=skipped_count, alignment_acc1=aligned,
                   candidates=float(np.mean([m.candidates for m in members])) if members else None)
        out.update({k: v for k, v in values.items() if k in out})
        for kind in KINDS:
            out[f"{kind}_consistency"] = _agreement(pair_subset, kind)
        return out

    languages = sorted({r.fact.lang for r in results} | {lang for lang, _, _ in skipped})
    # P17 before P282: by the property's number where the name has one.
    relations = sorted({r.fact.relation for r in results} | {relation for _, relation, _ in skipped},
                       key=lambda name: (len(name), name))
    rows = []
    for lang in languages:
        targets = {b: acc for (a, b), acc in alignment.items() if a == lang}
        rows.append(row("language", lang, [r for r in results if r.fact.lang == lang],
                        [m for (cell_lang, _), m in cell_means.items() if cell_lang == lang],
                        [p for p in pairs if lang in (p[0].fact.lang, p[1].fact.lang)],
                        sum(n for (skipped_lang, _, _), n in skipped.items() if skipped_lang == lang),
                        float(np.mean(list(targets.values()))) if targets else None))
    for relation in relations:
        rows.append(row("relation", relation, [r for r in results if r.fact.relation == relation],
                        [m for (_, rel), m in cell_means.items() if rel == relation],
                        [p for p in pairs if p[0].fact.relation == relation],
                        sum(n for (_, rel, _), n in skipped.items() if rel == relation), None))
    language_means = [_mean(m for (cell_lang, _), m in cell_means.items() if cell_lang == lang) for lang in languages]
    rows.append(row("all", "mean", list(results), [m for m in language_means if m], pairs, sum(skipped.values()),
                    float(np.mean(list(alignment.values()))) if alignment else None))
    return rows


def alignment_accuracy(embeddings: dict[str, tuple[Sequence[int], torch.Tensor]]) -> dict[tuple[str, str], float]:
    """Entity alignment, accuracy@1 for every ordered language pair (a, b): each entity's label in ``a``
    retrieves, by cosine similarity, among all entities' labels in ``b``; right when it finds itself.

    ``embeddings``: language -> (entity indices, (N, H) L2-normalised label vectors in that order).
    Entities with a label in both languages are asked; every entity with a label in ``b`` is a candidate.
    """
    accuracy = {}
    for a, b in ((a, b) for a in embeddings for b in embeddings if a != b):
        entities_a, vectors_a = embeddings[a]
        entities_b, vectors_b = embeddings[b]
        row_of_b = {entity: i for i, entity in enumerate(entities_b)}
        shared = [(i, row_of_b[entity]) for i, entity in enumerate(entities_a) if entity in row_of_b]
        if not shared:
            continue
        rows_a = torch.as_tensor([i for i, _ in shared])
        rows_b = torch.as_tensor([j for _, j in shared])
        nearest = (vectors_a[rows_a] @ vectors_b.T).argmax(1)
        accuracy[a, b] = float((nearest == rows_b).float().mean())
    return accuracy

"""Text rows sampled by language as XLM-R and mLUKE do: language l with probability
p_l = n_l^alpha / sum_k n_k^alpha, n_l being its training samples (alpha 1: as in the data; XLM-R
0.3; mLUKE 0.7), so that a small Wikipedia is read more often than its size would have it.

Each language gets its own resampled stream of the shards that hold it (``manifest.json`` counts
each shard's samples per language; an older manifest's shards are read once to count them), which
keeps only that language's samples; a generator seeded by (seed, rank, lane) picks each row's
language. The picks depend on nothing but the seed, so a resumed run replays them exactly, and
the streams are endless, so every rank makes the same number of steps.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import numpy as np

from lightning_kg.data.checks import shard_samples

TABLE_FILE = "language_sampling.md"
"""The mix table a run writes into its directory at start."""

DRAWS_AT_ONCE = 1024  # language picks drawn per call of the generator (one call per row would be slow)


def _sample_language(raw: dict) -> str | None:
    try:
        meta = json.loads(raw["json"])
    except (KeyError, ValueError):
        return None
    return meta.get("lang") if isinstance(meta, dict) else None


def shard_language_counts(urls: list[str], listed: dict[str, dict[str, int] | None]) -> dict[str, dict[str, int]]:
    """Samples per language of each of ``urls``: the manifest's counts (``listed``, by URL), else
    read from the shard (a manifest written before prepare counted them, or a shard outside it)."""
    counts = {}
    for url in urls:
        if listed.get(url) is not None:
            counts[url] = dict(listed[url])
            continue
        found = Counter(_sample_language(raw) for raw in shard_samples([{"url": url}], {}, skip=False))
        if None in found:
            raise ValueError(f"{url}: {found[None]} sample(s) without a 'lang' in their json; language sampling "
                             "needs each text sample's language (docs/FORMATS.md)")
        counts[url] = dict(sorted(found.items()))
    return counts


def sampling_probabilities(samples_per_language: dict[str, int], alpha: float) -> dict[str, float]:
    """p_l proportional to n_l^alpha over the languages with samples, in sorted order."""
    weights = {lang: float(n) ** alpha for lang, n in sorted(samples_per_language.items()) if n > 0}
    total = sum(weights.values())
    return {lang: weight / total for lang, weight in weights.items()}


def sampling_table(samples_per_language: dict[str, int], probabilities: dict[str, float], text_rows_per_step: float,
                   alpha: float) -> str:
    """A Markdown table: per language, share in the data, sampling probability and expected text
    rows per 1,000 optimiser steps (``text_rows_per_step``: over all ranks)."""
    total = sum(samples_per_language.values())
    lines = [f"language sampling, alpha {alpha:g} (p_l proportional to n_l^alpha); {text_rows_per_step:g} text rows per step",
             "", "| language | samples | share in data | sampling probability | rows per 1,000 steps |", "| --- | ---: | ---: | ---: | ---: |"]
    for lang, probability in probabilities.items():
        n = samples_per_language[lang]
        lines.append(f"| {lang} | {n} | {n / total:.4f} | {probability:.4f} | {probability * text_rows_per_step * 1000:.0f} |")
    return "\n".join(lines) + "\n"


def of_language(samples: Iterator[dict], lang: str) -> Iterator[dict]:
    """The raw samples of ``lang``; one whose language cannot be read is kept, so that the checks
    (``checks.decode_sample``) name it rather than it vanishing."""
    for raw in samples:
        found = _sample_language(raw)
        if found is None or found == lang:
            yield raw


def mixed_by_language(streams: dict[str, Iterator[dict]], probabilities: dict[str, float], seed: int) -> Iterator[dict]:
    """Endless samples: each from the stream of a language drawn with ``probabilities``
    (same keys as ``streams``), by a generator seeded with ``seed`` alone."""
    languages = list(streams)
    p = np.asarray([probabilities[lang] for lang in languages], dtype=np.float64)
    rng = np.random.default_rng(seed)
    while True:
        for pick in rng.choice(len(languages), size=DRAWS_AT_ONCE, p=p / p.sum()):
            yield next(streams[languages[pick]])

"""The manifest stage of ``prepare``: what the stages recorded -> ``manifest.json`` (shard list,
counts, config and hashes); shards of earlier runs with other settings are removed."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict
from pathlib import Path

from lightning_kg.dataset.files import file_sha256, write_json
from lightning_kg.dataset.manifest import directory_sha256
from lightning_kg.prepare.cached_steps import required
from lightning_kg.prepare.config import RUN_SETTINGS, PrepareConfig

log = logging.getLogger("lightning_kg.prepare")
SHARD_NAME = re.compile(r"(train|val|facts-train|facts-val|facts-heldout)-\d{6}\.tar")


def write_manifest(out: Path, work_dir: Path, summaries: list[dict], wiki_paths: list[str], data_paths: list[str],
                   config: PrepareConfig, digest: str, tasks: dict[str, dict[str, int]] | None = None) -> dict:
    """Combine what the stages recorded into ``manifest.json`` (step 4); ``tasks``: the transfer
    task files written (task -> file name -> examples), listed under ``tasks``."""
    merged = required(work_dir / "merge.json", digest, "run the merge stage first")
    texts = [required(work_dir / f"text-{number:03d}.json", digest, f"run the write stage for slice {number} first")
             for number in range(config.num_slices)]
    shards = {split: [s for t in texts for s in t["shards"][split]] for split in ("train", "val")} | merged["shards"]
    if not any(s["samples"] for s in shards["train"]):
        raise ValueError(f"no training text sample was produced from {sum(s['articles'] for s in summaries)} article(s) "
                         f"(val_fraction {config.val_fraction}): expected articles with text in the dumps and val_fraction below 1")
    documents, mentions = {"train": 0, "val": 0}, {}
    for t in texts:
        for key, value in t["documents"].items():
            documents[key] += value
        for key, value in t["mentions"].items():
            mentions[key] = mentions.get(key, 0) + value
    skipped = [r for s in summaries for r in s["bad_records"]] + merged["bad_records"]
    truncated = [r for s in summaries for r in s.get("truncated", [])]
    # Paths, the output, the slicing and the worker count vary between machines and runs; the
    # manifest of a rebuild must not.
    settings = {key: value for key, value in asdict(config).items() if key not in (*RUN_SETTINGS, "num_slices")}
    settings |= {"wikipedia": [Path(p).name for p in wiki_paths], "wikidata": [Path(p).name for p in data_paths]}
    manifest = {
        "format": 1,
        "inputs": {"wikipedia": [Path(p).name for p in wiki_paths], "wikidata": [Path(p).name for p in data_paths]},
        "config": settings,
        "languages": merged["languages"],
        "hashes": {"tokenizer": directory_sha256(out / "tokenizer"), "entity_vocab": file_sha256(out / "entity_vocab.jsonl"),
                   "knowledge": directory_sha256(out / "knowledge")},
        "counts": {"pages": sum(s["pages"] for s in summaries), "articles": sum(s["articles"] for s in summaries),
                   "documents": documents, "mentions": mentions, "entities": merged["entities"],
                   "knowledge_texts": merged["knowledge_texts"], "composed_knowledge_texts": merged["composed_knowledge_texts"],
                   "facts": merged["facts"], "skipped_records": len(skipped), "truncated_inputs": len(truncated)},
        "shards": shards,
    }
    if tasks is not None:
        manifest["tasks"] = tasks
    write_json(out / "manifest.json", manifest, indent=1)
    listed = {shard["name"] for split in shards.values() for shard in split}
    for path in sorted(out.iterdir()):
        if SHARD_NAME.fullmatch(path.name) and path.name not in listed:
            path.unlink()
            log.info("removed %s: a shard of an earlier run with other settings", path)
    if truncated:
        log.warning("%d input(s) cut short, only the pages before the cut are in the dataset: %s", len(truncated), "; ".join(truncated))
    if skipped:
        log.warning("%d malformed record(s) skipped; first: %s", len(skipped), skipped[0])
    return manifest

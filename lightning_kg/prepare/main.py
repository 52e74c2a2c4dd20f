"""``python -m lightning_kg prepare``: dumps in, a dataset out, one line saying what it holds."""

from __future__ import annotations

import time

from lightning_kg.prepare.config import PrepareConfig
from lightning_kg.prepare.pipeline import peak_memory_mib, prepare
from lightning_kg.verbs import fail, parse_settings


def main(args: list[str]) -> None:
    config = parse_settings(PrepareConfig, args, "prepare",
                            "Wikipedia + Wikidata dumps to an entity vocabulary, a tokenizer and WebDataset shards.")
    started = time.perf_counter()
    try:
        manifest = prepare(config)
    except (OSError, ValueError) as error:
        # A missing or malformed input, an unwritable output, an empty result: the message names
        # the file and what was expected.
        fail(str(error))
    if manifest is None:
        print(f"stage {config.stage} (slice {config.slice} of {config.num_slices}) done in {time.perf_counter() - started:.1f} s")
        return
    counts = manifest["counts"]
    print(f"prepared {config.out}: {counts['pages']} pages, {counts['entities']} entities, "
          f"{sum(s['samples'] for s in manifest['shards']['train'])} train samples, facts {counts['facts']}, "
          f"{counts['skipped_records']} skipped record(s) in {time.perf_counter() - started:.1f} s, "
          f"peak memory {peak_memory_mib():.0f} MiB")

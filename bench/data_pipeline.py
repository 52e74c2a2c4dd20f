"""Samples/s of the training data pipeline against the training step's consumption rate.

The loader (shards/demo through tar reading, decode, collate and masking in
KnowledgeDataModule.train_dataloader()) runs alone with 0, 1 and 2 worker processes; the tiny
model's training step (all four objectives, AdamW) runs alone on batches already in memory. The
loader is never the bottleneck when loader/consumer is well above 1. Because workers and the
training step share the CPU, each worker count is also run end to end (load, then train, as fit
does), which shows what the sharing costs on this machine.

With --seq-len, the loader reads synthetic shards of rows that long instead (lightning_kg/recipes/synthetic_shards.py's
layout, a mention every ~20 tokens), and its rows/s per worker is set against what one H100 trains
on at 40% MFU with the base model (the arithmetic is printed); no training step is run.

    python bench/data_pipeline.py --quick
    python bench/data_pipeline.py --quick --seq-len 512
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import record

from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.model.config import EncoderConfig
from lightning_kg.model.pretraining import KnowledgePretrainingModel
from lightning_kg.recipes import synthetic_shards


def loader(workers: int, rows: int, data_dir: str = "shards/demo"):
    data = KnowledgeDataModule(data_dir, batch_size=rows, fact_batch_size=rows, num_workers=workers)
    return data, data.train_dataloader()


def training_step(data: KnowledgeDataModule):
    """The tiny model's whole step on one batch, as fit runs it on this CPU."""
    config = EncoderConfig.preset("tiny", vocab_size=data.vocab_size, entity_vocab_size=data.entity_vocab_size,
                                  pad_token_id=data.pad_token_id)
    model = KnowledgePretrainingModel(config)
    adamw = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)

    def step(batch: dict) -> None:
        model(batch).loss.backward()
        adamw.step()
        adamw.zero_grad(set_to_none=True)

    return step


def rate(batches, count: int, rows: int, step=None, warmup: int = 3) -> tuple[float, float]:
    """(seconds to the first batch, text rows/s over the ``count`` batches after ``warmup`` more),
    each batch trained on if ``step``. The warm-up batches keep allocator and thread-pool start-up
    out of the rate."""
    start = time.perf_counter()
    first = next(batches)
    to_first = time.perf_counter() - start
    for batch in itertools.chain([first], itertools.islice(batches, warmup - 1)):
        if step:
            step(batch)
    begin = time.perf_counter()
    for batch in itertools.islice(batches, count):
        if step:
            step(batch)
    return to_first, count * rows / (time.perf_counter() - begin)


def synthetic_dataset(directory: Path, seq_len: int) -> str:
    """A dataset of text rows exactly ``seq_len`` tokens long, in synthetic_shards' layout."""

    def full_row(key: str, rng: np.random.Generator, num_entities: int) -> dict:
        ids = np.concatenate([[synthetic_shards.BOS], rng.integers(4, synthetic_shards.MASK, seq_len - 2),
                              [synthetic_shards.EOS]]).astype(np.int32)
        mentions, position = [], 1
        while position + 4 < seq_len - 1:  # a 1-3 token mention every ~20 tokens, as in Wikipedia text
            width = int(rng.integers(1, 4))
            mentions.append([position, position + width, int(rng.integers(3, num_entities))])
            position += width + int(rng.integers(10, 30))
        meta = {"lang": "en", "title": key, "mentions": mentions}
        return {"__key__": key, "input_ids.npy": synthetic_shards.npy(ids), "json": json.dumps(meta).encode()}

    return str(synthetic_shards.make_dataset(directory, train_shards=4, val_shards=1, samples_per_shard=256,
                                             facts_per_shard=200, text_sample=full_row, max_seq_length=seq_len))


def h100_rows_per_second(seq_len: int, mfu: float = 0.4, peak: float = 989e12) -> float:
    """Rows of ``seq_len`` tokens one H100 trains on per second at ``mfu``, base model, text rows only
    (knowledge texts add FLOPs per row, so fewer rows: this errs toward a hungrier GPU); prints the sum."""
    layers, hidden, intermediate, vocab = 12, 768, 3072, 250_002
    weights = layers * (4 * hidden**2 + 2 * hidden * intermediate)
    per_token = 3 * (2 * weights + 4 * layers * hidden * seq_len + 0.15 * 2 * hidden * vocab)
    rows = mfu * peak / (per_token * seq_len)
    print(f"  one H100 at {mfu:.0%} MFU: 3 x (2 x {weights / 1e6:.1f}M layer weights + 4 x {layers} x {hidden} x {seq_len} attention"
          f" + 15% masked x 2 x {hidden} x {vocab:,} MLM head) = {per_token / 1e6:.0f} MFLOP per token;")
    print(f"  {mfu:.0%} x {peak / 1e12:.0f} TFLOP/s / ({per_token / 1e6:.0f} MFLOP x {seq_len} tokens) = {rows:,.0f} rows/s")
    return rows


def headroom(seq_len: int, rows: int, batches: int) -> None:
    """Loader rows/s at 0, 1 and 2 workers on synthetic ``seq_len``-token shards, against one H100's consumption."""
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = synthetic_dataset(Path(scratch) / "synthetic", seq_len)
        print(f"synthetic shards of {seq_len}-token rows, batch {rows} text rows + {rows} facts")
        needed = h100_rows_per_second(seq_len)
        print(f"  {'workers':>7s} {'rows/s':>8s} {'per worker':>11s} {'x 8 workers / H100':>19s}")
        for workers in (0, 1, 2):
            _, produced = rate(iter(loader(workers, rows, data_dir)[1]), batches, rows)
            per_worker = produced / max(workers, 1)
            print(f"  {workers:7d} {produced:8.1f} {per_worker:11.1f} {8 * per_worker / needed:18.2f}x")
            record("cpu", f"loader rows/s per worker, {seq_len}-token rows, {workers} workers, vs one H100 at 40% MFU (base)",
                   per_worker, needed, per_worker / needed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=16, help="text rows (and facts) per batch, as conf/data/demo.yaml")
    parser.add_argument("--batches", type=int, default=60, help="batches timed per loader setting")
    parser.add_argument("--steps", type=int, default=20, help="training steps timed")
    parser.add_argument("--seq-len", type=int, help="synthetic shards of rows this long, against one H100's consumption")
    parser.add_argument("--quick", action="store_true", help="20 batches per loader setting, 8 training steps")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.steps = 20, 8
    torch.manual_seed(0)
    rows = args.batch_size
    if args.seq_len:
        headroom(args.seq_len, rows, args.batches)
        return

    data, _ = loader(0, rows)
    held = list(itertools.islice(iter(data.train_dataloader()), args.steps + 3))
    step = training_step(data)
    _, consumer = rate(iter(held), args.steps, rows, step)
    print(f"demo shards, batch {rows} text rows + {rows} facts, tiny model, {torch.get_num_threads()} torch threads")
    print(f"  training step alone (batches in memory): {consumer:8.1f} samples/s")
    print(f"  {'workers':>7s} {'start s':>8s} {'loader samples/s':>17s} {'loader/consumer':>16s} {'end to end samples/s':>21s}")
    for workers in (0, 1, 2):
        start, produced = rate(iter(loader(workers, rows)[1]), args.batches, rows)
        _, fed = rate(iter(loader(workers, rows)[1]), args.steps, rows, step)
        print(f"  {workers:7d} {start:8.1f} {produced:17.1f} {produced / consumer:15.1f}x {fed:21.1f}")
        record("cpu", f"loader samples/s, {workers} workers, vs tiny training step", produced, consumer, produced / consumer)


if __name__ == "__main__":
    main()

"""Samples/s of the training data pipeline against the training step's consumption rate.

The loader (shards/demo through tar reading, decode, collate and masking in
KnowledgeDataModule.train_dataloader()) runs alone with 0, 1 and 2 worker processes; the tiny
model's training step (all four objectives, AdamW) runs alone on batches already in memory. The
loader is never the bottleneck when loader/consumer is well above 1. Because workers and the
training step share the CPU, each worker count is also run end to end (load, then train, as fit
does), which shows what the sharing costs on this machine.

    python bench/data_pipeline.py --quick
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from common import record

from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.model.config import EncoderConfig
from lightning_kg.model.pretraining import KnowledgePretrainingModel


def loader(workers: int, rows: int):
    data = KnowledgeDataModule("shards/demo", batch_size=rows, fact_batch_size=rows, num_workers=workers)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=16, help="text rows (and facts) per batch, as conf/data/demo.yaml")
    parser.add_argument("--batches", type=int, default=60, help="batches timed per loader setting")
    parser.add_argument("--steps", type=int, default=20, help="training steps timed")
    parser.add_argument("--quick", action="store_true", help="20 batches per loader setting, 8 training steps")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.steps = 20, 8
    torch.manual_seed(0)
    rows = args.batch_size

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

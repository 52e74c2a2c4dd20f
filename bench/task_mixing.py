"""Mixed batches (ours: every batch holds text rows and facts) against XLM-K's alternation of
single-task batches (a text-only step, then a facts-only step), on the same data.

Both runs start from the same weights and queues and read the same samples in the same order,
from the demo shards through KnowledgeDataModule with ``task_mixing`` ``mixed`` and ``alternating``:
N mixed batches of 16 text rows and 16 facts, one optimizer step each, against 2N single-task
batches (16 text rows for mlm, mep_vocab and mep_contrastive; 16 facts for oe), one step each, so
alternating makes twice the updates over the same samples. Both use fit's demo settings (tiny
model, queues of 64, knowledge text in the mention's language, fit's AdamW groups at 2e-3, 20
warm-up steps then linear decay; alternating's 40 warm-up steps and its decay over twice the
updates give both the same rate at every sample). Batches are loaded before the clock starts, so
the figures are the model's. Afterwards both are scored, in eval mode, on the demo's validation batches (mixed,
the same for both): the losses and the contrastive pair accuracies (0.5 by chance).

    python bench/task_mixing.py            # 500 batches, as the demo fit (about 2 minutes on 2 cores)
    python bench/task_mixing.py --seed 1   # another data order and initialisation
    python bench/task_mixing.py --quick    # 100 batches
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
from types import SimpleNamespace

import torch
from common import record, timed

from lightning_kg.data.batches import samples_in_batch
from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.dataset.format import CONTRASTIVE_OBJECTIVES, OBJECTIVES
from lightning_kg.model.config import ObjectiveSettings
from lightning_kg.model.pretraining import KnowledgePretrainingModel
from lightning_kg.train.module import KnowledgePretraining


def train(module: KnowledgePretraining, steps: list[dict], warmup_steps: int) -> float:
    """Seconds to train ``module.model`` one step on each of ``steps`` with fit's optimizer and schedule."""
    module.hparams.warmup_steps = warmup_steps
    module._trainer = SimpleNamespace(max_steps=len(steps))  # all configure_optimizers reads of a Trainer
    optimizers = module.configure_optimizers()
    adamw, schedule = optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"]
    model = module.model
    model.train()
    torch.manual_seed(1)  # the same dropout draws for both runs

    def run():
        for batch in steps:
            model(batch).loss.backward()
            adamw.step()
            schedule.step()
            adamw.zero_grad(set_to_none=True)

    return timed(run, "cpu")


@torch.no_grad()
def score(model: KnowledgePretrainingModel, batches: list[dict]) -> dict[str, float]:
    """Mean validation losses and pair accuracies over ``batches``."""
    model.eval()
    outs = [model(batch) for batch in batches]
    figures = {f"{name}_loss": statistics.mean(float(out.losses()[name]) for out in outs) for name in OBJECTIVES}
    for name in CONTRASTIVE_OBJECTIVES:
        figures[f"{name}_pair_acc"] = float(torch.cat([out.pair_accuracies()[name] for out in outs]).nanmean())
    figures["mlm_acc"] = float(torch.cat([out.mlm_correct for out in outs]).float().mean())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=500, help="demo batches of 16 text rows and 16 facts (fit's max_steps)")
    parser.add_argument("--seed", type=int, default=0, help="the data order's and the weights' seed")
    parser.add_argument("--quick", action="store_true", help="100 batches")
    args = parser.parse_args()
    if args.quick:
        args.batches = 100
    streams = {}
    for mixing, count in (("mixed", args.batches), ("alternating", 2 * args.batches)):
        data = KnowledgeDataModule("shards/demo", batch_size=16, fact_batch_size=16, knowledge_language="same",
                                   num_workers=0, seed=args.seed, task_mixing=mixing)
        streams[mixing] = list(itertools.islice(data.train_dataloader(), count))
    validation = list(data.val_dataloader())  # always mixed
    torch.manual_seed(args.seed)
    mixed = KnowledgePretraining("tiny", vocab_size=data.vocab_size, entity_vocab_size=data.entity_vocab_size,
                                 pad_token_id=data.pad_token_id, objective_settings=ObjectiveSettings(queue_size=64), learning_rate=2e-3)
    alternating = copy.deepcopy(mixed)
    before = score(copy.deepcopy(mixed.model), validation)
    train(copy.deepcopy(mixed), streams["alternating"][:6], 2)  # warm-up: the first steps of a process are slow

    seconds = {"mixed": train(mixed, streams["mixed"], 20), "alternating": train(alternating, streams["alternating"], 40)}
    scores = {"before": before, "mixed": score(mixed.model, validation), "alternating": score(alternating.model, validation)}
    samples = {name: sum(samples_in_batch(b) for b in batches) for name, batches in streams.items()}

    print(f"tiny model, CPU, seed {args.seed}, {args.batches} demo batches of 16 text rows + 16 facts; validation: {len(validation)} batches")
    print(f"  {'':12s} {'updates':>8s} {'seconds':>8s} {'samples/s':>10s}")
    rates = {name: samples[name] / seconds[name] for name in streams}
    for name, batches in streams.items():
        print(f"  {name:12s} {len(batches):8d} {seconds[name]:8.1f} {rates[name]:10.1f}")
    print(f"  {'validation':25s} " + " ".join(f"{name:>12s}" for name in scores))
    for key in before:
        print(f"  {key:25s} " + " ".join(f"{figures[key]:12.3f}" for figures in scores.values()))

    record("cpu", f"task mixing samples/s, tiny, {args.batches} batches, seed {args.seed}, mixed vs alternating",
           rates["mixed"], rates["alternating"], rates["mixed"] / rates["alternating"])
    for key in ("mlm_loss", "mep_vocab_loss", "mep_contrastive_pair_acc", "oe_pair_acc"):
        record("cpu", f"task mixing validation {key}, tiny, {args.batches} batches, seed {args.seed}, mixed vs alternating",
               scores["mixed"][key], scores["alternating"][key], None, digits=3)


if __name__ == "__main__":
    main()

"""Tokens/s of our whole training step against transformers' LukeForMaskedLM of the same size.

Ours is KnowledgePretrainingModel with all four objectives (the encoder over the text rows, mlm,
mep_vocab, and a second encoder pass over knowledge texts and fact queries for mep_contrastive and
oe); the baseline is LukeForMaskedLM (word and entity prediction, the work mLUKE does) trained
with a plain PyTorch loop. Ours also runs with mlm + mep_vocab only, the same objectives as the
baseline, so the comparison can be read both ways: what our full step costs, and what the same
work costs in each implementation. All three start from the same weights, step with the same
AdamW on identical batches (same word ids, entity ids, masked positions), in one process,
alternating, several repetitions; the ratio is the median of the repetitions' ratios. Tokens are
the real word and entity tokens of the text rows, the same count for every contestant. No
Lightning in the loop: the figure is the model's, not the trainer's.

Batches come from shards/demo through the real decode, collate and masking path, or, with
--seq-len (the demo is 128 tokens long), are synthetic ones of the same make-up.

    python bench/train_step.py --quick                      # tiny, demo batches, CPU
    python bench/train_step.py --size base --seq-len 512 --precision bf16   # GPU, prints MFU
"""

from __future__ import annotations

import argparse
import itertools
import statistics

import torch
from common import record, timed
from transformers import LukeForMaskedLM

from lightning_kg.data.batches import count_batch, tokens_in_batch
from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.dataset.entity_vocab import MASK_ID
from lightning_kg.dataset.format import IGNORE_INDEX
from lightning_kg.model.config import EncoderConfig, ObjectiveSettings
from lightning_kg.model.hf_convert import hf_config, hf_state_dict
from lightning_kg.model.pretraining import KnowledgePretrainingModel

XLMR_VOCAB = 250_002


def demo_batches(count: int, rows: int) -> tuple[list[dict], int, int, int]:
    """``count`` training batches of shards/demo, and the demo's word vocabulary, entity vocabulary and pad id."""
    data = KnowledgeDataModule("shards/demo", batch_size=rows, fact_batch_size=rows, num_workers=0)
    batches = list(itertools.islice(data.train_dataloader(), count))
    return batches, data.vocab_size, data.entity_vocab_size, data.pad_token_id


def synthetic_batches(count: int, rows: int, seq_len: int, vocab: int, entity_vocab: int, mask_token_id: int,
                      slots: int = 32, knowledge_len: int = 32) -> list[dict]:
    """Batches shaped like the collator's: 15% of word tokens masked, ``slots`` mentions of 4 tokens
    per row with 15% of them masked (at least one), a knowledge text per masked mention and
    ``rows`` facts with a query and an object text of ``knowledge_len`` tokens each."""
    generator = torch.Generator().manual_seed(0)

    def randint(low, high, shape):
        return torch.randint(low, high, shape, generator=generator)

    batches = []
    for _ in range(count):
        ids = randint(5, vocab, (rows, seq_len))
        masked = torch.rand(rows, seq_len, generator=generator) < 0.15
        starts = randint(1, seq_len - 5, (rows, slots))
        entity_ids = randint(3, entity_vocab, (rows, slots))
        chosen = torch.rand(rows, slots, generator=generator) < 0.15
        chosen[:, 0] = True
        mention_rows, mention_slots = chosen.nonzero(as_tuple=True)
        batch = {
            "input_ids": ids.masked_fill(masked, mask_token_id), "attention_mask": torch.ones_like(ids),
            "mlm_labels": ids.masked_fill(~masked, IGNORE_INDEX),
            "entity_ids": entity_ids.masked_fill(chosen, MASK_ID), "entity_position_ids": starts[..., None] + torch.arange(4),
            "entity_attention_mask": torch.ones_like(entity_ids), "entity_labels": entity_ids.masked_fill(~chosen, IGNORE_INDEX),
            "mep_mention_positions": torch.stack([mention_rows, starts[mention_rows, mention_slots]], -1),
            "mep_entities": entity_ids[chosen], "oe_objects": randint(3, entity_vocab, (rows,)),
        }
        for name, count in (("mep_knowledge", len(mention_rows)), ("oe_query", rows), ("oe_object", rows)):
            batch[f"{name}_ids"] = randint(5, vocab, (count, knowledge_len))
            batch[f"{name}_mask"] = torch.ones(count, knowledge_len, dtype=torch.long)
        batch["counts"] = count_batch(batch)  # on the host, as the collator does: the step then reads nothing back
        batches.append(batch)
    return batches


def luke_inputs(batch: dict) -> dict:
    """The same batch under LukeForMaskedLM's argument names."""
    names = ["input_ids", "attention_mask", "entity_ids", "entity_position_ids", "entity_attention_mask", "entity_labels"]
    return {"labels": batch["mlm_labels"], **{name: batch[name] for name in names}}


def trainer(model: torch.nn.Module, loss_of, batches: list[dict], device: str, dtype: torch.dtype):
    """A function that trains ``model`` one step on each batch numbered in its argument and returns the seconds taken."""
    # The fit defaults (conf/model/tiny.yaml), in one group: the same update for every contestant.
    adamw = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    model.train()

    def run(numbers: list[int]) -> float:
        def steps():
            for i in numbers:
                with torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
                    loss = loss_of(model, batches[i])
                loss.backward()
                adamw.step()
                adamw.zero_grad(set_to_none=True)

        return timed(steps, device)

    return run


def step_arguments(description: str, repeats: int, extra=()) -> argparse.Namespace:
    """The command line the training-step benches share (this one and compile_speed.py): model size,
    batch shape, precision, repetitions; ``--quick`` is 3 repetitions of 3 steps."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size", default="tiny", choices=["tiny", "base", "large"])
    parser.add_argument("--batch-size", type=int, default=16, help="text rows (and facts) per batch, as conf/data/demo.yaml")
    parser.add_argument("--seq-len", type=int, help="synthetic batches of this length (default: demo batches, 128 tokens)")
    parser.add_argument("--entity-vocab", type=int, default=500_000, help="entity vocabulary of synthetic batches")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--steps", type=int, default=5, help="training steps per contestant per repetition")
    for flag, options in extra:
        parser.add_argument(flag, **options)
    parser.add_argument("--quick", action="store_true", help="3 repetitions of 3 steps")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.steps = 3, 3
    return args


def main() -> None:
    peak = ("--peak-tflops", {"type": float, "default": 989.0, "help": "the GPU's dense peak for MFU (H100 SXM bf16: 989)"})
    args = step_arguments(__doc__.split("\n\n")[0], repeats=7, extra=[peak])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    torch.manual_seed(0)

    count = args.steps * 2  # a few distinct batches, cycled
    if args.seq_len is None:
        batches, vocab, entity_vocab, pad_id = demo_batches(count, args.batch_size)
        source = "shards/demo through KnowledgeDataModule (decode, collate, masking)"
    else:
        vocab = 8_003 if args.size == "tiny" else XLMR_VOCAB
        entity_vocab, pad_id = args.entity_vocab, 1
        batches = synthetic_batches(count, args.batch_size, args.seq_len, vocab, entity_vocab, mask_token_id=vocab - 1)
        source = f"synthetic, collator's make-up, {entity_vocab:,} entities"
    batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()} for b in batches]

    config = EncoderConfig.preset(args.size, vocab_size=vocab, entity_vocab_size=entity_vocab, pad_token_id=pad_id)
    ours = KnowledgePretrainingModel(config).to(device)
    same_objectives = KnowledgePretrainingModel(config, ObjectiveSettings(mep_contrastive_weight=0.0, oe_weight=0.0)).to(device)
    same_objectives.load_state_dict(ours.state_dict(), strict=False)
    luke = LukeForMaskedLM(hf_config(ours))
    luke.load_state_dict(hf_state_dict(ours))
    luke.to(device)
    contestants = {
        "lightning_kg, 4 objectives": trainer(ours, lambda m, b: m(b).loss, batches, device, dtype),
        "lightning_kg, mlm + mep_vocab": trainer(same_objectives, lambda m, b: m(b).loss, batches, device, dtype),
        "transformers LukeForMaskedLM": trainer(luke, lambda m, b: m(**luke_inputs(b)).loss, batches, device, dtype),
    }
    for run in contestants.values():
        run([0])  # warm-up

    schedule = [[(repeat * args.steps + i) % count for i in range(args.steps)] for repeat in range(args.repeats)]
    times = {name: [] for name in contestants}
    for numbers in schedule:
        for name, run in contestants.items():
            times[name].append(run(numbers))
    text_tokens = [sum(int(batches[i]["attention_mask"].sum() + batches[i]["entity_attention_mask"].sum()) for i in numbers)
                   for numbers in schedule]
    rates = {name: statistics.median(t / s for t, s in zip(text_tokens, seconds)) for name, seconds in times.items()}
    baseline = "transformers LukeForMaskedLM"
    ratios = {name: statistics.median(b / s for b, s in zip(times[baseline], seconds)) for name, seconds in times.items()}

    first = batches[0]
    print(f"{args.size} model, {args.precision} on {device}, batch {args.batch_size} rows x {first['input_ids'].shape[1]} tokens "
          f"+ {first['entity_ids'].shape[1]} entity slots, {args.repeats} x {args.steps} steps each")
    print(f"  batches: {source}")
    print(f"  {'':32s} {'text tokens/s':>14s} {'vs LUKE':>8s}")
    for name in contestants:
        print(f"  {name:32s} {rates[name]:14,.0f} {ratios[name]:7.2f}x")
    step_seconds = statistics.median(times["lightning_kg, 4 objectives"]) / args.steps
    encoder_tokens = statistics.mean(tokens_in_batch(b) for b in batches)
    print(f"  ours, 4 objectives, counting knowledge texts as fit's progress bar does: {encoder_tokens / step_seconds:,.0f} tokens/s")
    record(device, f"train step text tokens/s, {args.size}, 4 objectives vs LukeForMaskedLM",
           rates["lightning_kg, 4 objectives"], rates[baseline], ratios["lightning_kg, 4 objectives"], digits=0)
    record(device, f"train step text tokens/s, {args.size}, mlm + mep_vocab vs LukeForMaskedLM",
           rates["lightning_kg, mlm + mep_vocab"], rates[baseline], ratios["lightning_kg, mlm + mep_vocab"], digits=0)
    if device == "cuda":
        flops = statistics.mean(ours.flops_per_batch(b) for b in batches)
        mfu = flops / step_seconds / (args.peak_tflops * 1e12)
        print(f"  MFU, 4 objectives: {mfu:.1%} ({flops / step_seconds / 1e12:.1f} TFLOP/s of {args.peak_tflops:g})")
        record(device, f"train step MFU %, {args.size}, 4 objectives, peak {args.peak_tflops:g} TFLOP/s", mfu * 100, None, None)
        peak_gib = torch.cuda.max_memory_allocated() / 2**30  # all three contestants' states together
        print(f"  peak GPU memory allocated (all contestants): {peak_gib:.1f} GiB")


if __name__ == "__main__":
    main()

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

Batches are padded as training pads them: drawn from shards through the real decode, collate and
masking path (KnowledgeDataModule), from shards/demo (rows up to 128 tokens) or, with --seq-len,
from synthetic shards of rows that long (bench/data_pipeline.py's, a mention every ~20 tokens)
written to a temporary folder; the share of padded positions is printed for each. On CUDA, MFU
counts only useful work (useful_flops): real tokens, and only the passes a contestant runs.

    python bench/train_step.py --quick                      # tiny, demo batches, CPU
    python bench/train_step.py --size base --seq-len 512 --precision bf16   # GPU, prints MFU
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
from pathlib import Path

import torch
from common import record, timed
from data_pipeline import synthetic_dataset
from transformers import LukeForMaskedLM

from lightning_kg.data.batches import KNOWLEDGE_MASKS, count_batch, tokens_in_batch
from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.model.config import EncoderConfig, ObjectiveSettings
from lightning_kg.model.hf_convert import hf_config, hf_state_dict
from lightning_kg.model.pretraining import KnowledgePretrainingModel

XLMR_VOCAB = 250_002


ALL_OBJECTIVES = frozenset({"mlm", "mep_vocab", "mep_contrastive", "oe"})
LUKE_OBJECTIVES = frozenset({"mlm", "mep_vocab"})  # what LukeForMaskedLM learns: word and entity prediction


def shard_batches(data_dir: str, count: int, rows: int) -> tuple[list[dict], KnowledgeDataModule]:
    """``count`` training batches of the dataset at ``data_dir``, padded as the collator pads them."""
    data = KnowledgeDataModule(data_dir, batch_size=rows, fact_batch_size=rows, num_workers=0)
    return list(itertools.islice(data.train_dataloader(), count)), data


def batch_source(args: argparse.Namespace, count: int, workdir: Path) -> tuple[list[dict], int, int, int, str]:
    """The benches' batches on the CPU, with the model's word vocabulary, entity vocabulary and pad
    id, and a line saying where they come from. Synthetic shards' few word and entity ids are valid
    ids of a full-size vocabulary (XLM-R's, ``--entity-vocab``), so the heads do full-size work."""
    if args.seq_len is None:
        batches, data = shard_batches("shards/demo", count, args.batch_size)
        return batches, data.vocab_size, data.entity_vocab_size, data.pad_token_id, "shards/demo (rows up to 128 tokens)"
    batches, data = shard_batches(synthetic_dataset(workdir / "shards", args.seq_len), count, args.batch_size)
    vocab = 8_003 if args.size == "tiny" else XLMR_VOCAB
    return (batches, vocab, args.entity_vocab, data.pad_token_id,
            f"synthetic shards of {args.seq_len}-token rows, model vocabularies {vocab:,} words and {args.entity_vocab:,} entities")


def padding_share(batches: list[dict]) -> dict[str, float]:
    """Padded positions over all positions the encoder reads, over ``batches``: in the text rows'
    words and entity slots, in the knowledge and fact texts, and in all of them."""
    groups = {"words": ["attention_mask"], "entity slots": ["entity_attention_mask"], "knowledge texts": list(KNOWLEDGE_MASKS)}
    padded, total = {}, {}
    for group, keys in groups.items():
        masks = [batch[key] for batch in batches for key in keys if key in batch]
        total[group] = sum(mask.numel() for mask in masks)
        padded[group] = total[group] - sum(int(mask.sum()) for mask in masks)
    shares = {group: padded[group] / max(1, total[group]) for group in groups}
    shares["all"] = sum(padded.values()) / max(1, sum(total.values()))
    return shares


def useful_flops(config: EncoderConfig, batch: dict, objectives: frozenset[str], padded: bool = False) -> int:
    """Training FLOPs (forward + backward, 3x forward) of the work a step needs: per sequence, 2 per
    layer weight per real token and attention's two (T x T) products over its T real tokens (the
    whole padded length with ``padded``); only the passes the objectives run (the text rows with
    their entity slots always, knowledge texts for mep_contrastive, fact texts for oe); the heads at
    masked slots only. Entity-aware attention's extra queries are left out, for both contestants."""
    layers, hidden = config.num_layers, config.hidden_size
    layer_weights = layers * (4 * hidden**2 + 2 * hidden * config.intermediate_size)
    passes = [("attention_mask", "entity_attention_mask")]  # a text row and its entity slots are one sequence
    if "mep_contrastive" in objectives:
        passes.append(("mep_knowledge_mask",))
    if "oe" in objectives:
        passes += [("oe_query_mask",), ("oe_object_mask",)]
    forward = 0
    for keys in passes:
        masks = [batch[key] for key in keys if key in batch]
        if not masks or not masks[0].shape[0]:
            continue
        lengths = sum(torch.full((m.shape[0],), m.shape[1]) if padded else m.sum(1) for m in masks)  # (sequences,)
        forward += 2 * layer_weights * int(lengths.sum()) + 4 * layers * hidden * int((lengths**2).sum())
    counts = count_batch(batch)
    if "mlm" in objectives:
        forward += 2 * counts["masked_words"] * hidden * config.vocab_size
    if "mep_vocab" in objectives:
        forward += 2 * counts["masked_entities"] * config.entity_emb_size * config.entity_vocab_size
    return 3 * forward


def luke_inputs(batch: dict) -> dict:
    """The same batch under LukeForMaskedLM's argument names."""
    names = ["input_ids", "attention_mask", "entity_ids", "entity_position_ids", "entity_attention_mask", "entity_labels"]
    return {"labels": batch["mlm_labels"], **{name: batch[name] for name in names}}


def trainer(model: torch.nn.Module, loss_of, batches: list[dict], device: str, dtype: torch.dtype):
    """A function that trains ``model`` one step on each batch numbered in its argument and returns the seconds taken."""
    # The fit defaults (conf/model/tiny.yaml), in one group: the same update for every contestant.
    adamw = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01,
                              fused=device == "cuda")  # as fit's configure_optimizers: one kernel for all parameters
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
    with tempfile.TemporaryDirectory() as workdir:
        batches, vocab, entity_vocab, pad_id, source = batch_source(args, count, Path(workdir))
    config = EncoderConfig.preset(args.size, vocab_size=vocab, entity_vocab_size=entity_vocab, pad_token_id=pad_id)
    objectives = {"lightning_kg, 4 objectives": ALL_OBJECTIVES, "lightning_kg, mlm + mep_vocab": LUKE_OBJECTIVES,
                  "transformers LukeForMaskedLM": LUKE_OBJECTIVES}
    # Counted on the host before the batches move: (batches,) useful FLOPs per contestant.
    flops = {name: [useful_flops(config, b, wanted) for b in batches] for name, wanted in objectives.items()}
    padded_flops = [useful_flops(config, b, ALL_OBJECTIVES, padded=True) for b in batches]
    padding = padding_share(batches)
    batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()} for b in batches]

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
    # MFU: the useful FLOPs of each repetition's batches over its seconds, the median over repetitions.
    mfu = {name: statistics.median(sum(flops[name][i] for i in numbers) / s / (args.peak_tflops * 1e12)
                                   for numbers, s in zip(schedule, seconds)) for name, seconds in times.items()}

    first = batches[0]
    print(f"{args.size} model, {args.precision} on {device}, batch {args.batch_size} rows x {first['input_ids'].shape[1]} tokens "
          f"+ {first['entity_ids'].shape[1]} entity slots, {args.repeats} x {args.steps} steps each")
    print(f"  batches: {source}, through KnowledgeDataModule (decode, collate, masking)")
    print("  padding share (padded / all positions): " + ", ".join(f"{group} {share:.1%}" for group, share in padding.items()))
    mfu_column = device == "cuda"
    print(f"  {'':32s} {'text tokens/s':>14s} {'vs LUKE':>8s}" + (f" {'MFU':>6s}" if mfu_column else ""))
    for name in contestants:
        print(f"  {name:32s} {rates[name]:14,.0f} {ratios[name]:7.2f}x" + (f" {mfu[name]:6.1%}" if mfu_column else ""))
    step_seconds = statistics.median(times["lightning_kg, 4 objectives"]) / args.steps
    encoder_tokens = statistics.mean(tokens_in_batch(b) for b in batches)
    print(f"  ours, 4 objectives, counting knowledge texts as fit's progress bar does: {encoder_tokens / step_seconds:,.0f} tokens/s")
    batch_kind = f"{args.seq_len}-token synthetic shards" if args.seq_len else "demo shards"
    record(device, f"train step text tokens/s, {args.size}, {batch_kind}, 4 objectives vs LukeForMaskedLM",
           rates["lightning_kg, 4 objectives"], rates[baseline], ratios["lightning_kg, 4 objectives"], digits=0)
    record(device, f"train step text tokens/s, {args.size}, {batch_kind}, mlm + mep_vocab vs LukeForMaskedLM",
           rates["lightning_kg, mlm + mep_vocab"], rates[baseline], ratios["lightning_kg, mlm + mep_vocab"], digits=0)
    if mfu_column:
        padded_mfu = statistics.mean(padded_flops) / step_seconds / (args.peak_tflops * 1e12)
        print(f"  MFU counts real tokens and the passes each runs, against {args.peak_tflops:g} TFLOP/s; "
              f"ours, 4 objectives, with padding counted as work: {padded_mfu:.1%}")
        for name in ("lightning_kg, 4 objectives", "lightning_kg, mlm + mep_vocab"):
            record(device, f"train step MFU % of real tokens, {args.size}, {args.precision}, {batch_kind}, {name.split(', ')[1]} "
                   f"vs LukeForMaskedLM, peak {args.peak_tflops:g} TFLOP/s", mfu[name] * 100, mfu[baseline] * 100,
                   mfu[name] / mfu[baseline])
        peak_gib = torch.cuda.max_memory_allocated() / 2**30  # all three contestants' states together
        print(f"  peak GPU memory allocated (all contestants): {peak_gib:.1f} GiB")


if __name__ == "__main__":
    main()

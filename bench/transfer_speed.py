"""Span-NER fine-tuning throughput: ours against transformers' LukeForEntitySpanClassification.

Both fine-tune the same encoder size with the same head (start word + end word + [MASK] entity
state, one linear layer) on identical batches: the demo's silver NER train split, every word-aligned
span up to --max-mention subwords a candidate, encoded once by lightning_kg.transfer.features
(whose span enumeration is timed too, as sentences/s). Each step is forward, cross-entropy over
the candidate spans, backward and AdamW; the two alternate over several repetitions and the ratio
is the median of the repetitions' ratios (>1: ours faster). Sentences/s counts the train split's
sentences, the same for both.

    python bench/transfer_speed.py --quick          # tiny, CPU
    python bench/transfer_speed.py --size base      # on a GPU
"""

from __future__ import annotations

import argparse
import statistics
import time
import types
from functools import partial
from pathlib import Path

import torch
from common import record, timed
from transformers import LukeForEntitySpanClassification

from lightning_kg.dataset.task_files import read_examples
from lightning_kg.dataset.tokenizer import load_tokenizer
from lightning_kg.model.config import EncoderConfig
from lightning_kg.model.encoder import KnowledgeEncoder
from lightning_kg.model.hf_convert import hf_config
from lightning_kg.transfer.encoders import OurEncoder
from lightning_kg.transfer.features import LostSpans, TaskEncoder, collate, label_set
from lightning_kg.transfer.finetune import TaskModel
from lightning_kg.transfer.heads import TaskHead, classification_loss

DEMO = Path(__file__).resolve().parents[1] / "shards" / "demo"


def contestants(size: str, vocab: int, classes: int, device: str):
    """Our encoder + entity span head, and LukeForEntitySpanClassification of the same size, each with AdamW."""
    config = EncoderConfig.preset(size, vocab, 1024)
    ours = TaskModel(OurEncoder(KnowledgeEncoder(config)), TaskHead("ner", "entity", config.hidden_size, classes)).to(device)
    luke_config = hf_config(types.SimpleNamespace(config=config))
    luke_config.num_labels = classes
    luke = LukeForEntitySpanClassification(luke_config).to(device)
    return (ours, torch.optim.AdamW(ours.parameters(), lr=1e-5)), (luke, torch.optim.AdamW(luke.parameters(), lr=1e-5))


def our_step(model, optimizer, batch):
    loss = classification_loss(model(batch), batch.tensors["labels"])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def luke_step(model, optimizer, batch):
    t = batch.tensors
    loss = model(input_ids=t["input_ids"], attention_mask=t["attention_mask"], entity_ids=t["entity_ids"],
                 entity_attention_mask=t["entity_attention_mask"], entity_position_ids=t["entity_position_ids"],
                 entity_start_positions=t["start_positions"], entity_end_positions=t["end_positions"], labels=t["labels"]).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def epoch(step, model, optimizer, batches) -> None:
    for batch in batches:
        step(model, optimizer, batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="tiny", help="encoder preset (tiny, small, base)")
    parser.add_argument("--sentences", type=int, default=256, help="train sentences fine-tuned on per repetition")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-mention", type=int, default=16, help="subwords a candidate span may cover (LUKE: 16)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="64 sentences, 2 repetitions")
    args = parser.parse_args()
    if args.quick:
        args.sentences, args.repeats = 64, 2
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = load_tokenizer(DEMO / "tokenizer")
    examples = read_examples(DEMO / "tasks" / "ner" / "en.train.conll", "ner")[:args.sentences]
    torch.manual_seed(0)
    coder = TaskEncoder("ner", "entity", tokenizer, label_set("ner", examples), max_mention_length=args.max_mention, mask_id=2)
    started = time.perf_counter()
    rows = coder.encode(examples, LostSpans(), training=True)
    encode_s = time.perf_counter() - started
    make = partial(collate, pad_token_id=tokenizer.pad_token_id, max_mention_length=args.max_mention, label_kind="entity")
    batches = [make(rows[i:i + args.batch_size]).to(device) for i in range(0, len(rows), args.batch_size)]
    spans = sum(len(row.spans) for row in rows)
    (ours, our_optimizer), (luke, luke_optimizer) = contestants(args.size, len(tokenizer), len(coder.classes), device)
    print(f"span NER fine-tuning, {args.size} encoder, {len(examples)} sentences -> {len(rows)} rows, {spans:,} candidate spans, "
          f"batches of {args.batch_size} rows, on {device}")
    print(f"  span enumeration and encoding: {len(examples) / encode_s:,.0f} sentences/s ({spans / encode_s:,.0f} spans/s)")
    for step, model, optimizer in ((our_step, ours, our_optimizer), (luke_step, luke, luke_optimizer)):
        step(model, optimizer, batches[0])  # warm-up
    ratios, figures = [], {"ours": [], "luke": []}
    for _ in range(args.repeats):
        seconds = {}
        for name, step, model, optimizer in (("ours", our_step, ours, our_optimizer), ("luke", luke_step, luke, luke_optimizer)):
            seconds[name] = timed(partial(epoch, step, model, optimizer, batches), device)
            figures[name].append(len(examples) / seconds[name])
        ratios.append(seconds["luke"] / seconds["ours"])
    ours_rate, luke_rate, ratio = statistics.median(figures["ours"]), statistics.median(figures["luke"]), statistics.median(ratios)
    print(f"  ours {ours_rate:,.1f} sentences/s, LukeForEntitySpanClassification {luke_rate:,.1f}; "
          f"ratio {ratio:.2f}x (median of {args.repeats})")
    record(device, f"span NER fine-tuning sentences/s, {args.size}, max mention {args.max_mention}, "
           "ours vs LukeForEntitySpanClassification", ours_rate, luke_rate, ratio)


if __name__ == "__main__":
    main()

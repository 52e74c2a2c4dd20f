"""Forward + backward time of our encoder against transformers' LukeModel of the same size.

Same inputs, same process, the two alternating, several repetitions; prints the medians and their
ratio and appends a row to bench/results.csv. Both run with the same attention: plain (mLUKE's
setting and our default) unless ``--entity-aware-attention`` turns LUKE's four query
projections on in both (LukeConfig's own default is on, so it is set explicitly).

    python bench/encoder_speed.py --size tiny          # seconds on a laptop CPU
    python bench/encoder_speed.py --size base --quick  # XLM-R base size
    python bench/encoder_speed.py --size base --device cuda --dtype bfloat16 --seq 512 --batch 16
"""

from __future__ import annotations

import argparse
import statistics

import torch
from common import record, timed
from transformers import LukeConfig, LukeModel

from lightning_kg.model.config import EncoderConfig
from lightning_kg.model.encoder import KnowledgeEncoder


def batch(size: int, seq: int, entities: int, vocab: int, entity_vocab: int, device: str) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (size, seq), generator=generator)
    positions = torch.randint(1, seq - 4, (size, entities, 1), generator=generator) + torch.arange(3)
    return {k: v.to(device) for k, v in {
        "input_ids": ids, "attention_mask": torch.ones_like(ids),
        "entity_ids": torch.randint(3, entity_vocab, (size, entities), generator=generator),
        "entity_position_ids": positions, "entity_attention_mask": torch.ones(size, entities, dtype=torch.long)}.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "base", "large"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--entities", type=int, default=16)
    parser.add_argument("--entity-vocab", type=int, default=10_000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--entity-aware-attention", action="store_true", help="LUKE's four query projections, in both")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 repetitions, batch 4")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.batch = 3, min(args.batch, 4)
    vocab = 250_002 if args.size != "tiny" else 8_000
    config = EncoderConfig.preset(args.size, vocab_size=vocab, entity_vocab_size=args.entity_vocab, dropout=0.0, attention_dropout=0.0,
                                  use_entity_aware_attention=args.entity_aware_attention)
    ours = KnowledgeEncoder(config).to(args.device)
    theirs = LukeModel(LukeConfig(
        vocab_size=vocab, entity_vocab_size=args.entity_vocab, hidden_size=config.hidden_size, entity_emb_size=config.entity_emb_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=config.layer_norm_eps,
        use_entity_aware_attention=config.use_entity_aware_attention),
        add_pooling_layer=False).to(args.device)
    inputs = batch(args.batch, args.seq, args.entities, vocab, args.entity_vocab, args.device)
    dtype = getattr(torch, args.dtype)

    def ours_step():
        with torch.autocast(args.device, dtype=dtype, enabled=dtype != torch.float32):
            out = ours(**inputs)
        (out.word_hidden.float().sum() + out.entity_hidden.float().sum()).backward()

    def theirs_step():
        with torch.autocast(args.device, dtype=dtype, enabled=dtype != torch.float32):
            out = theirs(**inputs)
        (out.last_hidden_state.float().sum() + out.entity_last_hidden_state.float().sum()).backward()

    ours_step(), theirs_step()  # warm-up
    ours_times, theirs_times = [], []
    for _ in range(args.repeats):
        ours_times.append(timed(ours_step, args.device))
        theirs_times.append(timed(theirs_step, args.device))
    ours_median, theirs_median = statistics.median(ours_times), statistics.median(theirs_times)
    tokens = args.batch * (args.seq + args.entities)
    attention = "entity-aware" if args.entity_aware_attention else "plain"
    print(f"{args.size} encoder, batch {args.batch} x ({args.seq} words + {args.entities} entities), {attention} attention, "
          f"{args.dtype} on {args.device}, {torch.get_num_threads()} threads")
    print(f"  lightning_kg        {ours_median * 1000:9.1f} ms  ({tokens / ours_median:,.0f} tokens/s)")
    print(f"  transformers LUKE   {theirs_median * 1000:9.1f} ms  ({tokens / theirs_median:,.0f} tokens/s)")
    print(f"  speed-up            {theirs_median / ours_median:9.2f}x")
    record(args.device, f"encoder fwd+bwd ms (median), {args.size}, {attention} attention, {args.dtype}",
           ours_median * 1000, theirs_median * 1000, theirs_median / ours_median)


if __name__ == "__main__":
    main()

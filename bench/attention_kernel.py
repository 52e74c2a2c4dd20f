"""Which SDPA kernel our encoder's attention runs on this device, unpadded and padded, in training
(dropout on, forward and backward) as fit runs it and in evaluation (forward only): the profiler's
kernel names under ``torch.nn.attention.sdpa_kernel`` with flash, cuDNN, memory-efficient and math
allowed (torch picks the fastest that takes the inputs). Training batches are nearly always padded
(entity slots, knowledge texts), and flash takes no mask, so the padded training row is the one
that says what fit gets. On CUDA the model runs under bf16 autocast, as ``bf16-mixed`` trains.

    python bench/attention_kernel.py --size base --seq-len 512     # GPU
"""

from __future__ import annotations

import argparse

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

from lightning_kg.model.config import EncoderConfig
from lightning_kg.model.encoder import KnowledgeEncoder

BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
ATTENTION_WORDS = ("flash", "efficient", "cudnn", "attention", "sdpa", "fmha", "math")


def inputs(batch: int, seq_len: int, slots: int, padded: bool, device: str) -> tuple[torch.Tensor, ...]:
    """Word ids and mask (B, S), entity ids (B, E), positions (B, E, 1) and mask (B, E); padded:
    rows of half to full length and a quarter of the entity slots empty, as the collator pads."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (batch, seq_len), generator=generator)
    entity_ids = torch.randint(3, 100, (batch, slots), generator=generator)
    positions = torch.randint(1, seq_len // 2, (batch, slots, 1), generator=generator)
    mask, entity_mask = torch.ones_like(ids), torch.ones_like(entity_ids)
    if padded:
        lengths = torch.randint(seq_len // 2, seq_len + 1, (batch,), generator=generator)
        mask = (torch.arange(seq_len) < lengths[:, None]).long()
        entity_mask = (torch.arange(slots) < slots - slots // 4).long().expand(batch, slots).contiguous()
    return tuple(t.to(device) for t in (ids, mask, entity_ids, positions, entity_mask))


def kernels(encoder: KnowledgeEncoder, tensors: tuple[torch.Tensor, ...], padded: bool, training: bool, device: str) -> list[str]:
    """The attention kernels one forward (and with ``training`` one backward) ran."""
    encoder.train(training)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with sdpa_kernel(BACKENDS), torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"), \
            torch.set_grad_enabled(training), profile(activities=activities) as trace:
        words = encoder(*tensors, padded=padded).word_hidden  # (B, S, H)
        if training:
            words.float().sum().backward()
    return sorted({event.key for event in trace.key_averages() if any(word in event.key.lower() for word in ATTENTION_WORDS)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "base", "large"])
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--entity-slots", type=int, default=32)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = EncoderConfig.preset(args.size, vocab_size=1000, entity_vocab_size=100)
    encoder = KnowledgeEncoder(config).to(device)
    print(f"{args.size}, {device}, {args.batch_size} rows x {args.seq_len} words + {args.entity_slots} entity slots, "
          f"attention dropout {config.attention_dropout} in training")
    for training in (True, False):
        for padded in (True, False):
            tensors = inputs(args.batch_size, args.seq_len, args.entity_slots, padded, device)
            kernels(encoder, tensors, padded, training, device)  # warm-up: lazy initialisation stays out of the trace
            names = kernels(encoder, tensors, padded, training, device)
            case = f"{'training (dropout, backward)' if training else 'evaluation'}, {'padded' if padded else 'unpadded'}"
            print(f"  {case:38s} {'; '.join(names) or 'none named'}")


if __name__ == "__main__":
    main()

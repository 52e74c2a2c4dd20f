"""Which SDPA kernel our encoder's attention runs, unpadded and padded, on this device: the
profiler's kernel names under ``torch.nn.attention.sdpa_kernel`` with flash, memory-efficient,
cuDNN and math allowed (torch picks the fastest that takes the inputs).

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "base", "large"])
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    config = EncoderConfig.preset(args.size, vocab_size=1000, entity_vocab_size=100)
    encoder = KnowledgeEncoder(config).to(device, dtype).eval()
    ids = torch.randint(5, 1000, (args.batch_size, args.seq_len), device=device)
    mask = torch.ones_like(ids)
    entity_ids = torch.randint(3, 100, (args.batch_size, 8), device=device)
    positions = torch.randint(1, args.seq_len, (args.batch_size, 8, 1), device=device)
    entity_mask = torch.ones_like(entity_ids)
    for case, padded in (("unpadded", False), ("padded", True)):
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        with torch.no_grad(), sdpa_kernel(BACKENDS), profile(activities=activities) as trace:
            encoder(ids, mask, entity_ids, positions, entity_mask, padded=padded)
        kernels = sorted({event.key for event in trace.key_averages()
                          if any(word in event.key.lower() for word in ("flash", "efficient", "cudnn", "attention", "sdpa", "math"))})
        print(f"{args.size}, {device}, {case}: {'; '.join(kernels) or 'none named'}")


if __name__ == "__main__":
    main()

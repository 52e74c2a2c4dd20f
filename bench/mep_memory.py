"""Peak memory and time of the mep_vocab loss over a large entity vocabulary: our chunked
cross-entropy against materialising the full (masked entities x vocabulary) logits.

mLUKE predicts a masked entity with a softmax over its whole entity vocabulary (1.2M entities).
With full logits, memory grows with masked entities x vocabulary (2,048 x 1M fp32 logits are 8 GB,
and backward needs more); ours (lightning_kg.model.heads.chunked_cross_entropy, 8,192 entities a
chunk, as the model uses) keeps (masked x chunk) at a time. Both take the same path as the model:
hidden states (768) through EntityPredictionHead to 256-wide queries, scored against the tied
entity table; forward + backward. Our time includes the rank metric's extra pass. With
``--precision bf16`` both run under bf16 autocast, as ``bf16-mixed`` training does (the GPU check's
setting): the table stays fp32, its products run in bf16.

Each case runs in a fresh subprocess, so its peak is its own: on CPU the peak resident memory
above what the process held before the loss (torch's CPU allocations are invisible to
tracemalloc), on CUDA torch.cuda.max_memory_allocated above what was allocated before. The CPU
peak is Linux's VmHWM, reset just before the loss: ru_maxrss would do in a process started from
a small one, but a child inherits the parent's high-water mark through fork and exec. A
case that needs more than the machine has stops with "out of memory" (on CPU an address-space
limit makes it fail cleanly instead of calling the OOM killer). Loss and gradients of the two are
compared in one process at the smallest vocabulary.

    python bench/mep_memory.py --quick      # 256 masked entities (a GPU micro-batch's worth)
    python bench/mep_memory.py              # 2,048 masked entities (full logits of 1M need ~24 GB)
    python bench/mep_memory.py --precision bf16 --vocab 1000000    # GPU
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F
from common import record, synchronize

from lightning_kg.model.config import EncoderConfig
from lightning_kg.model.heads import EntityPredictionHead, chunked_cross_entropy

HIDDEN, ENTITY_EMB, CHUNK = 768, 256, 8192


def resident(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process, bytes."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def setup(vocab: int, masked: int, device: str):
    """The entity head, the (vocab, 256) table, (masked, 768) hidden states and labels, seeded."""
    torch.manual_seed(0)
    config = EncoderConfig(vocab_size=8, entity_vocab_size=vocab, hidden_size=HIDDEN, entity_emb_size=ENTITY_EMB)
    head = EntityPredictionHead(config).to(device)
    table = torch.randn(vocab, ENTITY_EMB, device=device).mul_(0.02).requires_grad_()  # in place: no transient copy
    hidden = torch.randn(masked, HIDDEN, device=device, requires_grad=True)
    labels = torch.randint(3, vocab, (masked,), device=device)
    return head, table, hidden, labels


def loss_of(method: str, head, table, hidden, labels, precision: str) -> torch.Tensor:
    with torch.autocast(hidden.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        queries = head(hidden)
        if method == "chunked":
            return chunked_cross_entropy(queries, table, head.bias, labels, CHUNK)[0]
        return F.cross_entropy(F.linear(queries, table, head.bias), labels)


def case(method: str, vocab: int, masked: int, device: str, precision: str) -> dict:
    """One forward + backward in this process: its seconds and the peak memory it added, MiB."""
    if device == "cpu":
        # Fail with an exception rather than wake the OOM killer: address space up to what is free.
        limit = psutil.Process().memory_info().vms + int(psutil.virtual_memory().available * 0.9)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        head, table, hidden, labels = setup(vocab, masked, device)
        # Kernels, thread pools and cuBLAS start up outside the measurement.
        loss_of(method, head, table, hidden[:8], labels[:8], precision).backward()
        head.zero_grad(set_to_none=True)
        table.grad = hidden.grad = None
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux)
            before = resident("VmHWM")
        synchronize(device)
        start = time.perf_counter()
        loss_of(method, head, table, hidden, labels, precision).backward()
        synchronize(device)
        seconds = time.perf_counter() - start
    except (MemoryError, RuntimeError) as error:
        if "memory" not in str(error).lower():
            raise
        return {"error": "out of memory"}
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = resident("VmHWM") - before
    return {"seconds": seconds, "peak_mib": peak / 2**20}


def check(vocab: int, masked: int, device: str, precision: str) -> dict[str, float]:
    """Largest absolute difference of the two methods' loss and gradients, on the same inputs."""
    results = {}
    for method in ("chunked", "full"):
        head, table, hidden, labels = setup(vocab, masked, device)
        loss = loss_of(method, head, table, hidden, labels, precision)
        loss.backward()
        results[method] = [loss.detach(), table.grad, head.bias.grad, hidden.grad, head.dense.weight.grad]
    names = ["loss", "table grad", "bias grad", "hidden grad", "head weight grad"]
    return {name: float((a - b).abs().max()) for name, a, b in zip(names, results["chunked"], results["full"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--masked", type=int, default=2048, help="masked entities per batch")
    parser.add_argument("--vocab", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="256 masked entities")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="bf16: under bf16 autocast, as bf16-mixed trains")
    parser.add_argument("--case", nargs=3, metavar=("METHOD", "VOCAB", "MASKED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.case:
        print(json.dumps(case(args.case[0], int(args.case[1]), int(args.case[2]), device, args.precision)))
        return
    if args.quick:
        args.masked = 256

    print(f"mep_vocab loss, forward + backward, {args.masked:,} masked entities, hidden {HIDDEN}, "
          f"entity_emb_size {ENTITY_EMB}, {args.precision} on {device}")
    differences = check(min(args.vocab), min(args.masked, 512), device, args.precision)
    print(f"  same result (vocabulary {min(args.vocab):,}), max abs difference chunked vs full: "
          + ", ".join(f"{name} {value:.1e}" for name, value in differences.items()))
    print(f"  {'entities':>10s} {'method':>8s} {'peak MiB':>9s} {'seconds':>8s}")
    for vocab in args.vocab:
        print(f"  {vocab:10,d} {'(table gradient, in both)':>27s} {vocab * ENTITY_EMB * 4 / 2**20:,.0f} MiB")
        measured = {}
        for method in ("chunked", "full"):
            command = [sys.executable, __file__, "--precision", args.precision, "--case", method, str(vocab), str(args.masked)]
            measured[method] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            result = measured[method]
            if "error" in result:
                print(f"  {vocab:10,d} {method:>8s} {result['error']:>18s}")
            else:
                print(f"  {vocab:10,d} {method:>8s} {result['peak_mib']:9,.0f} {result['seconds']:8.2f}")
        ours, full = measured["chunked"], measured["full"]
        if "error" not in full:
            print(f"  {'':10s} {'ratio':>8s} {full['peak_mib'] / ours['peak_mib']:8.1f}x {full['seconds'] / ours['seconds']:7.2f}x  "
                  "(full / chunked)")
        record(device, f"mep_vocab loss peak MiB, {vocab:,} entities x {args.masked:,} masked, {args.precision}, chunked vs full logits",
               ours["peak_mib"], full.get("peak_mib"), full["peak_mib"] / ours["peak_mib"] if "error" not in full else None, digits=0)
        record(device, f"mep_vocab loss fwd+bwd s, {vocab:,} entities x {args.masked:,} masked, {args.precision}, chunked vs full logits",
               ours["seconds"], full.get("seconds"), full["seconds"] / ours["seconds"] if "error" not in full else None, digits=2)


if __name__ == "__main__":
    main()

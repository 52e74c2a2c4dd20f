"""What ``--model.compile true`` costs and gains: the seconds the first compiled steps take, and the
speed of later training steps, compiled encoder against eager, on padded batches from shards
(train_step.py's: the demo's, or synthetic ones with --seq-len), reported apart: a cold compile
is paid once per run, the warm speed on every later step.

Both models start from the same weights and train on the same batches with the same AdamW, in one
process, alternating; the ratio is the median of the repetitions' ratios. Inductor's caches are
off, so the compile time is that of a first run on a fresh machine.

    python bench/compile_speed.py --quick          # tiny, CPU
    python bench/compile_speed.py --size base --seq-len 512 --precision bf16   # GPU
"""

from __future__ import annotations

import os

os.environ["TORCHINDUCTOR_FORCE_DISABLE_CACHES"] = "1"  # before torch is imported: a cold compile

import statistics  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from common import record  # noqa: E402
from train_step import batch_source, step_arguments, trainer  # noqa: E402

from lightning_kg.model.config import EncoderConfig  # noqa: E402
from lightning_kg.model.pretraining import KnowledgePretrainingModel  # noqa: E402


def main() -> None:
    args = step_arguments(__doc__.split("\n\n")[0], repeats=5)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    torch.manual_seed(0)
    count = args.steps * 2
    with tempfile.TemporaryDirectory() as workdir:
        batches, vocab, entity_vocab, pad_id, source = batch_source(args, count, Path(workdir))
    batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()} for b in batches]
    config = EncoderConfig.preset(args.size, vocab_size=vocab, entity_vocab_size=entity_vocab, pad_token_id=pad_id)
    eager = KnowledgePretrainingModel(config).to(device)
    compiled = KnowledgePretrainingModel(config).to(device)
    compiled.load_state_dict(eager.state_dict())
    compiled.encoder.compile()  # what --model.compile true does
    runs = {name: trainer(model, lambda m, b: m(b)["loss"], batches, device, dtype) for name, model in (("eager", eager), ("compiled", compiled))}
    # The first steps compile: one graph per distinct shape the batches bring (dynamic shapes after the second).
    first = {name: run(list(range(count))) for name, run in runs.items()}
    times = {name: [] for name in runs}
    for repeat in range(args.repeats):
        numbers = [(repeat * args.steps + i) % count for i in range(args.steps)]
        for name, run in runs.items():
            times[name].append(run(numbers))
    ratio = statistics.median(e / c for e, c in zip(times["eager"], times["compiled"]))
    step_ms = {name: statistics.median(t) / args.steps * 1e3 for name, t in times.items()}
    compile_s = first["compiled"] - first["eager"]
    shapes = len({(b["input_ids"].shape, b["entity_ids"].shape) for b in batches})
    print(f"{args.size} model, {args.precision} on {device}, {torch.get_num_threads()} torch threads, {count} distinct batches "
          f"({shapes} text shapes) from {source}")
    print(f"  cold compile: first {count} steps took {first['compiled']:.1f} s compiled, {first['eager']:.1f} s eager: {compile_s:.1f} s compiling")
    print(f"  warm steps: eager {step_ms['eager']:.1f} ms, compiled {step_ms['compiled']:.1f} ms: {ratio:.2f}x")
    record(device, f"compile seconds (first {count} steps, compiled minus eager), {args.size}, {args.precision}", compile_s, None, None)
    record(device, f"train step ms, {args.size}, {args.precision}, compiled encoder vs eager", step_ms["compiled"], step_ms["eager"], ratio)


if __name__ == "__main__":
    main()

"""Callbacks for the tests that run the real CLI (added with --config, so by import path): one writes
what each rank trained on (in subprocesses the only way out is a file per rank), one records the
FLOPs the model counts, others inject faults at a chosen moment (a signal, a checkpoint write that
hangs)."""

from __future__ import annotations

import json
import os
import signal as signals
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from lightning_kg.dataset.format import IGNORE_INDEX


class BatchRecorder(Callback):
    def __init__(self, out: str):
        self.out = Path(out)

    def _write(self, trainer, record: dict) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / f"rank{trainer.global_rank}.jsonl", "a", encoding="utf-8") as lines:
            lines.write(json.dumps(record) + "\n")

    def on_train_start(self, trainer, pl_module) -> None:
        table = pl_module.model.encoder.entity_embeddings.table.weight
        # Under ZeRO-3 a parameter keeps its full size in ds_numel and this rank's part in ds_tensor.
        local = table.ds_tensor.numel() if hasattr(table, "ds_tensor") else table.numel()
        self._write(trainer, {"world_size": trainer.world_size, "entity_table": [local, getattr(table, "ds_numel", table.numel())]})

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # The unmasked text: a label where MLM masked a token, else the input.
        ids = batch["mlm_labels"].where(batch["mlm_labels"].ne(IGNORE_INDEX), batch["input_ids"])
        rows = [row[mask.bool()].tolist() for row, mask in zip(ids, batch["attention_mask"])]
        languages = batch["text_language_ids"].tolist() if "text_language_ids" in batch else None
        self._write(trainer, {"step": trainer.global_step, "rows": rows, "languages": languages})


class SignalAt(Callback):
    """Sends ``signal`` to its own process once: after optimiser step ``step``, or as validation batch
    ``validation_batch`` of a fit starts. Deterministic, where a signal from the test would race."""

    def __init__(self, signal: str, step: int | None = None, validation_batch: int | None = None):
        self.signal, self.step, self.validation_batch, self.sent = getattr(signals, signal), step, validation_batch, False

    def _send(self) -> None:
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signal)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            self._send()

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking and batch_idx == self.validation_batch:
            self._send()


class _SlowToPickle:
    """Pickling it marks a file and then takes ``seconds``: a checkpoint write caught in the middle."""

    def __init__(self, marker: Path, seconds: float):
        self.marker, self.seconds = marker, seconds

    def __reduce__(self):
        self.marker.touch()
        time.sleep(self.seconds)
        return dict, ()


class SlowSave(Callback):
    """Makes the checkpoint written at optimiser step ``step`` take minutes, touching ``marker`` once
    the write has begun, so a test can kill the process in the middle of it."""

    def __init__(self, step: int, marker: str):
        self.step, self.marker = step, Path(marker)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if trainer.global_step == self.step:
            checkpoint["slow"] = _SlowToPickle(self.marker, 600)


class EventLog(Callback):
    """Appends each checkpoint dump (``save step=N``) and each validation start of a fit
    (``validation step=N``) to the file ``out``."""

    def __init__(self, out: str):
        self.out = Path(out)

    def _write(self, line: str) -> None:
        with open(self.out, "a", encoding="utf-8") as lines:
            lines.write(line + "\n")

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._write(f"save step={trainer.global_step}")

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._write(f"validation step={trainer.global_step}")


class NaNLossAt(Callback):
    """Makes ``objective``'s loss, and so the total, NaN in the batch of optimiser step ``step``, as an
    overflow would (the weights the optimiser then writes are NaN too)."""

    def __init__(self, step: int, objective: str):
        self.step, self.objective = step, objective

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step != self.step:
            return
        model, forward, name = pl_module.model, pl_module.model.forward, f"{self.objective}_loss"

        def poisoned(batch):
            outputs = forward(batch)
            setattr(outputs, name, getattr(outputs, name) * float("nan"))
            outputs.loss = outputs.loss + getattr(outputs, name)
            return outputs

        model.forward = poisoned

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        pl_module.model.__dict__.pop("forward", None)


class CorruptShardsAt(Callback):
    """Overwrites every file matching ``pattern`` with bytes of the same size that are no tar, after
    optimiser step ``step``: a shard that goes bad under a running fit (a failing disk or mount)."""

    def __init__(self, step: int, pattern: str):
        self.step, self.pattern = step, pattern

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            for path in Path(self.pattern).parent.glob(Path(self.pattern).name):
                path.write_bytes(b"\0bad" * (path.stat().st_size // 4))


class FlopsSpy(Callback):
    """Records what the model counts for each training batch, and checks the module hands
    ThroughputMonitor that batch's count."""

    seen: list[int] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        FlopsSpy.seen.append(module.model.flops_per_batch(batch))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        assert module.flops_per_batch == FlopsSpy.seen[-1]

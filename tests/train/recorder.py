"""A callback that writes what each rank trained on, for the multi-process tests (they run the real
CLI in subprocesses, so the only way out is a file per rank)."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.callbacks import Callback

IGNORE = -100


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
        ids = batch["mlm_labels"].where(batch["mlm_labels"].ne(IGNORE), batch["input_ids"])
        rows = [row[mask.bool()].tolist() for row, mask in zip(ids, batch["attention_mask"])]
        self._write(trainer, {"step": trainer.global_step, "rows": rows})

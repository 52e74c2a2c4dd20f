"""What a batch holds, counted the same way by the training step, the loggers and the throughput
monitor: which objectives it feeds, its samples and its real tokens."""

from __future__ import annotations

import torch


def has_inputs(objective: str, batch: dict[str, torch.Tensor]) -> bool:
    """Whether ``batch`` holds what ``objective`` learns from: facts for ``oe``, text rows for the others."""
    rows = batch.get("oe_objects" if objective == "oe" else "input_ids")
    return rows is not None and rows.shape[0] > 0


def samples_in_batch(batch: dict[str, torch.Tensor]) -> int:
    """Text rows and facts in a batch."""
    return batch["input_ids"].shape[0] + (batch["oe_objects"].shape[0] if "oe_objects" in batch else 0)


def tokens_in_batch(batch: dict[str, torch.Tensor]) -> int:
    """Real (non-padding) tokens the encoder reads in a batch: text rows and knowledge texts."""
    total = int(batch["attention_mask"].sum())
    for key in ("mep_knowledge_mask", "oe_query_mask", "oe_object_mask"):
        if key in batch:
            total += int(batch[key].sum())
    return total

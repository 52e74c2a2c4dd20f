"""What a batch holds, counted the same way by the training step, the loggers and the throughput
monitor: which objectives it feeds, its samples and its real tokens.

The collator counts once, on the host, into ``batch["counts"]`` (plain ints, which Lightning leaves
on the host when it moves the batch): reading them back from the device would make every step wait
for the GPU (a device-to-host sync).
"""

from __future__ import annotations

import torch

from lightning_kg.dataset.format import IGNORE_INDEX

KNOWLEDGE_MASKS = ("mep_knowledge_mask", "oe_query_mask", "oe_object_mask")


def count_batch(batch: dict[str, torch.Tensor]) -> dict[str, int]:
    """The host integers the step's logs, FLOPs and attention mask need, from a batch on the CPU:
    ``samples`` (text rows and facts), ``tokens`` (real tokens the encoder reads: text rows and
    knowledge texts), ``masked_words`` and ``masked_entities`` (MLM and ``mep_vocab`` targets) and
    ``text_padding`` (padded word and entity positions of the text rows; 0: attention needs no mask)."""
    tokens = int(batch["attention_mask"].sum()) + sum(int(batch[key].sum()) for key in KNOWLEDGE_MASKS if key in batch)
    padding = int(batch["attention_mask"].numel() - batch["attention_mask"].sum())
    padding += int(batch["entity_attention_mask"].numel() - batch["entity_attention_mask"].sum())
    return {"samples": batch["input_ids"].shape[0] + (batch["oe_objects"].shape[0] if "oe_objects" in batch else 0),
            "tokens": tokens, "masked_words": int(batch["mlm_labels"].ne(IGNORE_INDEX).sum()),
            "masked_entities": int(batch["entity_labels"].ne(IGNORE_INDEX).sum()), "text_padding": padding}


def masked_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N) labels on the host, -100 where nothing is predicted -> the flat positions into
    ``(B * N)`` of the predicted ones, row by row, and their labels: (masked,) int64 each.

    Built on the host, by the collator: the model indexes with these, while picking the positions
    with a boolean mask on the device would make the step wait for it to size the result."""
    positions = labels.reshape(-1).ne(IGNORE_INDEX).nonzero().reshape(-1)
    return positions, labels.reshape(-1)[positions]


def masked_inputs(batch: dict[str, torch.Tensor], kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``kind`` "mlm" or "entity": the collator's ``<kind>_positions``/``entity_mask_positions`` and
    targets; found from the labels (reading the tensors) for a batch built by hand."""
    position_key, target_key = ("mlm_positions", "mlm_targets") if kind == "mlm" else ("entity_mask_positions", "entity_targets")
    if position_key in batch:
        return batch[position_key], batch[target_key]
    return masked_positions(batch["mlm_labels" if kind == "mlm" else "entity_labels"])


def batch_counts(batch: dict[str, torch.Tensor]) -> dict[str, int]:
    """``batch["counts"]`` as the collator made it; counted here (reading the tensors) for a batch
    built by hand."""
    return batch["counts"] if "counts" in batch else count_batch(batch)


def has_inputs(objective: str, batch: dict[str, torch.Tensor]) -> bool:
    """Whether ``batch`` holds what ``objective`` learns from: facts for ``oe``, text rows for the others."""
    rows = batch.get("oe_objects" if objective == "oe" else "input_ids")
    return rows is not None and rows.shape[0] > 0


def samples_in_batch(batch: dict[str, torch.Tensor]) -> int:
    """Text rows and facts in a batch."""
    return batch_counts(batch)["samples"]


def tokens_in_batch(batch: dict[str, torch.Tensor]) -> int:
    """Real (non-padding) tokens the encoder reads in a batch: text rows and knowledge texts."""
    return batch_counts(batch)["tokens"]

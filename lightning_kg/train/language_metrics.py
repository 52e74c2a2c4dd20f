"""Validation metrics per language: MLM loss and accuracy, and mep_vocab accuracy@1, so that a
language that never improves is seen, not averaged away among the others.

One torchmetrics state of sums and counts per (metric, language), summed over all ranks when
computed, so each figure covers the whole validation split as the overall metrics do. Logged as
``val_lang/<metric>/<lang>``, which TensorBoard groups under ``val_lang``. This is the one place
that reads the model's per-token and per-slot outputs for it.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from lightning_kg.data.batches import masked_inputs
from lightning_kg.model.pretraining import PretrainingOutput

KINDS = ("mlm_loss", "mlm_acc", "mep_vocab_acc1")


def _rows_of(batch: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
    """The row of each predicted position, in the order of the model's ``mlm_correct`` and
    ``mep_vocab_rank`` (``kind`` "mlm" or "entity"): (positions,) int64, from the collator's flat
    positions (no boolean mask to wait for)."""
    labels = batch["mlm_labels" if kind == "mlm" else "entity_labels"]
    return masked_inputs(batch, kind)[0] // labels.shape[1]


class LanguageMetrics(Metric):
    """Means per language of each of :data:`KINDS`; ``languages`` index ``text_language_ids``."""

    full_state_update = False

    def __init__(self, languages: list[str]):
        super().__init__()
        self.languages = list(languages)
        self.add_state("totals", torch.zeros(len(KINDS), len(self.languages), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", torch.zeros(len(KINDS), len(self.languages), dtype=torch.float64), dist_reduce_fx="sum")

    def _add(self, kind: str, values: torch.Tensor, language_ids: torch.Tensor) -> None:
        # A language outside the dataset's (-1) adds 0 to the first one: no mask to wait for.
        known = (language_ids >= 0).to(self.totals.dtype)
        row, columns = KINDS.index(kind), language_ids.clamp(min=0)
        # The states' own dtype: float64 as made, but DeepSpeed casts a module's buffers (float32 here).
        self.totals[row].index_add_(0, columns, values.detach().to(self.totals.dtype) * known)
        self.counts[row].index_add_(0, columns, known.to(self.counts.dtype))

    def update(self, outputs: PretrainingOutput, batch: dict[str, torch.Tensor]) -> None:
        """One evaluation batch: per masked token ``mlm_token_losses`` and ``mlm_correct``, per masked
        entity slot ``mep_vocab_rank``, each counted for its row's language (``text_language_ids`` (B,))."""
        if "text_language_ids" not in batch:
            return
        row_languages = batch["text_language_ids"]
        if outputs.mlm_correct is not None and outputs.mlm_correct.numel():
            token_languages = row_languages[_rows_of(batch, "mlm")]
            self._add("mlm_loss", outputs.mlm_token_losses, token_languages)
            self._add("mlm_acc", outputs.mlm_correct.float(), token_languages)
        if outputs.mep_vocab_rank is not None and outputs.mep_vocab_rank.numel():
            self._add("mep_vocab_acc1", (outputs.mep_vocab_rank < 1).float(), row_languages[_rows_of(batch, "entity")])

    def compute(self) -> dict[str, torch.Tensor]:
        """``{"<metric>/<lang>": mean}`` for each metric and language that had a value on some rank."""
        means = self.totals / self.counts.clamp(min=1)
        return {f"{kind}/{lang}": means[row, column].float()
                for row, kind in enumerate(KINDS) for column, lang in enumerate(self.languages) if self.counts[row, column] > 0}

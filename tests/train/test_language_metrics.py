"""Validation metrics per language (train/language_metrics.py) on a hand-made batch."""

import pytest
import torch

from lightning_kg.dataset.format import IGNORE_INDEX
from lightning_kg.model.pretraining import PretrainingOutput
from lightning_kg.train.language_metrics import LanguageMetrics

X = IGNORE_INDEX


def test_each_masked_token_and_entity_counts_for_its_rows_language():
    metric = LanguageMetrics(["en", "sw", "zh"])
    # Rows 0 and 2 are en, row 1 sw, row 3 of a language outside the dataset's (-1): left out.
    batch = {"text_language_ids": torch.tensor([0, 1, 0, -1]),
             "mlm_labels": torch.tensor([[5, X, 6], [X, 7, X], [8, X, X], [9, X, X]]),
             "entity_labels": torch.tensor([[X, 3], [4, X], [X, X], [X, X]])}
    outputs = PretrainingOutput(mlm_token_losses=torch.tensor([1.0, 2.0, 4.0, 9.0, 100.0]),  # row 0, row 0, row 1, row 2, row 3
                                mlm_correct=torch.tensor([True, False, True, True, True]),
                                mep_vocab_rank=torch.tensor([0, 5]))  # row 0, row 1
    metric.update(outputs, batch)
    metric.update(PretrainingOutput(mlm_token_losses=torch.tensor([6.0]), mlm_correct=torch.tensor([False]), mep_vocab_rank=torch.tensor([0])),
                  {"text_language_ids": torch.tensor([1]), "mlm_labels": torch.tensor([[5]]), "entity_labels": torch.tensor([[3]])})
    values = {name: float(value) for name, value in metric.compute().items()}
    assert values == pytest.approx({"mlm_loss/en": (1 + 2 + 9) / 3, "mlm_loss/sw": (4 + 6) / 2, "mlm_acc/en": 2 / 3, "mlm_acc/sw": 0.5,
                                    "mep_vocab_acc1/en": 1.0, "mep_vocab_acc1/sw": 0.5})  # nothing for zh, which had no row
    metric.reset()
    assert metric.compute() == {}

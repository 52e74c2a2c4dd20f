"""Fixtures shared by the probe tests."""

import pytest
import torch

from lightning_kg.probe.metrics import LabelVectors


@pytest.fixture
def spelling_world() -> dict[str, LabelVectors]:
    """Four entities. 10 and 11 are spelt alike in English and German, so the encoder gives each one
    vector in both languages and they find themselves; 12 and 13 are spelt differently: 12's labels
    land together, 13's German label near Germany and its English one near Asia."""

    def unit(*rows) -> torch.Tensor:
        return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)

    english = LabelVectors([10, 11, 12, 13], ["Europa", "Asia", "Germany", "France"],
                           unit([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0.6, 0, 0.8]))
    german = LabelVectors([10, 11, 12, 13], ["Europa", "Asia", "Deutschland", "Frankreich"],
                          unit([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0.9, 0.1]))
    return {"en": english, "de": german}

"""Fixtures shared across the test directories. Helpers that take arguments stay importable modules
(``tests/demo.py``, ``tests/export_check.py``, ``tests/factories.py``, ``lightning_kg/recipes/synthetic_shards.py``,
``tests/data/batch_compare.py``, ``tests/model/tiny_model.py``, ``tests/probe/fact_factory.py``,
``tests/probe/checkpoint_factory.py``, ``tests/train/recorder.py``);
no test module imports another."""

from __future__ import annotations

import pytest

from tests.demo import DEMO


@pytest.fixture(scope="session")
def demo_batch() -> dict:
    """The first validation batch of the demo shards (2 rows), encoder inputs only (``(2, seq)`` words,
    ``(2, entities)`` entities): what the export checks feed our model and transformers'. Shared by
    the session, so read it, never change it."""
    # Imported here: every test run loads this file, and most tests need neither torch nor Lightning.
    from lightning_kg.data.datamodule import KnowledgeDataModule
    from tests.export_check import ENCODER_INPUTS

    batch = next(iter(KnowledgeDataModule(DEMO, num_workers=0, batch_size=2).val_dataloader()))
    return {key: batch[key] for key in ENCODER_INPUTS}

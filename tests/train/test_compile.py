"""``--model.compile true``: the compiled encoder trains to the same losses as the eager one."""

from __future__ import annotations

import pytest
import torch

from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.train.module import KnowledgePretraining
from tests.demo import DEMO


def losses(compiled: bool, batches: list[dict]) -> list[float]:
    """The tiny model's loss at each of a few AdamW steps, without dropout (compiled code draws other random numbers)."""
    torch.manual_seed(0)
    data = KnowledgeDataModule(DEMO, num_workers=0)
    module = KnowledgePretraining(vocab_size=data.vocab_size, entity_vocab_size=data.entity_vocab_size, pad_token_id=data.pad_token_id,
                                  objective_settings={"queue_size": 16}, encoder={"dropout": 0.0, "attention_dropout": 0.0}, compile=compiled)
    adamw = torch.optim.AdamW(module.parameters(), lr=1e-3)
    out = []
    for batch in batches:
        loss = module.train()(batch).loss
        loss.backward()
        adamw.step()
        adamw.zero_grad()
        out.append(float(loss))
    return out


@pytest.mark.slow
def test_the_compiled_encoder_trains_to_the_eager_losses():
    data = KnowledgeDataModule(DEMO, num_workers=0, batch_size=4, fact_batch_size=4)
    batches = [next(iter(data.train_dataloader()))] * 3  # one batch again: the loss must fall
    eager, compiled = losses(False, batches), losses(True, batches)
    assert eager[-1] < eager[0]  # it trains, so the comparison covers updated weights
    assert compiled == pytest.approx(eager, rel=1e-4)

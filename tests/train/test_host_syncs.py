"""A training step never waits for the device: no tensor is read back to the host in the forward,
the loss, the metrics' updates or the backward, except at the steps Lightning writes logs."""

from __future__ import annotations

import traceback
from collections import defaultdict

import lightning as L
import pytest
import torch

from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.lightning_private import should_update_logs
from lightning_kg.train.module import KnowledgePretraining
from tests.demo import DEMO

# The Tensor methods that hand a value to Python: on a GPU each one waits for the device.
READS = ("item", "tolist", "__int__", "__float__", "__bool__", "__index__", "numpy")
# What runs on the host for each batch between loading it and the optimiser: the FLOPs count, the
# forward, losses, logs and metric updates, and the backward.
STEP_HOOKS = ("on_train_batch_start", "training_step", "backward")


class SyncCounter(L.Callback):
    """Counts tensor reads inside :data:`STEP_HOOKS`, per step, with the line of ours that made them."""

    def __init__(self):
        self.reads: dict[int, list[str]] = defaultdict(list)
        self.logging_steps: set[int] = set()
        self.step: int | None = None

    def setup(self, trainer, module, stage):
        counter = self

        def counting(name, original):
            def read(tensor, *args, **kwargs):
                if counter.step is not None:
                    frame = next((f for f in reversed(traceback.extract_stack()[:-1]) if "lightning_kg" in f.filename), None)
                    counter.reads[counter.step].append(f"{name} at {frame.filename.split('lightning_kg/')[-1]}:{frame.lineno}"
                                                       if frame else name)
                return original(tensor, *args, **kwargs)
            return read

        self.originals = {name: getattr(torch.Tensor, name) for name in READS}
        for name, original in self.originals.items():
            setattr(torch.Tensor, name, counting(name, original))
        for hook in STEP_HOOKS:
            setattr(module, hook, self._counted(trainer, getattr(module, hook)))

    def _counted(self, trainer, hook):
        def counted(*args, **kwargs):
            self.step = trainer.global_step
            if should_update_logs(trainer):
                self.logging_steps.add(trainer.global_step)
            try:
                return hook(*args, **kwargs)
            finally:
                self.step = None
        return counted

    def teardown(self, trainer, module, stage):
        for name, original in self.originals.items():
            setattr(torch.Tensor, name, original)


@pytest.mark.slow
def test_a_training_step_reads_nothing_from_the_device_except_when_it_logs(tmp_path):
    data = KnowledgeDataModule(DEMO, num_workers=0, batch_size=4, fact_batch_size=4)
    module = KnowledgePretraining(vocab_size=data.vocab_size, entity_vocab_size=data.entity_vocab_size,
                                  pad_token_id=data.pad_token_id, objective_settings={"queue_size": 16})
    counter = SyncCounter()
    trainer = L.Trainer(max_steps=6, log_every_n_steps=3, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, limit_val_batches=0, callbacks=[counter], default_root_dir=tmp_path)
    trainer.fit(module, data)
    quiet = {step: reads for step, reads in counter.reads.items() if step not in counter.logging_steps}
    assert counter.logging_steps == {2, 5}
    assert quiet == {}, quiet
    # The counter does see a read: the one the old FLOPs count made of the masked tokens.
    labels = next(iter(data.train_dataloader()))["mlm_labels"]
    counter.setup(trainer, module, "fit")
    counter.step = -1
    int(labels.ne(-100).sum())
    counter.teardown(trainer, module, "fit")
    assert counter.reads[-1] == ["__int__"]

"""A training step never waits for the device: outside the steps Lightning writes logs, no op of a
whole fit step (forward, losses, metrics, backward, optimiser, the default callbacks and the
progress bar) needs the host, counted with a dispatch mode as a reviewer would count them.

What needs the host, on a GPU: an op whose output shape depends on the data (``nonzero``, boolean
indexing, ``masked_select``), a read of a value (``.item()``, ``bool()``, ``.tolist()``: all
``_local_scalar_dense`` or a copy to the host), a ``synchronize``, and a tensor made from Python
numbers for the device (``self.log`` of a float: a blocking host-to-device copy). On this CPU the
same ops run, so the count is the one a GPU step would make; the one exception, Lightning's
``ThroughputMonitor._update``, synchronises only when the device is CUDA, so each call is counted.
"""

from __future__ import annotations

import traceback
from collections import defaultdict
from contextlib import contextmanager

import pytest
import torch
from lightning.pytorch.callbacks import ThroughputMonitor
from lightning.pytorch.loops.fetchers import _DataFetcher
from torch.utils._python_dispatch import TorchDispatchMode

from lightning_kg.lightning_private import should_update_logs
from lightning_kg.paths import REPOSITORY
from lightning_kg.train import logging_steps
from tests.demo import DEMO

ATEN = torch.ops.aten
DATA_DEPENDENT = {ATEN.nonzero.default, ATEN.masked_select.default, ATEN._unique2.default, ATEN.unique_consecutive.default,
                  ATEN.unique_dim.default, ATEN.repeat_interleave.Tensor}
"""Ops whose output shape is a function of the values: the host waits to size the result."""
READS = {ATEN._local_scalar_dense.default, ATEN.equal.default}
"""Ops that hand a value to Python (``.item()``, ``bool()``, ``int()``, ``.tolist()``, ``torch.equal``)."""
INDEXING = {ATEN.index.Tensor, ATEN.index_put.default, ATEN.index_put_.default, ATEN._index_put_impl_.default}


def _our_frame() -> str:
    """The innermost frame of this repository (library or Lightning's call of it) that made the op."""
    frames = traceback.extract_stack()[:-3]
    ours = next((f for f in reversed(frames) if "lightning_kg/" in f.filename and "tests/train/test_host_syncs" not in f.filename), None)
    outer = next((f for f in reversed(frames) if "site-packages" in f.filename and "torch/utils/_python_dispatch" not in f.filename
                  and "/torch/" not in f.filename.split("site-packages")[-1][:8]), None)
    frame = ours or outer or frames[-1]
    name = frame.filename.split("site-packages/")[-1]
    return f"{name.removeprefix(f'{REPOSITORY}/')}:{frame.lineno}"


class HostWaits(TorchDispatchMode):
    """Counts every op that needs the host while :attr:`step` is set, by step, with where it came from."""

    def __init__(self):
        super().__init__()
        self.seen: dict[int, list[str]] = defaultdict(list)
        self.step: int | None = None
        self.paused = False

    def note(self, what: str) -> None:
        if self.step is not None and not self.paused:
            self.seen[self.step].append(f"{what} at {_our_frame()}")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in DATA_DEPENDENT or func in READS:
            self.note(str(func))
        elif func in INDEXING and any(torch.is_tensor(i) and i.dtype == torch.bool for i in (args[1] or ()) if i is not None):
            self.note(f"{func} with a boolean mask")
        elif func is ATEN.lift_fresh.default:
            self.note("a tensor made from Python numbers")
        elif func in (ATEN._to_copy.default, ATEN.copy_.default):
            source = args[1] if func is ATEN.copy_.default else args[0]
            target = kwargs.get("device") or (args[0].device if func is ATEN.copy_.default else source.device)
            if source.device.type != torch.device(target).type:
                self.note(f"a copy {source.device.type} -> {torch.device(target).type}")
        return func(*args, **kwargs)

    @contextmanager
    def pausing(self):
        """Loading and collating a batch happen on the host by design (the loader's workers, in a run)."""
        paused, self.paused = self.paused, True
        try:
            yield
        finally:
            self.paused = paused


@contextmanager
def counting(trainer, monkeypatch):
    """A :class:`HostWaits` over each whole training step of ``trainer``: from the batch's arrival
    to the end of the optimiser step and every callback, the batch's loading left out."""
    waits = HostWaits()
    loop = trainer.fit_loop.epoch_loop
    advance = loop.advance
    fetch = _DataFetcher.__next__
    update = ThroughputMonitor._update
    wait = logging_steps.wait_for_device

    def counted_advance(*args, **kwargs):
        waits.step = trainer.global_step
        logging = should_update_logs(trainer)
        try:
            return advance(*args, **kwargs)
        finally:
            if logging:
                waits.logging_steps.add(waits.step)
            waits.step = None

    def unobserved_fetch(self):
        with waits.pausing():
            return fetch(self)

    def observed_update(self, *args, **kwargs):
        if type(self) is ThroughputMonitor:  # Lightning's own: torch.cuda.synchronize on a GPU, every batch
            waits.note("ThroughputMonitor._update")
        return update(self, *args, **kwargs)

    waits.logging_steps = set()
    monkeypatch.setattr(loop, "advance", counted_advance)
    monkeypatch.setattr(_DataFetcher, "__next__", unobserved_fetch)
    monkeypatch.setattr(ThroughputMonitor, "_update", observed_update)
    monkeypatch.setattr(logging_steps, "wait_for_device", lambda trainer: (waits.note("wait_for_device"), wait(trainer)))
    # As on a GPU (configure_optimizers' fused=device.type == "cuda"): the step count stays a device
    # tensor, where the CPU's for-loop AdamW reads it back per parameter.
    adamw = torch.optim.AdamW.__init__
    monkeypatch.setattr(torch.optim.AdamW, "__init__", lambda self, *a, fused=None, **k: adamw(self, *a, fused=True, **k))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: waits.note("torch.cuda.synchronize"))
    with waits:
        yield waits


def _cli(tmp_path, *flags):
    from lightning_kg.cli import _register_resolvers
    from lightning_kg.train.main import KnowledgeCLI

    _register_resolvers()
    return KnowledgeCLI(["--data.data_dir", DEMO, "--data.num_workers", "0", "--data.batch_size", "4", "--data.fact_batch_size", "4",
                         "--model.objective_settings.queue_size", "16", "--trainer.max_steps", "6", "--trainer.log_every_n_steps", "3",
                         "--trainer.limit_val_batches", "0", "--trainer.enable_model_summary", "false", "--run_dir", str(tmp_path),
                         *flags], run=False)


@pytest.mark.slow  # a six-step fit of the tiny model with all four objectives (~10 s)
def test_a_training_step_needs_the_host_only_when_it_logs(tmp_path, monkeypatch):
    cli = _cli(tmp_path)
    callbacks = {type(c).__name__ for c in cli.trainer.callbacks}
    assert {"LoggingStepThroughput", "StepProgressBar", "LearningRateMonitor", "Preemption"} <= callbacks, callbacks
    with counting(cli.trainer, monkeypatch) as waits:
        cli.trainer.fit(cli.model, cli.datamodule)
    assert waits.logging_steps == {2, 5}
    # The first step makes, once, the state of each value it logs (Lightning's ``torch.tensor(0.0)``
    # per key, moved to the device): tensors from Python numbers at the log calls, nothing else.
    first = waits.seen.pop(0, [])
    assert first and all(seen.startswith("a tensor made from Python numbers at lightning_kg/train/module.py") for seen in first), first
    quiet = {step: seen for step, seen in waits.seen.items() if step not in waits.logging_steps}
    assert quiet == {}, quiet
    # A logging step does read the metrics back and waits for the device: the instrument sees it.
    assert any("wait_for_device" in seen for seen in waits.seen[2]) and any("_local_scalar_dense" in seen for seen in waits.seen[2])
    # What remains beyond one process: the preemption agreement (train/preemption.py), a collective
    # every ``agree_every_n_steps`` optimiser steps with several ranks; one process agrees with itself.
    preemption = next(c for c in cli.trainer.callbacks if type(c).__name__ == "Preemption")
    assert preemption.agree_every_n_steps == 10


def test_the_instrument_sees_a_boolean_mask_index_a_read_and_a_python_number(monkeypatch):
    hidden, labels = torch.randn(2, 5, 3), torch.tensor([[1, -100, 3, -100, -100], [-100, 2, -100, -100, -100]])
    waits = HostWaits()
    waits.step = 0
    with waits:
        hidden[labels.ne(-100)]  # the masked positions' states, as the model once took them
        float(labels.sum())
        torch.tensor(0.5)
        hidden.flatten(0, 1)[torch.arange(3)]  # an index tensor: no wait
    assert [seen.split(" at ")[0] for seen in waits.seen[0]] == [
        "aten.index.Tensor with a boolean mask", "aten._local_scalar_dense.default", "a tensor made from Python numbers"]

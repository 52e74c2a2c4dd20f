"""What shows and logs figures during training waits for the device only at the steps Lightning
writes logs: there reading the metrics back waits anyway, at every other step nothing may.

Lightning's ``ThroughputMonitor`` calls ``torch.cuda.synchronize`` after every batch (its timer
needs the device to have caught up) and its rich progress bar reads every shown value back
(``.item()``) after every batch; the two classes here do both only at logging steps.
"""

from __future__ import annotations

import time

import torch
from lightning.pytorch.callbacks import RichProgressBar, ThroughputMonitor
from lightning.pytorch.trainer.states import RunningStage

from lightning_kg.lightning_private import should_update_logs


def wait_for_device(trainer) -> None:
    """Let the device catch up, so the host's clock measures its work (a no-op off CUDA)."""
    if trainer.strategy.root_device.type == "cuda":
        torch.cuda.synchronize()


class LoggingStepThroughput(ThroughputMonitor):
    """``ThroughputMonitor`` whose training figures (batches, samples, tokens, FLOPs and MFU per
    second) cover the steps between two logging steps: each batch is counted on the host, and the
    device is waited for and the clock read only at logging steps. ``window_size`` counts logging
    steps, so the default 2 gives the rates over the last ``log_every_n_steps`` steps."""

    def __init__(self, batch_size_fn, length_fn=None, window_size: int = 2, **kwargs):
        super().__init__(batch_size_fn, length_fn, window_size=window_size, **kwargs)
        self._flops_since_update = 0  # FLOPs of the training batches not yet handed to Throughput

    def _update(self, trainer, pl_module, batch, iter_num: int) -> None:
        stage = trainer.state.stage
        if stage != RunningStage.TRAINING:  # validation: per batch, as Lightning measures it
            return super()._update(trainer, pl_module, batch, iter_num)
        if self.length_fn is not None:
            self._lengths[stage] += self.length_fn(batch)
        self._samples[stage] += self.batch_size_fn(batch)
        self._batches[stage] += 1
        self._flops_since_update += getattr(pl_module, "flops_per_batch", None) or 0
        if not should_update_logs(trainer):
            return
        wait_for_device(trainer)
        self._throughputs[stage].update(
            time=time.perf_counter() - self._t0s[stage], batches=self._batches[stage], samples=self._samples[stage],
            lengths=None if self.length_fn is None else self._lengths[stage], flops=self._flops_since_update or None)
        self._flops_since_update = 0


class LoggingStepProgressBar(RichProgressBar):
    """Lightning's rich bar, its training figures read back only at logging steps (shown until the next)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._shown: dict = {}  # nothing until the first logging step

    def get_metrics(self, trainer, pl_module) -> dict:
        if trainer.training and not should_update_logs(trainer):
            return self._shown
        self._shown = super().get_metrics(trainer, pl_module)
        return self._shown

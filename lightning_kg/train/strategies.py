"""DeepSpeed with atomic checkpoints, and DeepSpeed on a machine without a GPU (tests and CI).

``AtomicDeepSpeedStrategy`` is Lightning's ``DeepSpeedStrategy`` with one change: a checkpoint
directory is written as ``<dir>.tmp/`` by every rank and swapped into place by rank 0 once all
ranks have written and flushed their shards (``checkpoints.swap_into_place``), so a crash during a
save leaves the previous checkpoint whole. Lightning's class writes into the old directory in place.

Lightning's ``DeepSpeedStrategy`` refuses any accelerator but CUDA in ``setup_environment``, yet
DeepSpeed itself runs ZeRO-2/3 on CPU (its CPU accelerator, the gloo backend, CPU Adam built on
first use). ``CPUDeepSpeedStrategy`` skips the CUDA checks (the accelerator's type, CUDA device
indices) and nothing else, so the CPU tests go through the same engine, sharding and checkpoint
code as a GPU run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy

from lightning_kg.dataset.files import fsync_path
from lightning_kg.lightning_private import init_deepspeed_distributed
from lightning_kg.runs.saving import swap_into_place


class AtomicDeepSpeedStrategy(DeepSpeedStrategy):
    strategy_name = "deepspeed_atomic"

    def save_checkpoint(self, checkpoint: dict, filepath, storage_options=None) -> None:
        target = Path(self.broadcast(str(filepath)))
        staging = target.with_name(target.name + ".tmp")
        if self.is_global_zero:
            shutil.rmtree(staging, ignore_errors=True)  # a save that a crash cut short
        self.barrier()
        super().save_checkpoint(checkpoint, staging, storage_options)
        # Every rank flushes the files it sees (on a node-local disk only that node can; on a shared
        # filesystem a second fsync of a clean file costs little), then rank 0 swaps.
        for path in staging.rglob("*"):
            if path.is_file():
                fsync_path(path)
        self.barrier()
        if self.is_global_zero:
            swap_into_place(staging, target)
        self.barrier()


class CPUDeepSpeedStrategy(AtomicDeepSpeedStrategy):
    strategy_name = "deepspeed_cpu"

    def setup_environment(self) -> None:
        if self.accelerator is not None and self.accelerator.__class__.__name__ == "CUDAAccelerator":
            raise RuntimeError("CPUDeepSpeedStrategy is for machines without a GPU; use "
                               "lightning_kg.train.strategies.AtomicDeepSpeedStrategy (conf/strategy/zero*.yaml) on GPUs")
        DDPStrategy.setup_environment(self)  # DeepSpeedStrategy's own only adds the CUDA check

    def setup_distributed(self) -> None:
        # As DeepSpeedStrategy's, less the check that devices are CUDA indices (CPU devices have none).
        reset_seed()
        self.set_world_ranks()
        init_deepspeed_distributed(self)

    @property
    def root_device(self) -> torch.device:
        # DeepSpeed reads the device index as the process's device rank; a bare "cpu" has none.
        return torch.device("cpu", self.local_rank)

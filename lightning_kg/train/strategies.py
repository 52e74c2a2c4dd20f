"""DeepSpeed on a machine without a GPU, for tests and CI only.

Lightning's ``DeepSpeedStrategy`` refuses any accelerator but CUDA in ``setup_environment``, yet
DeepSpeed itself runs ZeRO-2/3 on CPU (its CPU accelerator, the gloo backend, CPU Adam built on
first use). This subclass skips the CUDA checks (the accelerator's type, CUDA device indices) and
nothing else, so the CPU tests go through the
same engine, sharding and checkpoint code as a GPU run. GPU configs use Lightning's class as is.
"""

from __future__ import annotations

import torch
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy


class CPUDeepSpeedStrategy(DeepSpeedStrategy):
    strategy_name = "deepspeed_cpu"

    def setup_environment(self) -> None:
        if self.accelerator is not None and self.accelerator.__class__.__name__ == "CUDAAccelerator":
            raise RuntimeError("CPUDeepSpeedStrategy is for machines without a GPU; use "
                               "lightning.pytorch.strategies.DeepSpeedStrategy (conf/strategy/zero*.yaml) on GPUs")
        DDPStrategy.setup_environment(self)  # DeepSpeedStrategy's own only adds the CUDA check

    def setup_distributed(self) -> None:
        # As DeepSpeedStrategy's, less the check that devices are CUDA indices (CPU devices have none).
        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()

    @property
    def root_device(self) -> torch.device:
        # DeepSpeed reads the device index as the process's device rank; a bare "cpu" has none.
        return torch.device("cpu", self.local_rank)

"""A NaN or infinite training loss stops the run before any checkpoint of broken weights is written.

One step with a non-finite loss gives non-finite gradients, the optimiser writes them into every
weight, and the next periodic save would overwrite ``last.ckpt``, the one rolling checkpoint, with
garbage (seen with ``--model.learning_rate 1e3``: NaN from step 14 on, and a run that exits 0).

``model.nonfinite`` chooses what happens:
- ``stop`` (the default): each step records, on the device and without waiting for it, the first
  step at which each loss (the total and each objective's) was not finite. Every rank reads that
  record, in one all-reduce, at the steps Lightning writes logs (which synchronise anyway) and
  before every checkpoint; a non-finite one raises :class:`NonFiniteLoss` naming the step, the
  objective and the rank. Before each checkpoint the weights and buffers themselves are checked
  too (a finite loss can still give an infinite update), so ``last.ckpt`` stays the last good one.
- ``skip``: as Megatron and DeepSpeed do with overflowing steps, a step whose loss is not finite on
  any rank is not applied (its gradients are dropped, so AdamW leaves weights and moments as they
  were; the learning-rate schedule still counts the step), with a warning, and counted in
  ``train/skipped_steps``. One more than ``model.max_nonfinite_steps`` stops the run. This costs one
  host synchronisation per step, to decide before the optimiser runs. What the forward pass wrote is
  not undone (the contrastive queues, BatchNorm statistics): NaN vectors pushed into a queue make the
  following steps non-finite as well, and the limit then ends the run.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DeepSpeedStrategy

from lightning_kg.dataset.format import OBJECTIVES
from lightning_kg.lightning_private import should_update_logs
from lightning_kg.model.pretraining import PretrainingOutput

LOSSES = ("total", *OBJECTIVES)  # what a record holds, in order
_NONE = torch.iinfo(torch.int64).max  # "never non-finite" in the all-reduced record


class NonFiniteLoss(RuntimeError):
    """The run stopped because a training loss or a weight was NaN or infinite."""


def _first_named(flags: list) -> str:
    """The loss to name among those flagged (a list over :data:`LOSSES`): an objective's before the total."""
    return next((LOSSES[i] for i in range(1, len(LOSSES)) if flags[i]), LOSSES[0])


def _kept(trainer) -> str:
    return f"{Path(trainer.default_root_dir) / 'checkpoints'} keeps the checkpoints saved before it"


def _loss_values(outputs: PretrainingOutput) -> torch.Tensor:
    """``(len(LOSSES),)`` float: the total loss and each objective's (0 for an inactive one)."""
    loss, losses = outputs.loss.detach(), outputs.losses()
    return torch.stack([loss.float(), *(losses[name].detach().float() if name in losses
                                        else torch.zeros((), device=loss.device) for name in OBJECTIVES)])


class NonFiniteGuard(Callback):
    """See the module docstring. The LightningModule calls :meth:`record` in ``training_step``."""

    def __init__(self, policy: str = "stop", max_skipped_steps: int = 10):
        if policy not in ("stop", "skip"):
            raise ValueError(f"model.nonfinite is {policy!r}, expected 'stop' or 'skip'")
        if max_skipped_steps < 0:
            raise ValueError(f"model.max_nonfinite_steps is {max_skipped_steps}, expected 0 or more")
        self.policy, self.max_skipped_steps = policy, max_skipped_steps
        self.skipped = 0  # steps skipped in the whole run (kept in checkpoints)
        self._first_bad: torch.Tensor | None = None  # (len(LOSSES),) int64: step each loss was first non-finite, -1 none
        self._bad_in_step: torch.Tensor | None = None  # (len(LOSSES),) bool: over this optimiser step's micro-batches

    # ------------------------------------------------------------------ every micro-batch, no sync

    def record(self, step: int, outputs: PretrainingOutput) -> None:
        bad = ~torch.isfinite(_loss_values(outputs))
        if self.policy == "skip":
            self._bad_in_step = bad if self._bad_in_step is None else self._bad_in_step | bad
            return
        if self._first_bad is None:
            self._first_bad = torch.full_like(bad, -1, dtype=torch.int64)
        self._first_bad = torch.where(bad & (self._first_bad < 0), step, self._first_bad)

    # ------------------------------------------------------------------ stop

    def _stop_if_recorded(self, trainer) -> None:
        """All ranks: raise if any rank recorded a non-finite loss (the earliest step, then rank)."""
        if self.policy != "stop" or self._first_bad is None:
            return
        world, rank = trainer.world_size, trainer.global_rank
        code = torch.where(self._first_bad >= 0, self._first_bad * world + rank, _NONE)
        code = trainer.strategy.reduce(code, reduce_op="min").tolist()
        if min(code) == _NONE:
            return
        step, where = divmod(min(code), world)
        loss = _first_named([c == min(code) for c in code])
        raise NonFiniteLoss(f"step {step}: the {loss} loss is NaN or infinite (rank {where}), so the run stops before its weights "
                            f"are saved; {_kept(trainer)}. Lower --model.learning_rate (or set --trainer.gradient_clip_val), "
                            "or let such steps be skipped: --model.nonfinite skip")

    def _stop_if_weights_broken(self, trainer, pl_module) -> None:
        """All ranks: raise if any rank holds a NaN or infinite weight (its local shard under ZeRO-3)
        or floating-point buffer (the contrastive queues, BatchNorm statistics)."""
        names, flags = [], []
        for name, tensor in [*pl_module.named_parameters(), *pl_module.named_buffers()]:
            local = getattr(tensor, "ds_tensor", tensor)
            if local.numel() and local.is_floating_point():
                names.append(name)
                flags.append(torch.isfinite(local.detach()).all())
        broken = [name for name, fine in zip(names, torch.stack(flags).tolist()) if not fine] if flags else []
        if trainer.strategy.reduce_boolean_decision(bool(broken), all=False):
            which = f"{broken[0]} (and {len(broken) - 1} more)" if broken else "a weight on another rank"
            raise NonFiniteLoss(f"step {trainer.global_step}: {which} is NaN or infinite, so no checkpoint of it is written; "
                                f"{_kept(trainer)}. Lower --model.learning_rate (or set --trainer.gradient_clip_val)")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches == 0 and should_update_logs(trainer):
            self._stop_if_recorded(trainer)
        if self.policy == "skip":
            pl_module.log("train/skipped_steps", float(self.skipped))

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        # Every rank takes part in a save (Lightning dumps the state on each), so these collectives match.
        self._stop_if_recorded(trainer)
        self._stop_if_weights_broken(trainer, pl_module)

    # ------------------------------------------------------------------ skip

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.policy == "skip" and isinstance(trainer.strategy, DeepSpeedStrategy):
            raise ValueError("model.nonfinite skip: not with DeepSpeed, whose optimiser keeps its own gradients "
                             "(its fp16 loss scaler skips overflowing steps itself); use stop")

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.policy != "skip":
            return
        bad, self._bad_in_step = self._bad_in_step, None
        local = bad is not None and bool(bad.any())
        if not trainer.strategy.reduce_boolean_decision(local, all=False):
            return
        # AdamW passes over a parameter without a gradient: no update, no decay, no moment change.
        optimizer.zero_grad(set_to_none=True)
        self.skipped += 1
        which = f"the {_first_named(bad.tolist())} loss" if local else "a loss on another rank"
        if self.skipped > self.max_skipped_steps:
            raise NonFiniteLoss(f"step {trainer.global_step}: {which} is NaN or infinite, and {self.skipped} steps were skipped, "
                                f"more than --model.max_nonfinite_steps {self.max_skipped_steps}; the run stops. Lower "
                                "--model.learning_rate (or set --trainer.gradient_clip_val)")
        warnings.warn(f"step {trainer.global_step}: {which} is NaN or infinite; the step is skipped "
                      f"({self.skipped} of at most {self.max_skipped_steps})", stacklevel=2)

    def state_dict(self) -> dict:
        return {"skipped": self.skipped}

    def load_state_dict(self, state_dict: dict) -> None:
        self.skipped = int(state_dict.get("skipped", 0))

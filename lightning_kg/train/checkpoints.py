"""The one callback that owns ``last.ckpt``: every N steps, after each validation, at the end, on
preemption, and after bad data stopped a fit, so there is never a second ``last-v1.ckpt`` beside it.
How checkpoints are written, read and found is ``lightning_kg.runs``'.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.trainer.states import TrainerFn

from lightning_kg.data.checks import BadDataError
from lightning_kg.runs.checkpoints import LAST


class LastCheckpoint(Checkpoint):
    """Owns ``checkpoints/last.ckpt``: writes it every ``every_n_steps`` optimiser steps, after each
    validation of a fit, at the end of training, and when :class:`~lightning_kg.train.preemption.Preemption`
    asks. A ``Checkpoint`` subclass, so Lightning runs it after the other callbacks (the best-model
    ``ModelCheckpoint`` among them), whose states it then holds."""

    def __init__(self, dirpath: str | Path, every_n_steps: int | None = None):
        self.path = Path(dirpath) / LAST
        self.every_n_steps = every_n_steps
        self._saved_step: int | None = None
        self._start_step: int | None = None
        self.saved_on_error: Path | None = None  # written when bad data stopped the fit

    def save(self, trainer) -> Path:
        # The whole training state (optimiser, loops, callbacks), said outright: left unset, Lightning
        # chooses the same and logs a line about it at every save.
        trainer.save_checkpoint(self.path, weights_only=False)
        self._saved_step = trainer.global_step
        return self.path

    def on_train_start(self, trainer, pl_module) -> None:
        self._start_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Under gradient accumulation, global_step stays put over a step's micro-batches: save once.
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0 and trainer.global_step != self._saved_step:
            self.save(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        # Even at a step already saved: the checkpoint then records that this validation ran.
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self.save(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_step != self._saved_step:
            self.save(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """Bad data or a failing shard (``data/checks.py``) stops a fit between steps (the next batch
        could not be made) or during validation: the state is that of the last finished step, so
        it is saved, keeping the work since the last periodic save. On one process only: with
        several, the other ranks are inside a collective that the stopped rank never joins."""
        if (not isinstance(exception, BadDataError) or trainer.state.fn != TrainerFn.FITTING or trainer.world_size > 1
                or trainer.global_step in (self._saved_step, self._start_step, None)):
            return
        try:
            self.saved_on_error = self.save(trainer)
        except Exception as error:  # noqa: BLE001 - the data error is the one to report
            warnings.warn(f"{self.path}: not saved after the data error ({error})", stacklevel=2)

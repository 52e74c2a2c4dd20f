"""Stop on SIGTERM or SLURM's requeue signal with a checkpoint, losing at most the step in progress.

The signal handlers only set a flag (no I/O, no collective, no subprocess inside a handler, where
any of them can deadlock); everything else happens between steps, in this callback:
- after each optimiser step, and after each validation batch of a fit, all ranks agree whether any
  of them was signalled (one all-reduce of a boolean, which makes the host wait for the device: so
  with several ranks only every ``agree_every_n_steps`` optimiser steps; one process needs none);
- if so, ``last.ckpt`` is written (atomically, ``checkpoints.py``), and under SLURM's requeue signal
  rank 0 runs ``scontrol requeue <job id>``; training then stops after the step, or validation is
  cut short by :class:`Preempted`. That one write is all: no validation runs on the way out.
  Lightning validates when a run is told to stop, which can outlast the grace period on a real
  validation set, saved twice more (the best model, ``last.ckpt`` again), and that last save,
  made at the end of a validation outside the validation schedule, restored the loggers' step
  (``_batches_that_stepped``) one short: every ``metrics.csv`` row of the resumed run was
  labelled a step early. Saved in ``on_train_batch_end`` instead, Lightning restores it exactly.
A second signal during the save only sets the flag again. ``--ckpt_path last``, or the requeued
job by itself, resumes from that checkpoint.

Lightning's own handlers are replaced for the run: its SIGTERM handler makes the evaluation loop
raise before any callback can save, and its SLURM handler saves and runs ``scontrol`` inside the
signal handler (``conf/trainer/slurm.yaml`` sets ``auto_requeue: false`` so it is not installed).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.trainer.states import TrainerFn

from lightning_kg.lightning_private import cluster_environment
from lightning_kg.train.checkpoints import LastCheckpoint


class Preempted(Exception):
    """Raised to cut a validation short once the checkpoint is saved; the CLI reports it and exits."""


def slurm_job_id() -> str | None:
    """The id ``scontrol requeue`` takes: ``<array job>_<task>`` for an array task, else the job's."""
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def requeue_slurm_job() -> tuple[bool, str]:
    """``scontrol requeue`` this job: (done, what happened, for the log)."""
    job = slurm_job_id()
    if job is None:
        return False, "SLURM_JOB_ID is not set, so there is no job to requeue"
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        return False, (f"scontrol is not on PATH (inside a container?), so job {job} was not requeued; resubmit it "
                       f"into the same run directory (see slurm/fit.sbatch) and it resumes from the checkpoint")
    except subprocess.TimeoutExpired:
        return False, f"scontrol requeue {job} did not answer within 120 s"
    if done.returncode != 0:
        return False, f"scontrol requeue {job} failed with status {done.returncode}: {done.stderr.strip()}"
    return True, f"requeued SLURM job {job}"


class Preemption(Callback):
    def __init__(self, last: LastCheckpoint, agree_every_n_steps: int = 10):
        """``agree_every_n_steps``: with several ranks, the steps between two agreements; a signal is
        then acted on up to that many steps late (10 steps of a base model are seconds, well inside
        SLURM's warning time and the 30 s a container runtime grants after SIGTERM)."""
        self.last = last
        self.agree_every_n_steps = agree_every_n_steps
        self.signal: signal.Signals | None = None  # the first signal received
        self.requeue_signal: signal.Signals | None = None
        self.saved: Path | None = None
        self.stopped_at: int | None = None
        self.requeued: tuple[bool, str] | None = None  # rank 0's requeue outcome

    # ------------------------------------------------------------------ signal time: a flag only

    def _flag(self, signum: int, frame=None) -> None:
        if self.signal is None or signum == self.requeue_signal:
            self.signal = signal.Signals(signum)

    def on_train_start(self, trainer, pl_module) -> None:
        # Here, not earlier: Lightning installs its handlers after on_fit_start, and restores the
        # ones from before the run when it ends.
        environment = cluster_environment(trainer)
        if isinstance(environment, SLURMEnvironment) and environment.requeue_signal is not None:
            self.requeue_signal = signal.Signals(environment.requeue_signal)
            signal.signal(self.requeue_signal, self._flag)
        if trainer.received_sigterm:  # arrived while Lightning's handler was in place
            self._flag(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._flag)

    # ------------------------------------------------------------------ between steps

    def _agreed(self, trainer) -> bool:
        """Whether any rank was signalled; then, whether any got the requeue signal (collective, so
        every rank saves its shard, or none does)."""
        if not trainer.strategy.reduce_boolean_decision(self.signal is not None, all=False):
            return False
        requeue = trainer.strategy.reduce_boolean_decision(self.signal is not None and self.signal == self.requeue_signal, all=False)
        if requeue:
            self.signal = self.requeue_signal
        elif self.signal is None:  # another rank's signal
            self.signal = signal.SIGTERM
        return True

    def _save(self, trainer) -> None:
        self.saved = self.last.save(trainer)
        self.stopped_at = trainer.global_step
        if self.signal == self.requeue_signal and trainer.is_global_zero:
            self.requeued = requeue_slurm_job()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        at_step_end = (batch_idx + 1) % trainer.accumulate_grad_batches == 0  # no half-accumulated gradients
        due = trainer.world_size == 1 or trainer.global_step % self.agree_every_n_steps == 0
        if self.saved is None and at_step_end and due and self._agreed(trainer):
            self._save(trainer)
            trainer.should_stop = True
            trainer.limit_val_batches = 0  # Lightning validates on should_stop; no time for that (nor a second save)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking or self.saved is not None:
            return
        if self._agreed(trainer):
            # The training state is that of the last step; the resumed run goes on training from it.
            self._save(trainer)
            raise Preempted(f"{self.signal.name} during validation at step {trainer.global_step}")

"""Every use of Lightning's private members, in one place, with the reason each is needed.

Lightning may rename any of these in a minor release, so ``pyproject.toml`` caps it at the newest
version the suite passed on, and ``tests/test_lightning_private.py`` checks that each still exists
before an upgrade is trusted. Reached through the functions below:

- ``trainer._logger_connector.should_update_logs``: whether this step writes logs, so train metrics
  are computed (a sync of every rank) only at those steps; no public flag says it.
- ``trainer._results.reset(metrics=False)``: Lightning writes every key's last value again at each
  later step of an epoch; dropping them keeps a loss a batch lacks out of the logs.
- ``trainer._accelerator_connector.cluster_environment``: the SLURM environment's requeue signal;
  ``trainer`` exposes no cluster environment.
- ``trainer.fit_loop.epoch_loop.batch_progress``: the count of training batches processed (restored
  with the loops on resume), which places the data stream exactly.
- ``DeepSpeedStrategy._init_deepspeed_distributed``: DeepSpeed's process group without the CUDA
  checks, for ZeRO on CPU (tests, CI).

Overridden where no public hook exists (named here so an upgrade knows where to look):
``ExperimentWriter._check_log_dir_exists`` and ``CSVLogger._experiment``/``_fs`` (a resumed run
appends to ``metrics.csv``), ``RichProgressBar._get_train_description`` ("Training" instead of an
epoch count), ``LightningCLI._run_subcommand`` (reports and exit codes after a verb),
``LightningCLI._parse_ckpt_path`` (which would replace the config's model settings with a checkpoint's),
``ThroughputMonitor._update`` (it synchronises the GPU every batch; ours only at logging steps).
"""

from __future__ import annotations

PRIVATE_OVERRIDES = {
    "lightning.pytorch.loggers.csv_logs.ExperimentWriter": ("_check_log_dir_exists", "_fs", "metrics_file_path"),
    "lightning.pytorch.callbacks.RichProgressBar": ("_get_train_description",),
    "lightning.pytorch.cli.LightningCLI": ("_run_subcommand", "_parse_ckpt_path"),
    "lightning.pytorch.strategies.DeepSpeedStrategy": ("_init_deepspeed_distributed",),
    # _update's override also reads the dicts _lengths, _samples, _batches, _throughputs, _t0s set in setup.
    "lightning.pytorch.callbacks.ThroughputMonitor": ("_update", "_compute", "_start"),
}
"""Class -> private members this package overrides or calls; checked by a test on each Lightning version."""


def should_update_logs(trainer) -> bool:
    """Whether the current training step is one at which Lightning writes logs."""
    return trainer._logger_connector.should_update_logs


def reset_step_results(trainer) -> None:
    """Forget the values logged at earlier steps, keeping metric objects."""
    trainer._results.reset(metrics=False)


def cluster_environment(trainer):
    """The trainer's cluster environment (``SLURMEnvironment`` under SLURM)."""
    return trainer._accelerator_connector.cluster_environment


def batches_processed(trainer) -> int:
    """Training batches the fit loop has processed, restored on resume."""
    return int(trainer.fit_loop.epoch_loop.batch_progress.total.processed)


def init_deepspeed_distributed(strategy) -> None:
    """DeepSpeed's process group for ``strategy`` (a ``DeepSpeedStrategy``)."""
    strategy._init_deepspeed_distributed()

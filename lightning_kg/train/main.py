"""Lightning's CLI, set up so that ``fit`` with no argument is the demo run.

What the defaults give: the tiny model on ``shards/demo`` with all four objectives, a fixed number
of steps, validation, checkpoints (``last.ckpt`` + the best by validation loss), the resolved config,
CSV and TensorBoard logs, all in a fresh run directory ``runs/<time>`` (``runs/slurm-<job id>``
under SLURM, so a requeued job finds its own checkpoints).

Which checkpoint a run starts from, and where it writes:
- ``--ckpt_path last``: the newest complete checkpoint (highest step that loads) of ``--run_dir``,
  or of the run under ``runs/`` that saved one last; the run continues in that directory.
- ``--ckpt_path FILE`` inside a run's ``checkpoints/``: that run's directory, unless ``--run_dir``.
- under SLURM with no ``--ckpt_path``: the newest complete checkpoint of the job's run directory if
  it has one (a requeued job, after a signal or a node failure), else a fresh start.
- otherwise a fresh run, and a ``--run_dir`` that already holds a run is refused rather than
  overwritten (what a failed start left there is not a run: ``startup.py``). A resumed run appends
  to ``metrics.csv`` and writes its config beside the first (``config-resume-<n>.yaml``).
``--trainer.default_root_dir`` is where new run directories go (instead of ``runs/``), and where
``--ckpt_path last`` looks. Before anything runs, the arguments, checkpoint, run directory and
dataset are checked (``startup.py``); a fault stops with one line and exit status 2. A run that
stops on a NaN loss, a full disk or bad data prints why and exits 1.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from jsonargparse import set_parsing_settings
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lightning_kg.data.batches import samples_in_batch, tokens_in_batch
from lightning_kg.data.checks import BadDataError
from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.dataset.format import OBJECTIVES
from lightning_kg.dataset.manifest import DatasetMismatchError
from lightning_kg.model.config import check_encoder_overrides
from lightning_kg.paths import REPOSITORY
from lightning_kg.runs.checkpoints import LAST, newest_checkpoint, newest_run
from lightning_kg.runs.directories import run_dir_of
from lightning_kg.runs.saving import AtomicCheckpointIO, CheckpointWriteError
from lightning_kg.train.checkpoints import LastCheckpoint
from lightning_kg.train.logging_steps import LoggingStepProgressBar, LoggingStepThroughput
from lightning_kg.train.module import KnowledgePretraining, active_objectives
from lightning_kg.train.nonfinite import NonFiniteLoss
from lightning_kg.train.preemption import Preempted, Preemption, slurm_job_id
from lightning_kg.train.startup import (
    StartupError,
    check_checkpoint_file,
    check_checkpoint_fits,
    fresh_start_blockers,
    lock_run_dir,
)
from lightning_kg.verbs import ConfigFileError, check_config_files

RUNS = "runs"


def new_run_dir(root: str = RUNS) -> Path:
    """A run directory that does not exist yet: by SLURM job id, else by start time."""
    job = slurm_job_id()
    if job:
        return Path(root) / f"slurm-{job}"
    stem = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = Path(root) / stem, 1
    while candidate.exists():
        candidate, n = Path(root) / f"{stem}-{n}", n + 1
    return candidate


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        # Lightning's deletes an existing metrics.csv; this one continues it, with the columns it has.
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as lines:
                self.metrics_keys = sorted(next(csv.reader(lines), []))


class AppendingCSVLogger(CSVLogger):
    """Lightning's CSV logger, except that a resumed run appends to ``metrics.csv``: every step of
    a run stays in one file however often it was resumed (steps replayed after a crash appear twice,
    the later rows are the resumed run's)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def entity_vocab_path(data_dir: str | Path) -> str:
    """The prepared dataset's entity vocabulary, for ``model.init_from`` to map entity rows by name."""
    return str(Path(data_dir) / "entity_vocab.jsonl")


class StepProgressBar(LoggingStepProgressBar):
    """Lightning's rich bar for step-bounded runs: "Training" rather than "Epoch 0/-2" (there is no
    epoch count with ``max_steps`` and an endless stream), no logger version number, and its figures
    read back from the device only at logging steps."""

    def _get_train_description(self, current_epoch: int) -> str:
        return f"{'Training':{len(self.validation_description)}}" if self.trainer.max_epochs == -1 else super()._get_train_description(current_epoch)

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


def _launching_process() -> bool:
    """Not a rank that Lightning's launcher, torchrun or srun started beside the first: only the
    first judges whether a run directory is free and locks it (the others may already see its files)."""
    return all(os.environ.get(name, "0") == "0" for name in ("LOCAL_RANK", "RANK", "SLURM_PROCID"))


DEMO_CONFIG = REPOSITORY / "conf" / "demo.yaml"
"""The demo's settings, read before any --config by fit, validate and test: the one place they live."""


def demo_parser_kwargs(subcommands: bool) -> dict:
    """LightningCLI's parser settings: omegaconf mode, and conf/demo.yaml as the first config file of
    each trainer verb (of the one parser when there are no subcommands)."""
    demo = {"default_config_files": [str(DEMO_CONFIG)]}
    kwargs = {"parser_mode": "omegaconf", "prog": "python -m lightning_kg"}
    if not subcommands:
        return kwargs | demo
    return kwargs | {verb: {"parser_mode": "omegaconf"} | demo for verb in ("fit", "validate", "test")}


class KnowledgeCLI(LightningCLI):
    def __init__(self, args: list[str] | None, run: bool = True,
                 after_test: Callable[[Path, Path, Path | None], None] | None = None):
        """``after_test(checkpoint, data_dir, out)`` runs on rank 0 after ``test`` (the CLI probes
        there), ``out`` being ``--run_dir``'s ``probe/`` when a run directory was given, else None."""
        self._after_test = after_test
        # The field docstrings of model.objective_settings (ObjectiveSettings) become its flags' help in fit --help.
        set_parsing_settings(docstring_parse_attribute_docstrings=True)
        super().__init__(
            KnowledgePretraining,
            KnowledgeDataModule,
            args=args,
            run=run,
            parser_kwargs=demo_parser_kwargs(run),
            save_config_kwargs={"overwrite": False},
            seed_everything_default=0,  # stated, so every run is repeatable (Lightning would pick 0 with a warning)
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--checkpoint_every_n_steps", type=int | None, default=1000,
                            help="Also write checkpoints/last.ckpt every N training steps (null: only after validation and at the end)")
        parser.add_argument("--run_dir", type=str | None, default=None,
                            help="Run directory for checkpoints, logs and the resolved config (default: a new runs/<time>; "
                                 "an existing one only to resume it, with --ckpt_path)")
        parser.link_arguments("data.vocab_size", "model.vocab_size", apply_on="instantiate")
        parser.link_arguments("data.entity_vocab_size", "model.entity_vocab_size", apply_on="instantiate")
        parser.link_arguments("data.pad_token_id", "model.pad_token_id", apply_on="instantiate")
        parser.link_arguments("data.languages", "model.languages", apply_on="instantiate")
        parser.link_arguments("data.data_dir", "model.entity_vocab_path", compute_fn=entity_vocab_path, apply_on="instantiate")
        # The loader builds only what the model's active objectives read (no knowledge texts or facts for nothing).
        parser.link_arguments(tuple(f"model.objective_settings.{objective}_weight" for objective in OBJECTIVES),
                              "data.objectives", compute_fn=active_objectives, apply_on="parse")

    def _section(self, config):
        """The config of the running subcommand (all of it with ``run=False``, which has none)."""
        return config[self.subcommand] if self.subcommand else config

    def _fail(self, message: str) -> None:
        """Stop before anything ran: the message on one line, exit status 2 (as a wrong argument)."""
        print(f"error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(2)

    def parse_arguments(self, parser, args) -> None:
        try:  # before jsonargparse, which names a config file's YAML error `<unicode string>`
            check_config_files(sys.argv[1:] if args is None else list(args))
        except ConfigFileError as error:
            self._fail(str(error))
        super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """Lightning's replaces the model's config with the checkpoint's hyperparameters (silently,
        and for a file only, not for ``last``); here the config is what runs, and a checkpoint that
        does not fit it is refused, naming the settings (``startup.check_checkpoint_fits``)."""

    def _choose_run(self, config) -> tuple[Path, str | None]:
        """The run directory and checkpoint path (see the module docstring), or a usage error."""
        run_dir = Path(config.run_dir) if config.get("run_dir") else None
        ckpt_path = config.get("ckpt_path")
        fitting = self.subcommand in ("fit", None)
        root = config.trainer.get("default_root_dir") or RUNS
        if run_dir is not None and run_dir.exists() and not run_dir.is_dir():
            self._fail(f"--run_dir {run_dir} is a file; expected a directory (a new one, or a run's to resume)")
        if ckpt_path not in (None, "last"):
            try:
                check_checkpoint_file(ckpt_path)
            except StartupError as error:
                self._fail(str(error))
        if ckpt_path == "last":
            if run_dir is None:
                run_dir = newest_run(Path(root))
                if run_dir is None:
                    self._fail(f"--ckpt_path last: no run under {root}/ has a complete checkpoint to resume; "
                               "name a checkpoint, or the run with --run_dir")
            newest = newest_checkpoint(run_dir)
            if newest is None:
                self._fail(f"--ckpt_path last: {run_dir} has no complete checkpoint (checkpoints/*.ckpt, hpc_ckpt_*.ckpt)")
            return run_dir, str(newest)
        if ckpt_path and fitting and run_dir is None:
            run_dir = run_dir_of(Path(ckpt_path))  # continue the checkpoint's own run
        if ckpt_path is None and fitting and slurm_job_id():
            run_dir = run_dir or new_run_dir(root)
            newest = newest_checkpoint(run_dir) if run_dir.is_dir() else None
            if newest is not None:
                print(f"SLURM job {slurm_job_id()}: resuming from {newest}", flush=True)
            return run_dir, str(newest) if newest else None
        if run_dir is not None and fitting and ckpt_path is None and _launching_process() and (held := fresh_start_blockers(run_dir)):
            self._fail(f"--run_dir {run_dir} already holds a run ({', '.join(held[:5])}); "
                       f"resume it with --ckpt_path last, or choose a new --run_dir")
        return run_dir or new_run_dir(root), ckpt_path

    def before_instantiate_classes(self) -> None:
        config = self._section(self.config)
        self._run_dir_given = bool(config.get("run_dir"))
        try:
            check_encoder_overrides(config.model.get("encoder"))
        except ValueError as error:
            self._fail(str(error))
        run_dir, ckpt_path = self._choose_run(config)
        if "ckpt_path" in config:
            config.ckpt_path = ckpt_path
        config.run_dir = str(run_dir)
        trainer = config.trainer
        trainer.default_root_dir = str(run_dir)
        if trainer.get("logger") in (None, True):
            trainer.logger = [
                {"class_path": "lightning_kg.train.main.AppendingCSVLogger", "init_args": {"save_dir": str(run_dir), "name": "", "version": ""}},
                {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": str(run_dir), "name": "", "version": "tensorboard"}},
            ]
        # The first config is config.yaml; a resume or an evaluation in the same directory adds its
        # own. A fresh fit writes config.yaml over one that a failed start left.
        name, n = "config.yaml", 1
        fresh = self.subcommand in ("fit", None) and not ckpt_path
        while (run_dir / name).exists() and not fresh:
            name, n = f"config-{'resume' if self.subcommand in ('fit', None) else self.subcommand}-{n}.yaml", n + 1
        self.save_config_kwargs.update(config_filename=name, overwrite=fresh)
        self._run_dir = run_dir

    def instantiate_classes(self) -> None:
        try:  # the data module reads the dataset's files here (tokenizer, vocabulary): name the fault in one line
            super().instantiate_classes()
        except (OSError, ValueError) as error:
            self._fail(str(error))

    def _check_before_run(self) -> None:
        """The dataset's files and shards, and the checkpoint against this model, before the trainer
        writes anything; a fit then locks its run directory for as long as it lives."""
        try:
            self.datamodule.check_dataset()
            ckpt_path = self._section(self.config).get("ckpt_path")
            if ckpt_path:
                check_checkpoint_fits(self.model, ckpt_path)
            if self.subcommand == "fit" and _launching_process():
                self._lock = lock_run_dir(self._run_dir)
        except (StartupError, DatasetMismatchError, OSError) as error:
            self._fail(str(error))

    def before_fit(self) -> None:
        self._check_before_run()

    def before_validate(self) -> None:
        self._check_before_run()

    def before_test(self) -> None:
        self._check_before_run()

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            with contextlib.suppress(SIGTERMException, Preempted):
                super()._run_subcommand(subcommand)
        except (NonFiniteLoss, CheckpointWriteError, BadDataError) as error:
            self._report_stop(error)
        except DatasetMismatchError as error:  # a checkpoint of another dataset, found as it is restored
            self._fail(str(error))
        finally:
            if getattr(self, "_lock", None) is not None:  # the run is over (a process would release it as it exits)
                self._lock.close()
                self._lock = None
        if (subcommand == "test" and self._after_test and self.trainer.ckpt_path and Path(self.trainer.ckpt_path).exists()
                and self.trainer.is_global_zero):
            out = self._run_dir / "probe" if self._run_dir_given else None
            self._after_test(Path(self.trainer.ckpt_path), Path(self.datamodule.data_dir), out)
        self._report_preemption()
        if subcommand == "fit" and self.trainer.is_global_zero:
            self._report_run()

    def _report_stop(self, error: Exception) -> None:
        """A run that a NaN loss, a full disk or bad data stopped: why, what was saved, exit status 1."""
        last = next((c for c in self.trainer.callbacks if isinstance(c, LastCheckpoint)), None)
        saved = last.saved_on_error if last is not None else None
        print(f"error: {error}", file=sys.stderr, flush=True)
        if saved is not None:
            print(f"stopped by bad data at step {self.trainer.global_step}; checkpoint saved: {saved}; once the data is fixed, "
                  f"resume with --ckpt_path last --run_dir {self._run_dir}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None

    def _report_run(self) -> None:
        """Where a finished fit left its files, and the commands that take it further."""
        last = self._run_dir / "checkpoints" / LAST
        print(f"run directory {self._run_dir}: checkpoints/ ({LAST} at step {self.trainer.global_step}), config, "
              f"metrics.csv, tensorboard/\n  continue: --ckpt_path last --run_dir {self._run_dir} --trainer.max_steps N"
              f"\n  export:   python -m lightning_kg export --ckpt_path {last} --out DIR"
              f"\n  probe:    python -m lightning_kg probe --ckpt_path {last}", flush=True)

    def _report_preemption(self) -> None:
        preemption = next((c for c in self.trainer.callbacks if isinstance(c, Preemption)), None)
        if preemption is not None and preemption.saved is not None:
            name = preemption.signal.name
            if self.trainer.is_global_zero:
                print(f"stopped by {name} at step {preemption.stopped_at}; checkpoint saved: {preemption.saved}; "
                      f"resume with --ckpt_path {preemption.saved}", flush=True)
                if preemption.requeued is not None:
                    print(preemption.requeued[1], flush=True)
            # 0 when the job comes back by itself (rank 0 requeued it), else 128 + the signal, as a
            # shell reports a process a signal stopped.
            requeued = preemption.signal == preemption.requeue_signal and (preemption.requeued or (True, ""))[0]
            raise SystemExit(0 if requeued else 128 + preemption.signal)
        if self.trainer.received_sigterm:  # before training started: Lightning's handler was still in place
            print(f"stopped by SIGTERM at step {self.trainer.global_step}; no checkpoint saved", flush=True)
            raise SystemExit(143) from None

    def instantiate_trainer(self, **kwargs):
        checkpoints = self._run_dir / "checkpoints"
        last = LastCheckpoint(checkpoints, self._section(self.config).get("checkpoint_every_n_steps"))
        callbacks = [
            # save_last off: LastCheckpoint alone writes last.ckpt (two writers made last.ckpt and last-v1.ckpt).
            ModelCheckpoint(dirpath=checkpoints, monitor="val/loss", mode="min", save_top_k=1, filename="best-{step}"),
            last,
            Preemption(last),
            LoggingStepThroughput(batch_size_fn=samples_in_batch, length_fn=tokens_in_batch),
            LearningRateMonitor(logging_interval="step"),
        ]
        # Ours come on top of the config's (kwargs would replace them, not add to them).
        chosen = list(self._section(self.config_init)["trainer"].get("callbacks") or [])
        if self.subcommand in ("fit", None):  # None: run=False, a trainer to fit by hand
            chosen += callbacks
        if self._section(self.config).trainer.get("enable_progress_bar") is not False and not any(
                isinstance(c, ProgressBar) for c in chosen):
            chosen.append(StepProgressBar())
        kwargs["callbacks"] = chosen
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # Lightning's default, not one the config chose
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer


def probe_after_test(ckpt_path: Path, data_dir: Path, out: Path | None) -> None:
    """``test`` also probes what the checkpoint knows (lightning_kg.probe): into ``out`` when given,
    else into the checkpoint's run directory."""
    from lightning_kg.probe.run import ProbeConfig, probe_and_write

    probe_and_write(ProbeConfig(ckpt_path=str(ckpt_path), data_dir=str(data_dir), out=str(out) if out else None))


def main(verb: str, args: list[str]) -> None:
    """``fit``, ``validate`` or ``test`` through Lightning's CLI."""
    # None when these are the process's own arguments: LightningCLI then reads sys.argv itself
    # (and does not warn that both were given).
    KnowledgeCLI(args=None if [verb, *args] == sys.argv[1:] else [verb, *args], after_test=probe_after_test)

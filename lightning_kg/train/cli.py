"""Lightning's CLI, set up so that ``fit`` with no argument is the demo run.

What the defaults give: the tiny model on ``shards/demo`` with all four objectives, a fixed number
of steps, validation, checkpoints (last + best by validation loss), the resolved config, CSV and
TensorBoard logs, all in a fresh run directory ``runs/<time>`` (``runs/slurm-<job id>`` under
SLURM, so a requeued job finds its own checkpoints). ``--ckpt_path last`` without ``--run_dir``
resumes the newest run that has a ``last.ckpt``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar, RichProgressBar, ThroughputMonitor
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.train.module import KnowledgePretraining, tokens_in_batch
from lightning_kg.train.preemption import SaveOnSigterm

RUNS = "runs"


def new_run_dir(root: str = RUNS) -> Path:
    """A run directory that does not exist yet: by SLURM job id, else by start time."""
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        return Path(root) / f"slurm-{job}"
    stem = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = Path(root) / stem, 1
    while candidate.exists():
        candidate, n = Path(root) / f"{stem}-{n}", n + 1
    return candidate


def entity_vocab_path(data_dir: str | Path) -> str:
    """The prepared dataset's entity vocabulary, for ``model.init_from`` to map entity rows by name."""
    return str(Path(data_dir) / "entity_vocab.jsonl")


def newest_resumable_run(root: str = RUNS) -> Path | None:
    runs = [p.parent.parent for p in Path(root).glob("*/checkpoints/last.ckpt")]
    return max(runs, key=lambda p: (p / "checkpoints" / "last.ckpt").stat().st_mtime) if runs else None


class StepProgressBar(RichProgressBar):
    """Lightning's rich bar for step-bounded runs: "Training" rather than "Epoch 0/-2" (there is no
    epoch count with ``max_steps`` and an endless stream), and no logger version number."""

    def _get_train_description(self, current_epoch: int) -> str:
        return f"{'Training':{len(self.validation_description)}}" if self.trainer.max_epochs == -1 else super()._get_train_description(current_epoch)

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class KnowledgeCLI(LightningCLI):
    def __init__(self, args: list[str] | None, run: bool = True):
        super().__init__(
            KnowledgePretraining,
            KnowledgeDataModule,
            args=args,
            run=run,
            parser_kwargs={"parser_mode": "omegaconf"},
            save_config_kwargs={"overwrite": True},
            trainer_defaults={
                "max_steps": 500,
                "val_check_interval": 250,
                "check_val_every_n_epoch": None,
                "log_every_n_steps": 10,
                "precision": "32-true",
                "num_sanity_val_steps": 0,
            },
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--checkpoint_every_n_steps", type=int | None, default=1000,
                            help="Also write checkpoints/last.ckpt every N training steps (null: only after validation)")
        parser.add_argument("--run_dir", type=str | None, default=None,
                            help="Run directory for checkpoints, logs and the resolved config (default: a new runs/<time>)")
        # The demo's tiny model learns visibly in a few hundred steps with a higher rate, a small queue
        # (the queues start as random vectors; the demo's ~15 mention pairs a step replace 64 of them
        # within a few steps, where 4096 would stay mostly random for the whole demo) and knowledge
        # texts in the mention's language: across languages, mep_contrastive stays at chance on the
        # validation split for 500 steps (pair accuracy 0.51, against 0.66). conf/data/wikipedia.yaml
        # sets `any` back for real runs.
        parser.set_defaults({"model.learning_rate": 2e-3, "model.queue_size": 64, "data.knowledge_language": "same"})
        parser.link_arguments("data.vocab_size", "model.vocab_size", apply_on="instantiate")
        parser.link_arguments("data.entity_vocab_size", "model.entity_vocab_size", apply_on="instantiate")
        parser.link_arguments("data.pad_token_id", "model.pad_token_id", apply_on="instantiate")
        parser.link_arguments("data.data_dir", "model.entity_vocab_path", compute_fn=entity_vocab_path, apply_on="instantiate")

    def _section(self, config):
        """The config of the running subcommand (all of it with ``run=False``, which has none)."""
        return config[self.subcommand] if self.subcommand else config

    def before_instantiate_classes(self) -> None:
        config = self._section(self.config)
        run_dir = config.get("run_dir")
        if run_dir is None and config.get("ckpt_path") == "last":
            run_dir = newest_resumable_run()
            if run_dir is None:
                raise FileNotFoundError(f"--ckpt_path last: no run under {RUNS}/ has checkpoints/last.ckpt to resume")
        run_dir = Path(run_dir) if run_dir else new_run_dir()
        config.run_dir = str(run_dir)
        trainer = config.trainer
        trainer.default_root_dir = str(run_dir)
        if trainer.get("logger") in (None, True):
            trainer.logger = [
                {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(run_dir), "name": "", "version": ""}},
                {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": str(run_dir), "name": "", "version": "tensorboard"}},
            ]
        self._run_dir = run_dir

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except SIGTERMException:
            pass
        if subcommand == "test" and self.trainer.ckpt_path and Path(self.trainer.ckpt_path).exists():
            # `test` also probes what the checkpoint knows (lightning_kg.probe), into the run directory.
            from lightning_kg.probe.run import main as probe

            probe(["--ckpt_path", str(self.trainer.ckpt_path), "--data_dir", str(self.datamodule.data_dir),
                   "--out", str(self._run_dir / "probe")])
        if self.trainer.received_sigterm:
            saved = next((c.saved for c in self.trainer.callbacks if isinstance(c, SaveOnSigterm) and c.saved), None)
            print(f"stopped by SIGTERM at step {self.trainer.global_step}; "
                  + (f"checkpoint saved: {saved}; resume with --ckpt_path {saved}" if saved else "no checkpoint saved"),
                  flush=True)
            raise SystemExit(143) from None  # 128 + SIGTERM, as a shell reports a process stopped by it

    def instantiate_trainer(self, **kwargs):
        callbacks = [
            ModelCheckpoint(dirpath=self._run_dir / "checkpoints", monitor="val/loss", mode="min",
                            save_last=True, save_top_k=1, filename="best-{step}"),
            ThroughputMonitor(batch_size_fn=lambda batch: batch["input_ids"].shape[0], length_fn=tokens_in_batch),
            LearningRateMonitor(logging_interval="step"),
            SaveOnSigterm(self._run_dir / "checkpoints"),
        ]
        every = self._section(self.config).get("checkpoint_every_n_steps")
        if every:  # last.ckpt between validations too, so a crash loses at most that many steps
            callbacks.append(ModelCheckpoint(dirpath=self._run_dir / "checkpoints", every_n_train_steps=every,
                                             save_top_k=0, save_last=True))
        # Ours come on top of the config's (kwargs would replace them, not add to them).
        chosen = list(self._section(self.config_init)["trainer"].get("callbacks") or [])
        if self.subcommand in ("fit", None):  # None: run=False, a trainer to fit by hand
            chosen += callbacks
        if self._section(self.config).trainer.get("enable_progress_bar") is not False and not any(
                isinstance(c, ProgressBar) for c in chosen):
            chosen.append(StepProgressBar())
        kwargs["callbacks"] = chosen
        return super().instantiate_trainer(**kwargs)

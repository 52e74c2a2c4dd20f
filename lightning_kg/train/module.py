"""The LightningModule: the four objectives summed with weights, AdamW, warmup + decay, metrics.

The model math lives in ``lightning_kg.model``; this file holds what training adds around it:
optimiser groups, the learning-rate schedule, mLUKE's two-stage schedule and torchmetrics.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
import warnings
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch import nn
from torchmetrics import MeanMetric

from lightning_kg.data.batches import has_inputs, tokens_in_batch
from lightning_kg.dataset.format import CONTRASTIVE_OBJECTIVES, OBJECTIVES
from lightning_kg.lightning_private import reset_step_results, should_update_logs
from lightning_kg.model.config import ObjectiveSettings
from lightning_kg.model.pretraining import PretrainingOutput
from lightning_kg.runs.checkpoints import is_deepspeed_checkpoint, model_from_hparams, model_weights, read_checkpoint
from lightning_kg.runs.formats import FORMAT_KEY, FORMAT_VERSION, objective_settings_of, upgrade
from lightning_kg.train.language_metrics import LanguageMetrics
from lightning_kg.train.nonfinite import NonFiniteGuard

NOT_DECAYED = (nn.Embedding, nn.LayerNorm, nn.BatchNorm1d)  # modules whose weights AdamW leaves undecayed


def rank_metrics(name: str, ranks: torch.Tensor) -> dict[str, torch.Tensor]:
    """Accuracy@1, @10 and mean reciprocal rank from 0-based ranks of the right answer."""
    ranks = ranks.float()
    return {f"{name}_acc1": (ranks < 1).float(), f"{name}_acc10": (ranks < 10).float(), f"{name}_mrr": 1.0 / (ranks + 1.0)}


class FiniteMean(MeanMetric):
    """The mean of the finite values only (the pair accuracies are NaN for an example without an
    in-batch negative): weighted on the device, since leaving them out by a mask would size the
    result by the data and wait for the device. (With ``nan_strategy="disable"`` the parent drops
    a ``weight``, so it is applied here.)"""

    def update(self, value: torch.Tensor) -> None:
        finite = torch.isfinite(value)
        self.mean_value += torch.where(finite, value, 0.0).sum().to(self.mean_value.dtype)
        self.weight += finite.sum().to(self.weight.dtype)


class Perplexity(MeanMetric):
    """exp of the mean MLM loss, each batch's loss weighted by the tokens it predicted: the
    perplexity of all masked tokens together, whatever the batches' sizes."""

    def compute(self) -> torch.Tensor:
        return torch.exp(super().compute())


def active_objectives(mlm_weight: float, mep_vocab_weight: float, mep_contrastive_weight: float, oe_weight: float) -> list[str]:
    """The objectives with a weight above 0, in :data:`OBJECTIVES` order (the CLI passes them to the
    data module, which then builds nothing that only an inactive objective reads)."""
    return [name for name, weight in zip(OBJECTIVES, (mlm_weight, mep_vocab_weight, mep_contrastive_weight, oe_weight)) if weight > 0]


class KnowledgePretraining(L.LightningModule):
    def __init__(
        self,
        size: Literal["tiny", "base", "large"] = "tiny",
        vocab_size: int = 0,
        entity_vocab_size: int = 0,
        pad_token_id: int = 1,
        encoder: dict | None = None,
        objective_settings: ObjectiveSettings = ObjectiveSettings(),
        init_from: str | None = None,
        entity_vocab_path: str | None = None,
        learning_rate: float = 5e-4,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-6,
        warmup_steps: int = 20,
        schedule: Literal["linear", "cosine", "constant"] = "linear",
        train_only_entity_parameters: bool = False,
        languages: list[str] | None = None,
        compile: bool = False,
        nonfinite: Literal["stop", "skip"] = "stop",
        max_nonfinite_steps: int = 10,
    ):
        """
        Args:
            size: Encoder preset: ``tiny`` (CI), ``base`` (XLM-R base), ``large`` (XLM-R large).
            vocab_size: Word vocabulary size; linked from the data's tokenizer.
            entity_vocab_size: Entity vocabulary size; linked from the data's entity vocabulary.
            pad_token_id: Word padding id; linked from the data's tokenizer.
            encoder: Overrides of the preset's ``EncoderConfig`` fields (lightning_kg/model/config.py), e.g.
                ``{activation_checkpointing: true}``; an unknown key or a wrong type stops naming ``model.encoder.<key>``.
            objective_settings: The four objectives' weights (0 turns one off) and their settings, each a flag
                (``--model.objective_settings.oe_weight 0``); ``ObjectiveSettings`` in lightning_kg/model/config.py.
            init_from: Local Hugging Face directory (XLM-R, LUKE, mLUKE) or a lightning_kg checkpoint to
                start from (weights only: a fresh optimiser, as mLUKE's second stage), or a DeepSpeed
                checkpoint directory (consolidated first).
            entity_vocab_path: The dataset's ``entity_vocab.jsonl`` (linked from ``data.data_dir``):
                ``init_from`` maps a Hugging Face checkpoint's entity rows to it by name.
            learning_rate: Peak learning rate of AdamW.
            weight_decay: AdamW weight decay; never applied to biases, norms and embeddings.
            betas: AdamW betas (RoBERTa's 0.9, 0.98).
            eps: AdamW epsilon (RoBERTa's 1e-6).
            warmup_steps: Linear warmup steps.
            schedule: Decay after warmup to ``max_steps``.
            train_only_entity_parameters: mLUKE's first stage: only the new entity parameters train.
            languages: The dataset's languages (linked from the data): validation and test then report MLM
                loss and accuracy and mep_vocab accuracy@1 per language (``val_lang/mlm_acc/en``).
            compile: ``torch.compile`` the encoder (in place, so checkpoints keep their keys): the first
                steps compile (a minute or more for the base size), later ones run fused kernels.
            nonfinite: A NaN or infinite training loss (any objective, any rank): ``stop`` the run, naming the
                step and the objective, before a checkpoint of broken weights is written; or ``skip`` the
                step (not applied, counted in ``train/skipped_steps``; one host sync a step). train/nonfinite.py.
            max_nonfinite_steps: With ``skip``, the run stops once more steps than this were skipped.
        """
        super().__init__()
        # save_hyperparameters reads this local: a plain dict (as the CLI passes it), so that a checkpoint
        # loads with torch.load(weights_only=True) and hparams.yaml with yaml.safe_load.
        objective_settings = dataclasses.asdict(objective_settings_of({"objective_settings": objective_settings}))
        self.save_hyperparameters()
        self.model = model_from_hparams(self.hparams)
        if init_from:
            self._initialise_from(init_from)
        if compile:
            self.model.encoder.compile()
        # Created up front: Lightning finds a logged Metric by its attribute, so none may appear mid-run.
        names = ["mlm_acc", "mlm_ppl"] if self.model.active("mlm") else []
        names += [f"{objective}_{kind}" for objective in OBJECTIVES[1:] if self.model.active(objective) for kind in ("acc1", "acc10", "mrr")]
        names += [f"{objective}_pair_acc" for objective in CONTRASTIVE_OBJECTIVES if self.model.active(objective)]
        # nan_strategy "disable": the default's NaN check reads the device every update (a sync per step).
        kinds = {"mlm_ppl": Perplexity} | {name: FiniteMean for name in names if name.endswith("_pair_acc")}
        self.metrics = nn.ModuleDict({f"{stage}_{name}": kinds.get(name, MeanMetric)(nan_strategy="disable")
                                      for stage in ("train", "val", "test") for name in names})
        self.language_metrics = nn.ModuleDict({stage: LanguageMetrics(languages) for stage in ("val", "test")} if languages else {})
        self._logged_at: float | None = None  # perf_counter at the previous logging step
        self._tokens_since_log = 0  # host count of the tokens trained on since then
        self._step_losses: dict[str, torch.Tensor] = {}  # the last training step's, for the progress bar
        self._bad_samples: int | torch.Tensor = 0  # skipped by the loader since this process started
        self.nonfinite_guard = NonFiniteGuard(nonfinite, max_nonfinite_steps)

    def configure_callbacks(self):
        return [self.nonfinite_guard]

    def _initialise_from(self, path: str) -> None:
        source = Path(path)
        if not source.exists():
            raise FileNotFoundError(f"model.init_from: {source} does not exist (a local Hugging Face directory, a .ckpt "
                                    "file or a DeepSpeed checkpoint directory)")
        if source.is_dir() and not is_deepspeed_checkpoint(source):
            from lightning_kg.dataset.entity_vocab import EntityVocab
            from lightning_kg.model.hf_convert import load_hf_weights

            vocab_file = self.hparams.entity_vocab_path
            entity_names = EntityVocab.load(vocab_file).names() if vocab_file else None
            report = load_hf_weights(self.model, str(source), entity_names)
            print(f"init_from {source}:\n{report}")
        else:
            # A Lightning .ckpt or a DeepSpeed directory (mLUKE's stage 2 from stage 1), consolidated first.
            # Weights only: the negative queues start afresh, as the optimiser does.
            weights = {k: v for k, v in model_weights(read_checkpoint(source)).items() if "_queue." not in k}
            missing, unexpected = self.model.load_state_dict(weights, strict=False)
            missing = [k for k in missing if "_queue." not in k]
            if missing or unexpected:
                raise ValueError(f"{source}: does not match this model (missing {missing[:5]}, unexpected {unexpected[:5]})")

    # ------------------------------------------------------------------ steps

    def forward(self, batch: dict[str, torch.Tensor]) -> PretrainingOutput:
        return self.model(batch)

    def _update_metrics(self, stage: str, outputs: PretrainingOutput) -> None:
        """Feed one batch's outputs to the stage's metrics: per-example values for accuracies and
        MRR, the MLM loss weighted by its masked tokens for perplexity."""
        values = {}
        if outputs.mlm_correct is not None and outputs.mlm_correct.numel():
            values["mlm_acc"] = outputs.mlm_correct.float()
            # Weighted by repeating the loss once per masked token: with nan_strategy "disable" torchmetrics drops ``weight``.
            self.metrics[f"{stage}_mlm_ppl"].update(outputs.mlm_loss.detach().float().expand(outputs.mlm_correct.numel()))
        for objective, ranks in outputs.ranks().items():
            values.update(rank_metrics(objective, ranks))
        # Chance is 0.5 at every step, unlike the loss and ranks, whose chance level moves with the batch.
        values.update({f"{objective}_pair_acc": accuracy for objective, accuracy in outputs.pair_accuracies().items()})
        for name, value in values.items():
            if value.numel():
                self.metrics[f"{stage}_{name}"].update(value)

    def _log_losses(self, stage: str, outputs: PretrainingOutput, batch: dict[str, torch.Tensor], **options) -> None:
        """The total loss and each objective's, averaged over the epoch by rows, the MLM loss by
        masked tokens (so that ``mlm_ppl`` is its exp)."""
        rows = batch["input_ids"].shape[0]
        self.log(f"{stage}/loss", outputs.loss, batch_size=max(1, rows), **options)
        for objective, loss in outputs.losses().items():
            # A single-task training batch (data.task_mixing alternating) leaves out the other task's
            # losses, which are 0 by construction; evaluation logs every key, as ranks sync them.
            if stage != "train" or has_inputs(objective, batch):
                weight = max(1, outputs.mlm_correct.numel()) if objective == "mlm" else max(1, rows)
                self.log(f"{stage}/{objective}", loss, batch_size=weight, **options)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        outputs = self(batch)
        self.nonfinite_guard.record(self.global_step, outputs)
        self._log_losses("train", outputs, batch)
        self._step_losses = {"loss": outputs.loss.detach()} | {name: loss.detach() for name, loss in outputs.losses().items()
                                                              if has_inputs(name, batch)}
        self._update_metrics("train", outputs)
        if "bad_samples" in batch:  # bad data KnowledgeDataModule skipped since this loader worker's previous batch
            # A running total on this rank, so that no skip is lost between the steps the logger
            # writes; summed over ranks only at those steps (on_train_batch_end), not a collective a step.
            self._bad_samples = self._bad_samples + batch["bad_samples"]
        self._tokens_since_log += tokens_in_batch(batch)
        return outputs.loss

    def on_train_batch_end(self, outputs, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        # Train metrics cover the steps since the last log line (all ranks), then start afresh: at
        # the steps Lightning writes logs, once per optimiser step (not per accumulated micro-batch).
        if (batch_idx + 1) % self.trainer.accumulate_grad_batches or not should_update_logs(self.trainer):
            return
        self._log_speed()
        # The bar's values, logged only here: Lightning reads every progress-bar value back at each step it is logged.
        for name, loss in self._step_losses.items():
            self.log(name, loss, prog_bar=True, logger=False)
        if torch.is_tensor(self._bad_samples):  # every training batch carries its count, on every rank
            self.log("train/bad_samples", self._bad_samples.float(), reduce_fx="sum", sync_dist=True,
                     batch_size=batch["input_ids"].shape[0])
        for key, metric in self.metrics.items():
            stage, name = key.split("_", 1)
            if stage == "train":
                with warnings.catch_warnings():  # a rank that saw none still takes part in the sync
                    warnings.filterwarnings("ignore", message=".*was called before the ``update`` method.*")
                    value = metric.compute()
                metric.reset()
                if torch.isfinite(value):  # NaN: no rank saw one (e.g. no fact in these batches)
                    self.log(f"train/{name}", value)

    def _log_speed(self) -> None:
        """At a logging step: tokens/s since the previous one on the progress bar (the logs get
        ``ThroughputMonitor``'s figures, MFU included), and on a GPU the peak memory allocated so
        far. Only here: a Python number logged becomes a host-to-device copy, and the device has
        caught up at these steps anyway (the metrics were just read back), so the rate is true."""
        now = time.perf_counter()
        if self._logged_at is not None:
            self.log("tok/s", self._tokens_since_log / max(now - self._logged_at, 1e-9), prog_bar=True, logger=False)
        self._logged_at, self._tokens_since_log = now, 0
        if self.device.type == "cuda":  # what a larger batch or model would have to fit beside
            self.log("train/peak_memory_gib", torch.cuda.max_memory_allocated(self.device) / 2**30, reduce_fx="max")

    def _evaluation_step(self, stage: str, batch: dict[str, torch.Tensor]) -> None:
        outputs = self(batch)
        self._log_losses(stage, outputs, batch, sync_dist=True)
        self._update_metrics(stage, outputs)
        for key, metric in self.metrics.items():
            if key.startswith(f"{stage}_"):
                self.log(f"{stage}/{key.removeprefix(stage + '_')}", metric, on_step=False, on_epoch=True)
        if stage in self.language_metrics:
            self.language_metrics[stage].update(outputs, batch)

    def _log_language_metrics(self, stage: str) -> None:
        """The split's figures per language, summed over ranks by the metric (so all ranks log the same)."""
        if stage in self.language_metrics:
            for name, value in self.language_metrics[stage].compute().items():
                self.log(f"{stage}_lang/{name}", value, sync_dist=True)
            self.language_metrics[stage].reset()

    def on_validation_epoch_end(self) -> None:
        self._log_language_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_language_metrics("test")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluation_step("val", batch)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluation_step("test", batch)

    # ------------------------------------------------------------------ exact resume

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Lightning does not store RNG states; dropout must continue as if never interrupted.
        # Plain types and tensors only, so the checkpoint loads with torch.load(weights_only=True).
        checkpoint[FORMAT_KEY] = FORMAT_VERSION
        kind, keys, position, has_gauss, cached = np.random.get_state()
        checkpoint["rng_states"] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                                    "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)]}
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        upgrade(checkpoint)  # Lightning calls this before it loads the state dict: an older format loads under today's names
        states = checkpoint.get("rng_states")
        if states:
            torch.set_rng_state(states["torch"])
            random.setstate(states["python"])
            kind, keys, position, has_gauss, cached = states["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
            if "cuda" in states and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(states["cuda"])

    # ------------------------------------------------------------------ optimisation

    @property
    def flops_per_batch(self) -> int | None:
        """Read by Lightning's ``ThroughputMonitor`` for MFU; set from the last training batch."""
        return getattr(self, "_flops_per_batch", None)

    def on_train_batch_start(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        # Lightning writes every key's last step value again at each later step of the epoch; drop
        # them, so a loss this batch lacks (single-task batches, data.task_mixing alternating) is
        # left out of the logs rather than repeated. Our train logs are all per step; the progress
        # bar keeps showing the last value.
        reset_step_results(self.trainer)
        if hasattr(self.model, "flops_per_batch"):
            self._flops_per_batch = int(self.model.flops_per_batch(batch))

    def configure_optimizers(self):
        if self.hparams.train_only_entity_parameters:
            trainable = {id(p) for p in self.model.entity_parameters()}
            for parameter in self.model.parameters():
                parameter.requires_grad_(id(parameter) in trainable)
        decay, no_decay, seen = [], [], set()
        for module in self.model.modules():
            for parameter in module.parameters(recurse=False):
                if parameter.requires_grad and id(parameter) not in seen:  # a shared one goes in one group only
                    seen.add(id(parameter))
                    # Biases, norms and embedding tables are not decayed (RoBERTa, LUKE); by module type, so
                    # that a Linear inside an embedding block (the entity projection) is.
                    plain = parameter.ndim < 2 or isinstance(module, NOT_DECAYED)
                    (no_decay if plain else decay).append(parameter)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.hparams.learning_rate, betas=tuple(self.hparams.betas), eps=self.hparams.eps,
            fused=self.device.type == "cuda",  # one kernel for all parameters instead of several per tensor
        )
        total = self.trainer.max_steps if self.trainer.max_steps and self.trainer.max_steps > 0 else None
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(self.hparams.warmup_steps, total, self.hparams.schedule))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def lr_schedule(warmup_steps: int, total_steps: int | None, schedule: str):
    """Multiplier of the peak learning rate at each optimiser step: linear warmup, then decay to 0."""

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant" or not total_steps:
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor

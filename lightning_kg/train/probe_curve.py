"""The knowledge learning curve: the probe (``lightning_kg.probe``) run on the model being trained,
every N validation rounds, so ``metrics.csv`` and TensorBoard show when facts are learnt, not only
whether the last checkpoint knows them.

Off unless a config turns it on (``conf/demo/knowledge.yaml`` does, the demo does not: each probe
costs tens of seconds on a laptop CPU)::

    trainer:
      callbacks:
        - class_path: lightning_kg.train.probe_curve.ProbeCurve
          init_args: {every_n_validations: 1}

Logged per language and for the macro mean (``mean``): ``probe/<kind>_p1/<key>`` and
``probe/<kind>_mrr/<key>``, kind ``entity`` (the ``mep_vocab`` head) or ``word`` (the ``mlm`` head),
with ``probe/majority_p1/mean`` and ``probe/chance_p1/mean`` beside them; ``probe-curve.png`` in the
run directory is redrawn after each probe.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Callback

from lightning_kg.charts import pyplot, save_png
from lightning_kg.probe.run import ProbeConfig, probe_model

KINDS = ("entity", "word")
CURVE = "probe-curve.png"


def probe_metrics(rows: list[dict]) -> dict[str, float]:
    """``lightning_kg.probe.metrics.summarise`` rows -> flat metric names (see the module docstring);
    a metric not measured (no head for it, no query in a language) is left out."""
    metrics = {}
    for row in rows:
        if row["scope"] not in ("language", "all"):
            continue
        names = [f"{kind}_{metric}" for kind in KINDS for metric in ("p1", "mrr")]
        names += ["majority_p1", "chance_p1"] if row["scope"] == "all" else []
        for name in names:
            if row[name] is not None:
                metrics[f"probe/{name}/{row['key']}"] = float(row[name])
    return metrics


def plot_curve(history: list[tuple[int, dict[str, float]]], path: Path, title: str) -> None:
    """P@1 and MRR (macro means over languages) against the step, entity- and word-based, with the
    most-frequent-object and chance P@1 as dashed lines."""
    plt = pyplot()
    steps = [step for step, _ in history]
    figure, axes = plt.subplots(1, 2, figsize=(10.0, 4.0))
    for axis, metric in zip(axes, ("p1", "mrr")):
        for kind, color in zip(KINDS, ("tab:blue", "tab:orange")):
            values = [metrics.get(f"probe/{kind}_{metric}/mean") for _, metrics in history]
            if any(v is not None for v in values):
                axis.plot(steps, [float("nan") if v is None else v for v in values], marker="o", color=color, label=f"{kind}-based")
        if metric == "p1":
            for name, label in (("majority_p1", "most frequent object"), ("chance_p1", "chance")):
                axis.plot(steps, [metrics.get(f"probe/{name}/mean", float("nan")) for _, metrics in history],
                          linestyle="--", color="black" if name == "majority_p1" else "grey", label=label)
        axis.set_xlabel("step")
        axis.set_ylabel("P@1" if metric == "p1" else "MRR")
        axis.set_ylim(0, 1.0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    save_png(figure, path, dpi=110)


class ProbeCurve(Callback):
    def __init__(self, every_n_validations: int = 1, facts: str = "facts-heldout", batch_size: int = 64,
                 alignment_entities: int = 2000):
        """
        Args:
            every_n_validations: Probe after every N-th validation round (the sanity check is not one).
            facts: The manifest's fact split asked (``facts-heldout``: subjects never trained on).
            batch_size: Prompts per forward pass.
            alignment_entities: Entities in the alignment test (fewer than ``probe``'s 10,000: it runs during training).
        """
        if every_n_validations < 1:
            raise ValueError(f"ProbeCurve.every_n_validations must be >= 1, got {every_n_validations}")
        self.every_n_validations = every_n_validations
        self.config = ProbeConfig(ckpt_path="", facts=facts, batch_size=batch_size, alignment_entities=alignment_entities)
        self.rounds = 0
        self.history: list[tuple[int, dict[str, float]]] = []
        """(step, metrics) of each probe so far; in the checkpoint, so a resumed run's chart starts at step 0."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        # Rank 0 probes alone: under ZeRO-3 it holds a shard of each weight, and a forward pass would wait on the others.
        if getattr(trainer.strategy, "zero_stage_3", False):
            raise ValueError("ProbeCurve: the probe runs on rank 0 alone and cannot under ZeRO stage 3; "
                             "probe the checkpoints afterwards (python -m lightning_kg probe)")

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self.rounds += 1
        if self.rounds % self.every_n_validations or not trainer.is_global_zero:
            return
        model = pl_module.model
        was_training = model.training
        model.eval()  # dropout off, BatchNorm on its running statistics, as a loaded checkpoint is probed
        try:
            result = probe_model(model, Path(trainer.datamodule.data_dir), self.config, f"step {trainer.global_step}")
        finally:
            model.train(was_training)
        metrics = probe_metrics(result.rows)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        self.history.append((trainer.global_step, metrics))
        plot_curve(self.history, Path(trainer.default_root_dir) / CURVE,
                   f"{self.config.facts}, macro means over languages; {' + '.join(result.objectives)}")

    def state_dict(self) -> dict:
        return {"rounds": self.rounds, "history": self.history}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rounds = state_dict["rounds"]
        self.history = [(step, dict(metrics)) for step, metrics in state_dict["history"]]

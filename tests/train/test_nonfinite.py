"""A NaN or infinite loss stops the fit before a checkpoint of its weights is written (naming the step
and the objective), or with ``model.nonfinite skip`` is skipped and counted, up to a limit."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from lightning_kg.cli import main
from tests.demo import SMALL


def fit(tmp_path: Path, run_dir: Path, *extra: str, nan_at: int | None = None) -> None:
    """A short fit through the CLI, saving every step; ``nan_at``: the mep_vocab loss is NaN at that step."""
    options = [*SMALL, "--run_dir", str(run_dir), "--trainer.limit_val_batches", "0", "--checkpoint_every_n_steps", "1"]
    if nan_at is not None:
        config = tmp_path / "nan.yaml"
        config.write_text("trainer:\n  callbacks:\n    - class_path: tests.train.recorder.NaNLossAt\n"
                          f"      init_args: {json.dumps({'step': nan_at, 'objective': 'mep_vocab'})}\n")
        options += ["--config", str(config)]
    main(["fit", *options, *extra])


def saved(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def all_finite(checkpoint: dict) -> bool:
    return all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values() if t.is_floating_point())


@pytest.mark.slow  # fits on the demo, over 3 s
def test_a_nan_loss_stops_the_run_before_its_weights_are_saved(tmp_path, capsys):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        fit(tmp_path, run_dir, "--trainer.max_steps", "8", nan_at=3)
    # The run used to go on to step 8 and exit 0, last.ckpt holding NaN in every weight.
    assert stopped.value.code == 1
    assert "error: step 3: the mep_vocab loss is NaN or infinite (rank 0), so the run stops before its weights are saved" in capsys.readouterr().err
    checkpoint = saved(run_dir)
    assert checkpoint["global_step"] == 3 and all_finite(checkpoint)  # the last good one


@pytest.mark.slow
def test_a_learning_rate_that_diverges_stops_the_run_with_last_ckpt_finite(tmp_path, capsys):
    # The run: loss 1.9e7 at step 9, NaN from step 14 (log and saves every step here).
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        fit(tmp_path, run_dir, "--trainer.max_steps", "40", "--model.learning_rate", "1e3", "--trainer.log_every_n_steps", "1")
    assert stopped.value.code == 1 and "is NaN or infinite" in capsys.readouterr().err
    checkpoint = saved(run_dir)
    assert checkpoint["global_step"] < 40 and all_finite(checkpoint)


@pytest.mark.slow  # fits twice on the demo, over 3 s
def test_the_skip_policy_drops_the_step_counts_it_and_stops_past_the_limit(tmp_path, capsys):
    run_dir = tmp_path / "skip"
    with pytest.warns(UserWarning, match=r"^step 3: the mep_vocab loss is NaN or infinite; the step is skipped \(1 of at most 10\)$"):
        fit(tmp_path, run_dir, "--trainer.max_steps", "6", "--model.nonfinite", "skip", "--trainer.log_every_n_steps", "1", nan_at=3)
    checkpoint = saved(run_dir)
    assert checkpoint["global_step"] == 6 and all_finite(checkpoint)
    rows = [row for row in csv.DictReader(open(run_dir / "metrics.csv")) if row.get("train/skipped_steps")]
    assert [(row["step"], float(row["train/skipped_steps"])) for row in rows] == [("0", 0.0), ("1", 0.0), ("2", 0.0), ("3", 1.0),
                                                                                 ("4", 1.0), ("5", 1.0)]
    with pytest.raises(SystemExit) as stopped:
        fit(tmp_path, tmp_path / "limit", "--trainer.max_steps", "6", "--model.nonfinite", "skip", "--model.max_nonfinite_steps", "0",
            nan_at=3)
    assert stopped.value.code == 1
    assert "step 3: the mep_vocab loss is NaN or infinite, and 1 steps were skipped, more than --model.max_nonfinite_steps 0" in (
        capsys.readouterr().err)
    assert saved(tmp_path / "limit")["global_step"] == 3

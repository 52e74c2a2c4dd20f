"""The probe during training: logged per language and kind, charted in the run directory."""

import csv
import json
from pathlib import Path

import pytest
import torch

from lightning_kg.cli import main
from lightning_kg.train.probe_curve import CURVE, ProbeCurve, probe_metrics

DEMO = str(Path(__file__).resolve().parents[2] / "shards" / "demo")


@pytest.mark.slow
def test_a_tiny_run_logs_the_probe_every_validation_round_and_charts_it(tmp_path):
    run_dir = tmp_path / "run"
    callback = json.dumps([{"class_path": "lightning_kg.train.probe_curve.ProbeCurve",
                            "init_args": {"every_n_validations": 1, "alignment_entities": 200}}])
    main(["fit", "--data.data_dir", DEMO, "--data.num_workers", "0", "--data.batch_size", "4", "--data.fact_batch_size", "4",
          "--trainer.enable_progress_bar", "false", "--trainer.max_steps", "6", "--trainer.val_check_interval", "3",
          "--trainer.limit_val_batches", "1", "--trainer.callbacks", callback, "--run_dir", str(run_dir)])
    rows = [r for r in csv.DictReader(open(run_dir / "metrics.csv")) if r.get("probe/entity_p1/mean")]
    assert [int(r["step"]) for r in rows] == [3, 6]
    for key in ("probe/entity_p1/en", "probe/entity_mrr/zh", "probe/word_p1/mean", "probe/word_mrr/bg", "probe/majority_p1/mean"):
        assert all(0.0 <= float(r[key]) <= 1.0 for r in rows), key
    # The same facts are asked at both steps, so the most-frequent-object baseline does not move.
    assert rows[0]["probe/majority_p1/mean"] == rows[1]["probe/majority_p1/mean"]
    assert (run_dir / CURVE).stat().st_size > 1000
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["callbacks"]
    saved = next(value for key, value in state.items() if key.startswith("ProbeCurve"))
    assert saved["rounds"] == 2 and [step for step, _ in saved["history"]] == [3, 6]


def test_the_summary_rows_become_metric_names_and_a_missing_head_is_left_out():
    rows = [{"scope": "language", "key": "en", "entity_p1": None, "entity_mrr": None, "word_p1": 0.25, "word_mrr": 0.5},
            {"scope": "relation", "key": "P30", "entity_p1": 1.0, "entity_mrr": 1.0, "word_p1": 1.0, "word_mrr": 1.0},
            {"scope": "all", "key": "mean", "entity_p1": None, "entity_mrr": None, "word_p1": 0.25, "word_mrr": 0.5,
             "majority_p1": 0.3, "chance_p1": 0.05}]
    assert probe_metrics(rows) == {"probe/word_p1/en": 0.25, "probe/word_mrr/en": 0.5, "probe/word_p1/mean": 0.25,
                                   "probe/word_mrr/mean": 0.5, "probe/majority_p1/mean": 0.3, "probe/chance_p1/mean": 0.05}


def test_every_n_validations_below_one_is_refused():
    with pytest.raises(ValueError, match="every_n_validations must be >= 1, got 0"):
        ProbeCurve(every_n_validations=0)

"""The ablation command: arms x seeds trained and probed (in parallel with --jobs), one table, a rerun
that skips what was done."""

import csv
import json
import os
from pathlib import Path

import pytest

from lightning_kg.charts import spread
from lightning_kg.cli import main
from lightning_kg.experiments import ablate
from lightning_kg.experiments.ablate import markdown, summary_rows

DEMO = str(Path(__file__).resolve().parents[2] / "shards" / "demo")
TINY = f"""data:
  data_dir: {DEMO}
  num_workers: 0
  batch_size: 4
  fact_batch_size: 4
trainer:
  max_steps: 4
  val_check_interval: 4
  limit_val_batches: 2
"""


@pytest.mark.slow
def test_two_arms_at_one_seed_give_one_table_and_a_rerun_skips_them(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    out = tmp_path / "ablation"
    args = ["ablate", "--config", str(config), "--seeds", "0", "--arms", "all", "mlm", "--out", str(out), "--transfer", "none"]
    main([*args, "--jobs", "2"])  # both fits at once, one torch thread each on 2 cores
    assert json.loads((out / "mlm" / "seed-0.fit.json").read_text())["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
    rows = list(csv.DictReader(open(out / "ablation.csv")))
    assert [(r["arm"], r["facts"], r["seeds"]) for r in rows] == [
        ("all", "facts-heldout", "1"), ("all", "facts-train", "1"), ("mlm", "facts-heldout", "1"), ("mlm", "facts-train", "1")]
    assert 0.0 <= float(rows[0]["entity_p1_mean"]) <= 1.0 and rows[2]["entity_p1_mean"] == ""  # MLM alone has no entity head
    assert float(rows[2]["word_p1_mean"]) >= 0.0 and float(rows[2]["val_mlm_mean"]) > 1.0
    table = (out / "ablation.md").read_text()
    assert "| most frequent object (`major`) | heldout |" in table and "| unigram frequencies |" in table
    assert (out / "ablation.png").stat().st_size > 1000
    assert (out / "mlm" / "seed-0" / "probe-facts-train.csv").is_file()
    fit_log = out / "all" / "seed-0.fit.log"
    written = fit_log.stat().st_mtime_ns
    capsys.readouterr()
    main(args)  # one at a time now: the finished runs are read back, in the order asked
    assert fit_log.stat().st_mtime_ns == written  # nothing was trained again
    assert "[2/2] mlm seed 0" in capsys.readouterr().out


def test_the_table_gives_mean_and_sample_sd_over_seeds_and_na_without_a_head():
    assert spread([0.2, 0.4, None]) == (pytest.approx(0.3), pytest.approx(0.1414, abs=1e-4))
    assert spread([None]) == (None, None) and spread([0.5]) == (0.5, None)
    probe = {"entity_p1": 0.3, "entity_mrr": 0.4, "word_p1": 0.1, "word_mrr": 0.2, "entity_consistency": 0.5,
             "word_consistency": 0.1, "alignment_acc1": 0.2, "alignment_acc1_distinct": 0.0, "majority_p1": 0.25, "chance_p1": 0.05}
    results = [{"arm": "all", "seed": seed, "val_mlm": 5.0 + seed, "facts-heldout": probe, "facts-train": probe} for seed in (0, 1)]
    rows = summary_rows(results)
    assert rows[0]["val_mlm_mean"] == 5.5 and rows[0]["entity_p1_sd"] == 0.0
    text = markdown(rows, {"facts-heldout": probe}, 6.9, [0, 1], 120.0, 30.0)
    assert "| all | heldout | 0.300 ± 0.000 |" in text and "| 6.900 |" in text
    assert "fits and probes 2.0 min summed, this command's wall time 0.5 min" in text


def test_a_failed_fit_starts_no_other(tmp_path, monkeypatch):
    started = []

    def fit(arm, seed, *args):
        started.append((arm, seed))
        if arm == "mlm":
            raise RuntimeError("fit exited 1")
        return {"fit_s": 1.0, "probe_s": 1.0, "facts-heldout": {"entity_p1": 0.3}}

    monkeypatch.setattr(ablate, "train_and_probe", fit)
    with pytest.raises(RuntimeError, match="fit exited 1"):
        ablate.ablate([], [0, 1], ["all", "mlm"], tmp_path, [], jobs=1)
    assert started == [("all", 0), ("mlm", 0)]  # seed 1's two fits never started


def test_the_transfer_column_gives_each_arms_zero_shot_mean_beside_the_random_init(tmp_path, monkeypatch):
    def fit(arm, seed, run_dir, configs, fit_args, threads, transfer, epochs):
        probe = dict.fromkeys(ablate.METRICS, 0.3) | {"majority_p1": 0.25, "chance_p1": 0.05}
        return {"arm": arm, "seed": seed, "fit_s": 1.0, "probe_s": 1.0, "val_mlm": 5.0, "facts-heldout": probe, "facts-train": probe,
                "transfer": {"task": transfer, "zero_shot": 0.5 + 0.1 * seed + (0.1 if arm == "all" else 0.0)}}

    rows = [{"seed": 0, "language": "en", "split": "dev", "metric": "accuracy", "value": 0.9},
            {"seed": 0, "language": "de", "split": "test", "metric": "accuracy", "value": 0.4},
            {"seed": 0, "language": "ja", "split": "test", "metric": "accuracy", "value": 0.2}]
    ran = []

    def run_transfer(config):
        ran.append((config.random_init, config.seeds, config.finetune.epochs))
        return type("Result", (), {"rows": rows, "train_language": "en", "title": "t", "seconds": 1.0})

    monkeypatch.setattr(ablate, "train_and_probe", fit)
    monkeypatch.setattr(ablate, "run_transfer", run_transfer)
    monkeypatch.setattr(ablate, "unigram_mlm_loss", lambda data_dir: 6.0)
    monkeypatch.setattr(ablate, "run_dataset", lambda *args: tmp_path)
    monkeypatch.setattr(ablate, "config_data_dir", lambda run: None)
    ablate.ablate([], [0, 1], ["all", "mlm"], tmp_path, [], transfer="typing", transfer_epochs=2)
    table = (tmp_path / "ablation.md").read_text()
    assert "| typing zero-shot |" in table.splitlines()[2]
    assert "| 0.650 ± 0.071 |" in table and "| 0.550 ± 0.071 |" in table  # all, mlm: seeds 0 and 1
    assert "| random init (same size, untrained) | | | | | | | | | | 0.300 ± 0.000 |" in table  # mean of de and ja, each seed
    assert ran == [(True, [0], 2), (True, [1], 2)]
    ablate.ablate([], [0, 1], ["all", "mlm"], tmp_path, [], transfer="typing", transfer_epochs=2)
    assert len(ran) == 2  # the random init's scores are kept for a rerun

"""The ``probe`` verb's paths: templates and a checkpoint's relative dataset found from any working
directory, output into the checkpoint's run directory, and only rank 0 probing in a multi-process run."""

import csv
from pathlib import Path

import pytest
from lightning.fabric.utilities.rank_zero import rank_zero_only

from lightning_kg.cli import main
from lightning_kg.paths import REPOSITORY
from lightning_kg.probe.run import ProbeConfig, default_out, probe_and_write, templates_file
from tests.probe.checkpoint_factory import write_checkpoint


@pytest.mark.slow  # the probe verb on the demo's held-out facts: 296 queries, both scorers, the chart
def test_probe_from_another_directory_finds_the_templates_and_the_demo_and_writes_into_the_run(tmp_path, monkeypatch, capsys):
    """A demo fit saves ``data_dir: shards/demo``, relative to the repository it ran in."""
    elsewhere = tmp_path / "elsewhere"
    write_checkpoint(elsewhere / "run" / "checkpoints" / "last.ckpt", data_dir="shards/demo")
    monkeypatch.chdir(elsewhere)
    main(["probe", "--ckpt_path", "run/checkpoints/last.ckpt", "--alignment_entities", "40"])
    rows = list(csv.DictReader(open(elsewhere / "run" / "probe" / "probe.csv", encoding="utf-8")))
    mean = rows[-1]
    assert mean["key"] == "mean" and int(mean["queries"]) == 296  # 148 held-out facts, each in 2 languages
    assert 0.0 <= float(mean["alignment_acc1_distinct"]) <= float(mean["alignment_acc1"]) <= 1.0
    assert (elsewhere / "run" / "probe" / "probe.png").is_file()
    assert "wrote run/probe/probe.csv" in capsys.readouterr().out


def test_the_default_templates_are_found_whatever_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert templates_file(None) == REPOSITORY / "conf" / "probe" / "templates.yaml"
    assert templates_file("mine.yaml") == Path("mine.yaml")  # a path the user gives is the user's, as given


@pytest.mark.parametrize(("ckpt_path", "facts", "expected"), [
    ("runs/a/checkpoints/last.ckpt", "facts-heldout", "runs/a/probe"),
    ("runs/a/checkpoints/best-step=100.ckpt/", "facts-heldout", "runs/a/probe"),  # a DeepSpeed checkpoint directory
    ("runs/a/checkpoints/last.ckpt", "facts-train", "runs/a/probe-facts-train"),
    ("/models/mine.ckpt", "facts-heldout", "/models/probe"),
])
def test_the_output_goes_into_the_checkpoints_run_directory(ckpt_path, facts, expected):
    assert default_out(ckpt_path, facts) == Path(expected)


def test_only_rank_zero_probes(tmp_path, monkeypatch):
    """Ranks other than 0 return at once: not even the checkpoint is read (it does not exist here)."""
    config = ProbeConfig(ckpt_path=str(tmp_path / "run" / "checkpoints" / "missing.ckpt"))
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert probe_and_write(config) is None
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        probe_and_write(config)


@pytest.mark.slow  # a whole probe of the demo: about 100 s on a shared 2-core CPU
def test_a_checkpoint_from_before_the_typed_model_is_probed(tmp_path):
    """tests/fixtures/checkpoint-711c5c4: old state-dict names and flat objective keys, all four
    objectives, so both the entity and the word scorer run."""
    old = REPOSITORY / "tests" / "fixtures" / "checkpoint-711c5c4" / "last.ckpt"
    main(["probe", "--ckpt_path", str(old), "--out", str(tmp_path / "probe"), "--alignment_entities", "40"])
    mean = list(csv.DictReader(open(tmp_path / "probe" / "probe.csv", encoding="utf-8")))[-1]
    assert mean["key"] == "mean" and int(mean["queries"]) == 296
    assert 0.0 <= float(mean["entity_p1"]) <= 1.0 and 0.0 <= float(mean["word_p1"]) <= 1.0

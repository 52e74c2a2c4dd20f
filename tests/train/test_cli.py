"""The training CLI's configuration: configs compose, every knob is a flag and shows in
``--print_config``, and each run gets a new directory. No step is trained here."""

import pytest
import yaml

from lightning_kg.cli import main
from lightning_kg.train.main import KnowledgeCLI, new_run_dir
from tests.demo import DEMO, ROOT


def test_configs_compose_later_wins_and_yaml_interpolates(tmp_path, capsys):
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text("model:\n  weight_decay: 0.02\n  learning_rate: 1.0e-3\ntrainer:\n  max_steps: 100\n")
    second.write_text("model:\n  learning_rate: 3.0e-4\n  warmup_steps: 7\ntrainer:\n  max_steps: 300\n"
                      "  val_check_interval: ${trainer.max_steps}\n  log_every_n_steps: ${model.warmup_steps}\n")
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(first), "--config", str(second), "--model.learning_rate", "5.0e-5", "--print_config"])
    printed = capsys.readouterr().out
    # The first file's key the second leaves alone stays; the second wins on shared keys; a dotted
    # override after both wins over them; ${...} is resolved as its file is read.
    assert "weight_decay: 0.02\n" in printed and "max_steps: 300\n" in printed and "learning_rate: 5.0e-05\n" in printed
    assert "val_check_interval: 300\n" in printed and "log_every_n_steps: 7\n" in printed


def test_print_config_shows_every_knob(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--print_config", "--model.objective_settings.mep_vocab_weight", "0.5"])
    printed = capsys.readouterr().out
    assert "mep_vocab_weight: 0.5" in printed and "knowledge_language: same" in printed and "max_steps: 500" in printed


def test_every_model_knob_is_a_command_line_flag(tmp_path):
    settings = {"projection_size": "32", "mep_vocab_chunk_size": "100", "temperature": "0.1", "queue_size": "8", "mep_layer": "1"}
    flags = [arg for key, value in settings.items() for arg in (f"--model.objective_settings.{key}", value)]
    cli = KnowledgeCLI(["--data.data_dir", DEMO, "--run_dir", str(tmp_path), *flags], run=False)
    net = cli.model.model
    assert net.mep_contrastive.query_head.net[-1].num_features == 32 and net.mep_contrastive.key_queue.vectors.shape == (8, 32)
    assert (net.objective_settings.mep_vocab_chunk_size, net.mep_contrastive.temperature, net.oe.temperature, net.mep_layer) == (100, 0.1, 0.1, 1)
    assert cli.model.hparams.entity_vocab_path == f"{DEMO}/entity_vocab.jsonl"  # linked, for init_from's entity rows


def test_each_run_gets_a_new_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    first = new_run_dir(str(tmp_path))
    first.mkdir()
    assert new_run_dir(str(tmp_path)) != first
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert new_run_dir(str(tmp_path)).name == "slurm-4242"


def test_the_knowledge_demo_trains_on_the_dataset_its_prepare_config_writes(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(ROOT / "conf/demo/knowledge.yaml"), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    prepare = yaml.safe_load((ROOT / "conf/prepare/demo-knowledge.yaml").read_text(encoding="utf-8"))
    assert printed["data"]["data_dir"] == prepare["out"] and prepare["title_mentions"] is True
    assert printed["model"]["encoder"] == {"dropout": 0.0, "attention_dropout": 0.0}  # a YAML mapping reaches the encoder
    assert [c["class_path"] for c in printed["trainer"]["callbacks"]] == ["lightning_kg.train.probe_curve.ProbeCurve"]

"""Where a run is, where verbs write beside it, and which dataset it trained on."""

from pathlib import Path

import pytest

from lightning_kg.paths import REPOSITORY
from lightning_kg.runs.directories import config_data_dir, output_dir, run_dataset, run_dir_of, saved_data_dir


def test_a_relative_dataset_in_the_checkpoint_is_looked_for_here_then_in_the_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_dataset(None, saved_data_dir({"datamodule_hyper_parameters": {"data_dir": "shards/demo"}}), "run/last.ckpt") == REPOSITORY / "shards" / "demo"
    (tmp_path / "shards" / "demo").mkdir(parents=True)
    (tmp_path / "shards" / "demo" / "manifest.json").write_text("{}")
    local = run_dataset(None, saved_data_dir({"datamodule_hyper_parameters": {"data_dir": "shards/demo"}}), "run/last.ckpt")
    assert local == Path("shards/demo")  # the local one
    with pytest.raises(FileNotFoundError, match=r"data_dir: shards/gone/manifest.json not found; pass --data_dir with the dataset run/last.ckpt"):
        run_dataset(None, saved_data_dir({"datamodule_hyper_parameters": {"data_dir": "shards/gone"}}), "run/last.ckpt")
    with pytest.raises(ValueError, match="run/last.ckpt does not say which dataset it was trained on; pass --data_dir"):
        run_dataset(None, saved_data_dir({}), "run/last.ckpt")


def test_a_given_dataset_wins_and_a_runs_config_names_its_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    given = tmp_path / "mine"
    given.mkdir()
    (given / "manifest.json").write_text("{}")
    assert run_dataset(given, "shards/demo", "run/last.ckpt") == given
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("data:\n  data_dir: shards/demo\n")
    assert run_dataset(None, config_data_dir(tmp_path / "run"), tmp_path / "run") == REPOSITORY / "shards" / "demo"


@pytest.mark.parametrize(("checkpoint", "run", "out"), [
    ("runs/a/checkpoints/last.ckpt", "runs/a", "runs/a/transfer"),
    ("runs/a/hpc_ckpt_3.ckpt", "runs/a", "runs/a/transfer"),
    ("/models/mine.ckpt", None, "/models/transfer"),
])
def test_a_checkpoints_run_directory_and_what_is_written_beside_it(checkpoint, run, out):
    assert run_dir_of(Path(checkpoint)) == (Path(run) if run else None)
    assert output_dir(checkpoint, "transfer") == Path(out)

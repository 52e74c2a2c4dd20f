"""What fit checks before it starts: each fault stops at once with one line naming the file or
setting and what was expected (exit status 2), and writes nothing that blocks the next start."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from lightning_kg.cli import main
from lightning_kg.train.startup import LOCK, lock_run_dir
from tests.demo import DEMO, SMALL

DEMO_DIR = Path(DEMO)

ONE_STEP = [*SMALL, "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0"]


def refused(capsys, *args: str) -> str:
    """The one error line of a fit that is refused at start-up."""
    with pytest.raises(SystemExit) as stopped:
        main(["fit", *args])
    assert stopped.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, errors
    return errors[0].removeprefix("error: ")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """``--trainer.default_root_dir`` of a one-step fit, which holds its run directory."""
    root = tmp_path_factory.mktemp("root")
    main(["fit", *ONE_STEP, "--trainer.default_root_dir", str(root)])
    return root


@pytest.mark.slow  # starts fit on the demo, over 3 s
def test_default_root_dir_is_where_new_runs_go_and_where_last_looks(root):
    # It used to be replaced by runs/<time> in the working directory, silently.
    [run_dir] = root.iterdir()
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 1
    main(["fit", *SMALL, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0", "--trainer.default_root_dir", str(root),
          "--ckpt_path", "last"])
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert [p.name for p in root.iterdir()] == [run_dir.name]


@pytest.mark.slow  # starts fit on the demo, over 3 s
def test_a_checkpoint_that_is_missing_not_a_checkpoint_or_of_another_model_is_refused(root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert refused(capsys, *ONE_STEP, "--run_dir", str(run_dir), "--ckpt_path", str(tmp_path / "nowhere.ckpt")) == (
        f"--ckpt_path {tmp_path / 'nowhere.ckpt'}: no such file (a run's checkpoints/last.ckpt, or `last` for the newest)")
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")  # torch's advice was to set weights_only=False
    assert refused(capsys, *ONE_STEP, "--run_dir", str(run_dir), "--ckpt_path", str(tmp_path / "notes.ckpt")).startswith(
        f"--ckpt_path {tmp_path / 'notes.ckpt'}: not a checkpoint (it does not load with torch.load, or holds no global_step)")
    # Another model size used to print 87 `size mismatch` lines (with `last`) or be replaced by the checkpoint's (with a file).
    [ckpt] = root.glob("*/checkpoints/last.ckpt")
    assert refused(capsys, *ONE_STEP, "--run_dir", str(run_dir), "--ckpt_path", str(ckpt), "--model.encoder", "{hidden_size: 128}") == (
        f"--ckpt_path {ckpt} does not fit this model: trained with hidden_size 64, this config asks 128. Pass the model settings "
        "it was trained with (its run directory's config.yaml has them)")
    assert "trained with queue_size 64, this config asks 16" in refused(capsys, *ONE_STEP, "--run_dir", str(ckpt.parent.parent),
                                                                         "--ckpt_path", "last", "--model.objective_settings.queue_size", "16")
    assert not run_dir.exists()  # nothing written


@pytest.mark.slow  # starts fit on the demo, over 3 s
def test_a_run_directory_that_is_a_file_or_in_use_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert refused(capsys, *ONE_STEP, "--run_dir", str(tmp_path / "file")) == (
        f"--run_dir {tmp_path / 'file'} is a file; expected a directory (a new one, or a run's to resume)")
    lock = lock_run_dir(tmp_path / "live")  # as a fit holds it while it runs
    message = refused(capsys, *ONE_STEP, "--run_dir", str(tmp_path / "live"))
    assert message.startswith(f"--run_dir {tmp_path / 'live'} is in use by a live run (fit, pid ") and f"holds {tmp_path / 'live' / LOCK}" in message
    lock.close()  # the run ended (the kernel releases the lock of a process that dies, however it dies)
    main(["fit", *ONE_STEP, "--run_dir", str(tmp_path / "live")])


@pytest.mark.slow  # starts fit on the demo, over 3 s
def test_what_a_failed_start_leaves_does_not_block_the_next_one(tmp_path, capsys):
    # A start that failed inside Lightning (after writing its config) used to leave files that made
    # the next `fit --run_dir` refuse the directory.
    run_dir = tmp_path / "run"
    (run_dir / "tensorboard").mkdir(parents=True)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "config.yaml").write_text("# from the start that failed\n")
    (run_dir / "hparams.yaml").write_text("{}\n")
    (run_dir / LOCK).write_text("fit, pid 1 on elsewhere\n")
    main(["fit", *ONE_STEP, "--run_dir", str(run_dir)])
    assert "from the start that failed" not in (run_dir / "config.yaml").read_text()
    # What a run that trained leaves is kept from a fresh start.
    assert refused(capsys, *ONE_STEP, "--run_dir", str(run_dir)) == (
        f"--run_dir {run_dir} already holds a run (checkpoints/last.ckpt); resume it with --ckpt_path last, or choose a new --run_dir")


@pytest.mark.slow  # starts fit on the demo, over 3 s
def test_a_yaml_error_names_the_config_file(tmp_path, capsys):
    config = tmp_path / "broken.yaml"
    config.write_text("trainer:\n  max_steps: [1\n")
    assert refused(capsys, "--config", str(config)) == (  # jsonargparse named it `<unicode string>`
        f"--config {config}: not valid YAML at line 3, column 1: expected ',' or ']', but got '<stream end>'")
    assert refused(capsys, "--config", str(tmp_path / "absent.yaml")) == f"--config {tmp_path / 'absent.yaml'}: no such file"


@pytest.fixture
def demo_copy(tmp_path) -> Path:
    return Path(shutil.copytree(DEMO_DIR, tmp_path / "demo", ignore=shutil.ignore_patterns("sources")))


def test_a_broken_tokenizer_names_its_path(demo_copy, tmp_path, capsys):
    tokenizer = demo_copy / "tokenizer" / "tokenizer.json"
    tokenizer.write_text('{"version": "1.0", broken')
    assert refused(capsys, *ONE_STEP, "--data.data_dir", str(demo_copy), "--run_dir", str(tmp_path / "run")).startswith(
        f"{tokenizer}: cannot be read as a tokenizer (JSONDecodeError: Expecting property name enclosed in double quotes")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # starts fit on the demo, over 3 s
def test_a_deleted_or_cut_shard_is_found_before_the_first_step(demo_copy, tmp_path, capsys):
    # A deleted train shard used to be found when the resampler first drew it, about 10 steps in, without a save.
    (demo_copy / "train-000001.tar").unlink()
    assert refused(capsys, *ONE_STEP, "--data.data_dir", str(demo_copy), "--run_dir", str(tmp_path / "run")) == (
        f"{demo_copy / 'train-000001.tar'}: not found; manifest.json lists it among the train shards (1000 samples). "
        "Restore it, or prepare the dataset again")
    shutil.copy(DEMO_DIR / "train-000001.tar", demo_copy)
    (demo_copy / "val-000000.tar").write_bytes((DEMO_DIR / "val-000000.tar").read_bytes()[:51200])
    assert refused(capsys, *ONE_STEP, "--data.data_dir", str(demo_copy), "--run_dir", str(tmp_path / "run")).startswith(
        f"{demo_copy / 'val-000000.tar'}: 51200 bytes, manifest.json records 184320 for this val shard")
    assert not (tmp_path / "run").exists()

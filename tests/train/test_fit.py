"""The main job end to end: the CLI on the shipped demo shards, exact resume, evaluation, export."""

import csv
import statistics
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from lightning_kg.cli import main
from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.model.config import ObjectiveSettings
from lightning_kg.train.module import KnowledgePretraining
from tests.demo import DEMO, SMALL
from tests.export_check import assert_export_matches

pytestmark = pytest.mark.slow  # every test here trains: the 500-step demo fit, or fits of its own


def metrics(run_dir: Path) -> list[dict]:
    return list(csv.DictReader(open(run_dir / "metrics.csv")))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A short demo fit through the CLI, as the README's first command runs it."""
    run_dir = tmp_path_factory.mktemp("runs") / "demo"
    main(["fit", "--data.data_dir", DEMO, "--trainer.enable_progress_bar", "false", "--run_dir", str(run_dir)])
    return run_dir


def test_the_demo_fit_lowers_all_four_losses(demo_run):
    rows = [r for r in metrics(demo_run) if r.get("train/mlm")]
    assert len(rows) == 50  # 500 steps, logged every 10
    for objective in ("mlm", "mep_vocab", "mep_contrastive", "oe"):
        values = [float(r[f"train/{objective}"]) for r in rows]
        first, last = statistics.mean(values[:5]), statistics.mean(values[-5:])
        assert last < 0.95 * first, (objective, first, last)
    # mep_contrastive's loss and ranks have a chance level that moves with the number of pairs in a
    # batch; its pair accuracy (the share of the batch's other knowledge texts ranked below the
    # right one) is 0.5 by chance at every step. It must start near chance, end well above it, and
    # hold on the validation split, which no step trained on (measured: 0.50 -> 0.82, val 0.66).
    pairs = [float(r["train/mep_contrastive_pair_acc"]) for r in rows]
    assert statistics.mean(pairs[:10]) < 0.6 and statistics.mean(pairs[-10:]) > 0.7, pairs
    validation = [float(r["val/mep_contrastive_pair_acc"]) for r in metrics(demo_run) if r.get("val/mep_contrastive_pair_acc")]
    assert validation[-1] > 0.6, validation


def test_the_run_directory_holds_checkpoints_config_and_logs(demo_run):
    assert [p.name for p in (demo_run / "checkpoints").glob("last*")] == ["last.ckpt"]
    assert torch.load(demo_run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 500
    assert len(list((demo_run / "checkpoints").glob("best-step=*.ckpt"))) == 1
    config = (demo_run / "config.yaml").read_text()
    assert "mep_contrastive_weight: 1.0" in config and f"data_dir: {DEMO}" in config
    assert list((demo_run / "tensorboard").glob("events.out.tfevents.*"))
    validation = [r for r in metrics(demo_run) if r.get("val/loss")]
    assert len(validation) == 2
    assert {"val/mlm_acc", "val/mep_vocab_acc10", "val/mep_contrastive_mrr", "val/oe_acc1", "val/mlm_ppl"} <= {
        k for k, v in validation[-1].items() if v}
    throughput = [r for r in metrics(demo_run) if r.get("train/device/items_per_sec")]
    assert float(throughput[-1]["train/device/items_per_sec"]) > 0
    # Train metrics through torchmetrics, over each logging window: accuracy, perplexity, MEP and OE ranks.
    train = [r for r in metrics(demo_run) if r.get("train/mlm_ppl")]
    assert len(train) == 50 and {"train/mlm_acc", "train/mep_vocab_acc10", "train/oe_mrr"} <= {k for k, v in train[-1].items() if v}
    assert float(train[-1]["train/mlm_ppl"]) < float(train[0]["train/mlm_ppl"])


def test_validate_and_test_from_a_checkpoint(demo_run, tmp_path, capsys, monkeypatch):
    ckpt = str(demo_run / "checkpoints" / "last.ckpt")
    for verb in ("validate", "test"):
        main([verb, *SMALL, "--ckpt_path", ckpt, "--run_dir", str(tmp_path / verb), "--trainer.limit_val_batches", "2",
              "--trainer.limit_test_batches", "2"])
        printed = capsys.readouterr().out
        stage = {"validate": "val", "test": "test"}[verb]  # the prefix the module logs under
        assert f"{stage}/mlm_acc" in printed, printed
    # `test` probes the checkpoint on the held-out facts as well (the probe verb's own tests check the figures).
    assert "P@1" in printed and (tmp_path / "test" / "probe" / "probe.csv").is_file()
    # With no --run_dir, the probe goes into the checkpoint's own run directory, from any working directory.
    monkeypatch.chdir(tmp_path)
    main(["test", *SMALL, "--ckpt_path", ckpt, "--trainer.limit_test_batches", "2"])
    assert (demo_run / "probe" / "probe.csv").is_file()


def test_export_from_a_checkpoint_loads_in_transformers(demo_run, tmp_path, demo_batch):
    out = tmp_path / "hf"
    main(["export", "--ckpt_path", str(demo_run / "checkpoints" / "last.ckpt"), "--out", str(out)])
    assert {"config.json", "model.safetensors", "tokenizer.json", "entity_vocab.json"} <= {p.name for p in out.iterdir()}
    module = KnowledgePretraining.load_from_checkpoint(demo_run / "checkpoints" / "last.ckpt", map_location="cpu")
    assert_export_matches(out, module.model, demo_batch)


class StopAt(Callback):
    """Stops training after ``step`` optimiser steps, as a preempted job would."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step >= self.step:
            trainer.should_stop = True


def train(tmp_path, steps, stop_at=None, ckpt_path=None, workers=0):
    L.seed_everything(0)
    data = KnowledgeDataModule(DEMO, num_workers=workers, batch_size=4, fact_batch_size=4, shuffle_buffer=50)
    model = KnowledgePretraining(vocab_size=data.vocab_size, entity_vocab_size=data.entity_vocab_size,
                                 pad_token_id=data.pad_token_id, objective_settings=ObjectiveSettings(queue_size=16), warmup_steps=2)
    callbacks = [ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=1, save_last=True)]
    if stop_at:
        callbacks.append(StopAt(stop_at))
    trainer = L.Trainer(max_steps=steps, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=callbacks, limit_val_batches=0, check_val_every_n_epoch=None, val_check_interval=100)
    trainer.fit(model, data, ckpt_path=ckpt_path)
    return model


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_continues_exactly_where_it_stopped(tmp_path, workers):
    straight = train(tmp_path / "a", 8, workers=workers)
    train(tmp_path / "b", 8, stop_at=4, workers=workers)
    resumed = train(tmp_path / "c", 8, ckpt_path=str(tmp_path / "b" / "last.ckpt"), workers=workers)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_one_last_checkpoint_resume_by_literal_last_keeps_every_metric(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # `--ckpt_path last` with no --run_dir looks in ./runs
    run_dir = Path("runs") / "first"
    base = [*SMALL, "--trainer.val_check_interval", "3", "--trainer.limit_val_batches", "1", "--checkpoint_every_n_steps", "2"]
    main(["fit", *base, "--run_dir", str(run_dir), "--trainer.max_steps", "7"])
    # Periodic saves (2, 4, 6), validation saves (3, 6) and the end (7) all write the one last.ckpt.
    saved = run_dir / "checkpoints"
    assert [p.name for p in saved.glob("last*")] == ["last.ckpt"]
    assert torch.load(saved / "last.ckpt", weights_only=True)["global_step"] == 7
    told = capsys.readouterr().out  # where the files are and what to run next
    assert f"run directory {run_dir}: checkpoints/ (last.ckpt at step 7)" in told
    assert f"python -m lightning_kg export --ckpt_path {saved / 'last.ckpt'} --out DIR" in told
    first_config = (run_dir / "config.yaml").read_text()
    # The same directory again without --ckpt_path: refused, nothing overwritten.
    with pytest.raises(SystemExit) as refused:
        main(["fit", *base, "--run_dir", str(run_dir), "--trainer.max_steps", "7"])
    assert refused.value.code == 2 and f"--run_dir {run_dir} already holds a run" in capsys.readouterr().err
    # Resume by the literal `last`: the newest run under runs/, its newest checkpoint.
    main(["fit", *base, "--ckpt_path", "last", "--trainer.max_steps", "10"])
    assert torch.load(saved / "last.ckpt", weights_only=True)["global_step"] == 10
    assert [p.name for p in saved.glob("last*")] == ["last.ckpt"]
    steps = [int(row["step"]) for row in metrics(run_dir) if row.get("train/loss")]
    assert steps == [4, 9]  # logged every 5 optimizer steps (step 4 by the first run, 9 by the resumed one)
    assert [row["step"] for row in metrics(run_dir) if row.get("val/loss")] == ["2", "5", "8"]
    assert (run_dir / "config.yaml").read_text() == first_config
    assert "max_steps: 10" in (run_dir / "config-resume-1.yaml").read_text()


def test_mluke_two_stage_schedule(demo_run, tmp_path):
    """Stage 1 trains only the entity parameters; stage 2 starts from stage 1's weights with a new optimiser."""
    ckpt = demo_run / "checkpoints" / "last.ckpt"
    data = KnowledgeDataModule(DEMO, num_workers=0, batch_size=4, fact_batch_size=4)
    stage1 = KnowledgePretraining(vocab_size=data.vocab_size, entity_vocab_size=data.entity_vocab_size,
                                  init_from=str(ckpt), train_only_entity_parameters=True, warmup_steps=0)
    trained = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    torch.testing.assert_close(stage1.state_dict()["model.encoder.layers.0.query.weight"], trained["model.encoder.layers.0.query.weight"])
    before = {k: v.clone() for k, v in stage1.state_dict().items()}
    L.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=0,
              enable_model_summary=False).fit(stage1, data)
    after = stage1.state_dict()
    assert torch.equal(after["model.encoder.layers.0.query.weight"], before["model.encoder.layers.0.query.weight"])
    assert torch.equal(after["model.mlm_head.dense.weight"], before["model.mlm_head.dense.weight"])
    assert not torch.equal(after["model.encoder.entity_embeddings.table.weight"], before["model.encoder.entity_embeddings.table.weight"])
    with pytest.raises(FileNotFoundError, match="model.init_from: .*nowhere does not exist"):
        KnowledgePretraining(vocab_size=data.vocab_size, entity_vocab_size=data.entity_vocab_size, init_from=str(tmp_path / "nowhere"))


def test_language_sampling_prints_its_table_and_validation_reports_each_language(tmp_path, capsys):
    run_dir = tmp_path / "run"
    main(["fit", *SMALL, "--data.language_sampling_alpha", "0.3", "--trainer.max_steps", "4", "--trainer.val_check_interval", "4",
          "--run_dir", str(run_dir)])
    table = (run_dir / "language_sampling.md").read_text(encoding="utf-8")
    assert table in capsys.readouterr().out and "| zh | 72 | 0.0349 | 0.0617 | 494 |" in table  # 8 rows a step
    row = [r for r in metrics(run_dir) if r.get("val_lang/mlm_acc/en")][-1]
    for name in ("mlm_loss", "mlm_acc", "mep_vocab_acc1"):
        values = [float(value) for key, value in row.items() if key.startswith(f"val_lang/{name}/") and value]
        # The whole val split (58 rows, 3 to 5 per language): every language has rows, masked tokens and entities.
        assert len(values) == 14 and all(0 <= v < 20 for v in values), name
    assert float(row["val_lang/mlm_loss/en"]) > 5  # four steps from random weights: still near log(8000) = 9

"""The LightningModule's pieces: AdamW groups, the learning-rate schedule, typed encoder overrides,
token-weighted perplexity, what an inactive objective costs, FLOPs and MFU."""

from __future__ import annotations

import csv
import json
import math
import re

import lightning as L
import pytest
import torch

from lightning_kg.cli import main
from lightning_kg.data.batches import tokens_in_batch
from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.model.config import ObjectiveSettings
from lightning_kg.runs.formats import nest_old_hparams, today_name
from lightning_kg.train.module import KnowledgePretraining, lr_schedule
from tests.demo import DEMO, ROOT, SMALL
from tests.train.recorder import FlopsSpy

OLD_RUN = ROOT / "tests" / "fixtures" / "checkpoint-711c5c4"  # written by the code before the typed model output
OLD_RUN_FLAGS = ["--data.num_workers", "0", "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
                 "--model.objective_settings.queue_size", "8", "--model.encoder", "{hidden_size: 16, intermediate_size: 32, entity_emb_size: 8}"]


@pytest.fixture(scope="module")
def demo():
    return KnowledgeDataModule(DEMO, num_workers=0, batch_size=4, fact_batch_size=4)


def module_for(data: KnowledgeDataModule, **options) -> KnowledgePretraining:
    return KnowledgePretraining(vocab_size=data.vocab_size, entity_vocab_size=data.entity_vocab_size,
                                pad_token_id=data.pad_token_id, objective_settings=ObjectiveSettings(queue_size=16), **options)


def test_adamw_decays_weight_matrices_only(demo):
    module = module_for(demo, weight_decay=0.05)
    module.trainer = L.Trainer(max_steps=10, logger=False, enable_progress_bar=False, enable_model_summary=False)
    decay, no_decay = module.configure_optimizers()["optimizer"].param_groups
    names = {id(p): name for name, p in module.model.named_parameters()}
    decayed, kept = {names[id(p)] for p in decay["params"]}, {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert decayed | kept == set(names.values()) and not decayed & kept
    # A Linear inside the entity embedding block (the 32 -> 64 projection) is a weight matrix like any other.
    assert {"encoder.entity_embeddings.dense.weight", "encoder.layers.0.query.weight", "encoder.layers.1.ffn_out.weight"} <= decayed
    # Embedding tables, norms (LayerNorm, the projection heads' BatchNorm) and every bias are not decayed.
    assert {"encoder.embeddings.word.weight", "encoder.entity_embeddings.table.weight", "encoder.entity_embeddings.position.weight",
            "encoder.embeddings.norm.weight", "encoder.layers.0.attention_norm.weight", "encoder.layers.0.query.bias"} <= kept
    assert all(not name.endswith(".bias") for name in decayed)
    assert all("norm" not in name for name in decayed)
    batch_norms = {name for name in kept if ".1.weight" in name and "_head.net." in name}
    assert batch_norms, "the projection heads' BatchNorm weights"


def test_learning_rate_warms_up_then_decays_to_zero():
    linear, cosine, constant = (lr_schedule(10, 110, kind) for kind in ("linear", "cosine", "constant"))
    assert [linear(step) for step in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert [linear(step) for step in (10, 35, 60, 110, 200)] == pytest.approx([1.0, 0.75, 0.5, 0.0, 0.0])
    assert [cosine(step) for step in (10, 35, 60, 110)] == pytest.approx([1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.0])
    assert [constant(step) for step in (0, 60, 500)] == pytest.approx([0.1, 1.0, 1.0])
    assert lr_schedule(0, None, "linear")(1000) == 1.0  # no max_steps: no decay


@pytest.mark.parametrize(("value", "message"), [
    ("{hidden_sise: 32}", "model.encoder.hidden_sise: no such encoder setting; expected one of activation_checkpointing, "),
    ("{activation_checkpointing: yes please}", r"model.encoder.activation_checkpointing is 'yes please' \(str\), expected bool"),
    ("{num_layers: 2.5}", r"model.encoder.num_layers is 2.5 \(float\), expected int"),
    ("{vocab_size: 10}", r"model.encoder.vocab_size: set from the dataset \(--data.data_dir\), not here"),
])
def test_encoder_overrides_are_checked_by_key_path(capsys, value, message):
    with pytest.raises(SystemExit) as stopped:
        main(["fit", "--data.data_dir", DEMO, "--model.encoder", value])
    assert stopped.value.code == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.slow  # builds the CLI and the data of two configs, then a forward pass each (over 3 s measured)
def test_mlm_only_builds_no_knowledge_and_counts_the_tokens_it_encodes(demo, tmp_path):
    from lightning_kg.cli import _register_resolvers
    from lightning_kg.train.main import KnowledgeCLI

    _register_resolvers()
    cli = KnowledgeCLI(["--config", str(ROOT / "conf" / "model" / "mlm-only.yaml"), *SMALL[:2], "--data.num_workers", "0",
                        "--run_dir", str(tmp_path / "run")], run=False)
    assert cli.datamodule.hparams.objectives == ["mlm"]
    assert [name for name in ("mlm_head", "entity_head", "mep_contrastive", "oe") if getattr(cli.model.model, name) is not None] == ["mlm_head"]
    cases = {"mlm only": (cli.model, cli.datamodule), "all four": (module_for(demo), demo)}
    for case, (module, data) in cases.items():
        batch = next(iter(data.train_dataloader()))
        knowledge_keys = [key for key in batch if key.startswith(("mep_", "oe_"))]
        assert (knowledge_keys == []) == (case == "mlm only"), (case, knowledge_keys)
        if case == "mlm only":  # no entity masks either: no objective reads them
            assert (batch["entity_labels"] == -100).all() and not (batch["entity_ids"] == 2).any()
        encoded = []
        hook = module.model.encoder.register_forward_pre_hook(lambda _, args, seen=encoded: seen.append(int(args[1].sum())))
        module.train()(batch)
        hook.remove()
        # Every real token of text the encoder read (rows, knowledge texts, fact queries) is counted, and
        # nothing it did not read; entity slots are inputs but no text.
        assert tokens_in_batch(batch) == sum(encoded), (case, encoded)


@pytest.mark.slow  # a Lightning validation run
def test_mlm_perplexity_weights_each_batch_by_its_masked_tokens(demo, tmp_path):
    module = module_for(demo).eval()
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=4,
                        default_root_dir=tmp_path)
    trainer.validate(module, demo, verbose=False)
    losses, masked = [], []
    with torch.no_grad():
        for batch, _ in zip(demo.val_dataloader(), range(4)):
            outputs = module.model(batch)
            losses.append(float(outputs.mlm_loss))
            masked.append(outputs.mlm_correct.numel())
    assert len(set(masked)) > 1  # batches of different sizes, or the weighting would not show
    by_token = sum(loss * n for loss, n in zip(losses, masked)) / sum(masked)
    assert float(trainer.callback_metrics["val/mlm"]) == pytest.approx(by_token, rel=1e-5)
    assert float(trainer.callback_metrics["val/mlm_ppl"]) == pytest.approx(math.exp(by_token), rel=1e-5)
    assert abs(by_token - sum(losses) / len(losses)) > 1e-4  # the per-batch mean differs


@pytest.mark.slow  # a 12-step fit through the CLI
def test_flops_and_mfu_are_logged_where_the_device_peak_is_known(tmp_path, monkeypatch):
    peak = 1e12  # a CPU has no known peak: as if it had
    monkeypatch.setattr("lightning.pytorch.callbacks.throughput_monitor.get_available_flops", lambda device, dtype: peak)
    FlopsSpy.seen.clear()
    config = tmp_path / "spy.yaml"
    config.write_text("trainer:\n  callbacks:\n    - class_path: tests.train.recorder.FlopsSpy\n")
    main(["fit", *SMALL, "--run_dir", str(tmp_path / "run"), "--trainer.max_steps", "12", "--trainer.limit_val_batches", "0",
          "--trainer.log_every_n_steps", "1", "--config", str(config)])
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    mfu = [row for row in rows if row.get("train/device/mfu")]
    assert len(FlopsSpy.seen) == 12 and all(flops > 0 for flops in FlopsSpy.seen)
    assert len(mfu) >= 8
    for row in mfu:
        assert float(row["train/device/mfu"]) == pytest.approx(float(row["train/device/flops_per_sec"]) / peak, rel=1e-6)
    # Train metrics come through torchmetrics too, perplexity included.
    logged = [row for row in rows if row.get("train/mlm_ppl")]
    assert len(logged) == 12 and all(float(row["train/mlm_ppl"]) > 1 and 0 <= float(row["train/mlm_acc"]) <= 1 for row in logged)


@pytest.mark.slow  # a 6-step fit through the CLI
def test_alternating_batches_train_one_task_a_step_and_log_only_its_losses(tmp_path):
    data = KnowledgeDataModule(DEMO, num_workers=0, batch_size=4, fact_batch_size=4, task_mixing="alternating")
    module = module_for(data)
    texts, facts = (batch for batch, _ in zip(data.train_dataloader(), range(2)))
    for batch in (texts, facts):
        # Every parameter is in the graph of either kind of batch: DDP needs no search for unused ones.
        module.model.zero_grad(set_to_none=True)
        module.model.train()(batch).loss.backward()
        assert [name for name, p in module.model.named_parameters() if p.grad is None] == []

    run_dir = tmp_path / "run"
    main(["fit", *SMALL, "--data.task_mixing", "alternating", "--trainer.max_steps", "6", "--trainer.log_every_n_steps", "1",
          "--trainer.limit_val_batches", "0", "--run_dir", str(run_dir)])
    rows = [row for row in csv.DictReader(open(run_dir / "metrics.csv")) if row.get("train/loss")]
    logged = [(bool(row["train/mlm"]), bool(row["train/mep_vocab"]), bool(row["train/oe"])) for row in rows]
    assert logged == [(True, True, False), (False, False, True)] * 3


def test_an_old_checkpoints_optimiser_state_sits_on_the_parameters_it_was_made_for():
    """AdamW's state is matched to parameters by position: today's module registers them in the order
    the old code did (``optimizer_order.json``, written by it), under the key map's names."""
    checkpoint = torch.load(OLD_RUN / "last.ckpt", map_location="cpu", weights_only=True)
    module = KnowledgePretraining(**{k: v for k, v in nest_old_hparams(checkpoint["hyper_parameters"]).items() if not k.startswith("_")})
    module.trainer = L.Trainer(max_steps=3, logger=False, enable_progress_bar=False, enable_model_summary=False)
    optimizer = module.configure_optimizers()["optimizer"]
    names = {id(p): name for name, p in module.named_parameters()}
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    old_order = json.loads((OLD_RUN / "optimizer_order.json").read_text(encoding="utf-8"))
    assert [names[id(p)] for p in parameters] == [today_name(name, "model.") for name in old_order]
    state = checkpoint["optimizer_states"][0]["state"]
    assert [state[i]["exp_avg"].shape for i in range(len(parameters))] == [p.shape for p in parameters]
    optimizer.load_state_dict(checkpoint["optimizer_states"][0])  # and torch takes it


def test_init_from_an_old_checkpoint_takes_its_weights_and_starts_the_queues_afresh(demo):
    old = torch.load(OLD_RUN / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    torch.manual_seed(0)
    module = module_for(demo, encoder={"hidden_size": 16, "intermediate_size": 32, "entity_emb_size": 8}, init_from=str(OLD_RUN / "last.ckpt"))
    state = module.state_dict()
    weights = [name for name in old if "_queue." not in name]
    assert "model.mention_projection.net.0.weight" in weights
    for name in weights:
        assert torch.equal(state[today_name(name, "model.")], old[name]), name
    assert (state["model.mep_contrastive.key_queue.entities"] == -1).all()  # fresh (the fixture's holds real entity ids)
    assert (old["model.mep_knowledge_queue.entities"] >= 0).any()


@pytest.mark.slow
def test_an_old_checkpoint_resumes_to_the_weights_the_old_code_reached(tmp_path):
    """``fit --ckpt_path`` on the old checkpoint for 2 more steps ends with every tensor where the old
    code's own resume took it (``resumed_step5_sums.json``): weights, AdamW state on the right
    parameters, queues, RNG and data position all came back. (Measured: with the two mention heads'
    AdamW states swapped, that head's weight sum is off by 1.8e-2 relative. On another CPU than the
    fixture's the sums differ by float rounding: up to 2.9e-5 relative, and attention key biases,
    which softmax leaves without a gradient, sit at 1e-7 of rounding noise whose sums differ by
    1.5e-7; hence rel 1e-4 and abs 1e-6, both far below what a wrong state gives.)"""
    main(["fit", *SMALL[:2], *OLD_RUN_FLAGS, "--ckpt_path", str(OLD_RUN / "last.ckpt"), "--trainer.max_steps", "5",
          "--run_dir", str(tmp_path / "run")])
    resumed = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["global_step"] == 5 and resumed["hyper_parameters"]["objective_settings"]["queue_size"] == 8
    sums = {name: [tensor.double().sum().item(), tensor.double().square().sum().item()]
            for name, tensor in resumed["state_dict"].items() if tensor.is_floating_point()}
    old = json.loads((OLD_RUN / "resumed_step5_sums.json").read_text(encoding="utf-8"))
    expected = {today_name(name, "model."): value for name, value in old.items()}
    assert sums.keys() == expected.keys()
    for name, value in sums.items():
        assert value == pytest.approx(expected[name], rel=1e-4, abs=1e-6), name

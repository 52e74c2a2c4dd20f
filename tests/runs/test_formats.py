"""Older checkpoint formats on load: the key map, the flat objective settings, the version stamp,
and a checkpoint the code before them wrote (tests/fixtures/checkpoint-711c5c4)."""

from pathlib import Path

import pytest
import torch
import yaml

from lightning_kg.model.config import EncoderConfig, ObjectiveSettings
from lightning_kg.model.pretraining import KnowledgePretrainingModel
from lightning_kg.runs.checkpoints import load_checkpoint_model, model_from_hparams
from lightning_kg.runs.formats import (
    FORMAT_KEY,
    FORMAT_VERSION,
    OLD_STATE_PREFIXES,
    objective_settings_of,
    rename_old_keys,
    today_name,
    upgrade,
)

OLD_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint-711c5c4"


def test_each_old_prefix_maps_to_a_name_of_todays_model():
    torch.manual_seed(0)
    today = set(KnowledgePretrainingModel(EncoderConfig.preset("tiny", 60, 20), ObjectiveSettings(queue_size=4)).state_dict())
    assert today_name("model.mention_projection.net.0.weight", "model.") == "model.mep_contrastive.query_head.net.0.weight"
    assert today_name("model.oe_object_queue.cursor", "model.") == "model.oe.key_queue.cursor"
    assert today_name("mep_knowledge_queue.vectors") == "mep_contrastive.key_queue.vectors"
    # Only under the prefix, and only old names: the rest passes unchanged.
    assert today_name("mention_projection.net.0.weight", "model.") == "mention_projection.net.0.weight"
    assert today_name("model.encoder.layers.0.query.weight", "model.") == "model.encoder.layers.0.query.weight"
    for old, new in OLD_STATE_PREFIXES:
        assert any(name.startswith(new) for name in today), new
        assert not any(name.startswith(old) for name in today), old
    state = {"a.mention_projection.x": 1, "a.encoder.y": 2, "a.oe_query_queue.z": 3}
    rename_old_keys(state, "a.")
    assert list(state.items()) == [("a.mep_contrastive.query_head.x", 1), ("a.encoder.y", 2), ("a.oe.query_queue.z", 3)]


def test_objective_settings_come_from_the_group_or_from_old_flat_keys():
    assert objective_settings_of({"size": "tiny", "oe_weight": 0.0, "queue_size": 8}) == ObjectiveSettings(oe_weight=0.0, queue_size=8)
    assert objective_settings_of({"objective_settings": {"temperature": 0.1}}) == ObjectiveSettings(temperature=0.1)
    assert objective_settings_of({"objective_settings": ObjectiveSettings(mlm_weight=2.0)}) == ObjectiveSettings(mlm_weight=2.0)
    assert objective_settings_of({}) == ObjectiveSettings()
    with pytest.raises(ValueError, match=r"both objective_settings and the old flat keys \['oe_weight'\]"):
        objective_settings_of({"objective_settings": {}, "oe_weight": 0.0})
    with pytest.raises(ValueError, match="model.objective_settings: no such setting queue_sise; expected some of mlm_weight, "):
        objective_settings_of({"objective_settings": {"queue_sise": 8}})


def test_a_model_loads_the_state_dict_of_the_code_before_under_todays_names():
    """Every tensor of the old checkpoint lands on the parameter or buffer the key map names, and
    nothing of today's model is left out (load_checkpoint_model refuses a missing or unexpected key)."""
    old = torch.load(OLD_RUN / "last.ckpt", map_location="cpu", weights_only=True)
    assert "mlm_weight" in old["hyper_parameters"] and "model.mention_projection.net.0.weight" in old["state_dict"]
    model, _ = load_checkpoint_model(OLD_RUN / "last.ckpt")
    assert model.objective_settings == ObjectiveSettings(queue_size=8) and model.config.hidden_size == 16
    today = model.state_dict()
    assert sorted(today) == sorted(today_name(name, "model.").removeprefix("model.") for name in old["state_dict"])
    for name, tensor in old["state_dict"].items():
        assert torch.equal(today[today_name(name, "model.").removeprefix("model.")], tensor), name
    # The queues came back too (the fixture's 3 steps filled some of their slots with real entity ids).
    assert (today["mep_contrastive.key_queue.entities"] >= 0).any()


def test_the_old_runs_hparams_yaml_rebuilds_the_same_model():
    """A bare state dict (DeepSpeed's zero_to_fp32) is rebuilt from the run's hparams.yaml, flat keys and all."""
    hparams = yaml.safe_load((OLD_RUN / "hparams.yaml").read_text(encoding="utf-8"))
    model = model_from_hparams(hparams)
    assert model.objective_settings.queue_size == 8 and model.mep_contrastive.key_queue.vectors.shape == (8, 16)
    assert model.encoder.embeddings.word.weight.shape == (hparams["vocab_size"], 16)


def test_an_older_checkpoint_is_brought_to_todays_format_and_a_newer_one_refused():
    old = torch.load(OLD_RUN / "last.ckpt", map_location="cpu", weights_only=True)
    assert FORMAT_KEY not in old  # version 1: written before checkpoints carried their format
    upgrade(old)
    assert old[FORMAT_KEY] == FORMAT_VERSION == 2
    assert "model.mep_contrastive.query_head.net.0.weight" in old["state_dict"]
    assert not any(today_name(name, "model.") != name for name in old["state_dict"])
    assert old["hyper_parameters"]["objective_settings"]["queue_size"] == 8 and "mlm_weight" not in old["hyper_parameters"]
    with pytest.raises(ValueError, match=r"checkpoint format 3 is newer than this lightning_kg reads \(2\); update lightning_kg"):
        upgrade({FORMAT_KEY: 3, "state_dict": {}})


def test_a_training_checkpoint_records_todays_format():
    from lightning_kg.train.module import KnowledgePretraining

    checkpoint = {}
    KnowledgePretraining(vocab_size=60, entity_vocab_size=20, objective_settings={"queue_size": 4}).on_save_checkpoint(checkpoint)
    assert checkpoint[FORMAT_KEY] == FORMAT_VERSION

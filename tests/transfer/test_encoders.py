"""Every encoder transfer starts from gives word and entity states of the right shapes, offline."""

import json
import logging
import shutil

import pytest
import torch

from lightning_kg.export.main import export
from lightning_kg.transfer.encoders import OurEncoder, check_head, load_encoder
from tests.demo import DEMO
from tests.probe.checkpoint_factory import write_checkpoint

WORDS = torch.tensor([[0, 900, 901, 902, 2], [0, 903, 2, 1, 1]])
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])


def entity_inputs(mask_id):
    return {"entity_ids": torch.tensor([[mask_id], [mask_id]]), "entity_position_ids": torch.tensor([[[1, 2]], [[1, -1]]]),
            "entity_attention_mask": torch.ones(2, 1, dtype=torch.long)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("run") / "checkpoints" / "last.ckpt")


def test_our_checkpoint_gives_word_and_entity_states(checkpoint):
    loaded = load_encoder(str(checkpoint))
    assert isinstance(loaded.encoder, OurEncoder) and str(loaded.data_dir) == DEMO
    words, entities = loaded.encoder.eval()(WORDS, MASK, **entity_inputs(loaded.encoder.mask_id))
    assert words.shape == (2, 5, 64) and entities.shape == (2, 1, 64)


def test_random_init_has_the_checkpoints_size_but_not_its_weights(checkpoint):
    trained = load_encoder(str(checkpoint)).encoder
    torch.manual_seed(1)  # the checkpoint's untrained weights were drawn at seed 0
    fresh = load_encoder(str(checkpoint), random_init=True).encoder
    assert fresh.encoder.config == trained.encoder.config
    assert not torch.equal(fresh.encoder.layers[0].query.weight, trained.encoder.layers[0].query.weight)


def test_mask2_is_added_from_mask_with_one_warning(checkpoint, caplog):
    encoder = load_encoder(str(checkpoint)).encoder
    rows = encoder.entity_table().num_embeddings
    with caplog.at_level(logging.WARNING, logger="lightning_kg.transfer.encoders"):
        assert encoder.add_mask2() == rows and encoder.add_mask2() == rows
    assert torch.equal(encoder.entity_table().weight[rows], encoder.entity_table().weight[encoder.mask_id])
    assert [r.message for r in caplog.records] == [
        f"the entity vocabulary has no [MASK2]: added row {rows}, initialised from [MASK]'s (row 2), "
        "for the relation head's tail entity, as LUKE's fine-tuning does"]


def test_our_export_loads_as_luke_with_the_same_states(checkpoint, tmp_path):
    ours = load_encoder(str(checkpoint)).encoder.eval()
    exported = load_encoder(str(export(str(checkpoint), str(tmp_path / "hf")))).encoder.eval()
    assert type(exported).__name__ == "HfLukeEncoder" and exported.mask_id == 2 and exported.mask2_id is None
    with torch.no_grad():
        expected, got = ours(WORDS, MASK, **entity_inputs(2)), exported(WORDS, MASK, **entity_inputs(2))
    torch.testing.assert_close(got[0][MASK.bool()], expected[0][MASK.bool()], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got[1], expected[1], atol=1e-4, rtol=1e-4)


def test_a_luke_directory_with_its_own_mask2_keeps_it(tmp_path):
    from transformers import LukeConfig, LukeModel

    config = LukeConfig(vocab_size=8003, entity_vocab_size=5, hidden_size=32, entity_emb_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64)
    LukeModel(config).save_pretrained(tmp_path)
    (tmp_path / "entity_vocab.json").write_text(json.dumps({"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "[MASK2]": 3}))
    shutil.copytree(f"{DEMO}/tokenizer", tmp_path, dirs_exist_ok=True)
    loaded = load_encoder(str(tmp_path))
    assert (loaded.encoder.mask_id, loaded.encoder.add_mask2()) == (2, 3)
    words, entities = loaded.encoder.eval()(WORDS, MASK, **entity_inputs(3))
    assert words.shape == (2, 5, 32) and entities.shape == (2, 1, 32)


def test_xlmr_is_word_only_and_refuses_the_entity_head(tmp_path):
    from transformers import XLMRobertaConfig, XLMRobertaModel

    config = XLMRobertaConfig(vocab_size=8003, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=514)
    XLMRobertaModel(config).save_pretrained(tmp_path)
    shutil.copytree(f"{DEMO}/tokenizer", tmp_path, dirs_exist_ok=True)
    loaded = load_encoder(str(tmp_path))
    words, entities = loaded.encoder.eval()(WORDS, MASK)
    assert words.shape == (2, 5, 32) and entities is None
    check_head(loaded, "ner", "word")
    with pytest.raises(ValueError, match=r"--head entity: AutoModel \(xlm-roberta\) .* is a word-only encoder"):
        check_head(loaded, "ner", "entity")


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"ckpt_path: {tmp_path / 'nope'} not found"):
        load_encoder(str(tmp_path / "nope"))

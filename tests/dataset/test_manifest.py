import json
import shutil
from pathlib import Path

import pytest

from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.dataset.manifest import DatasetMismatchError, check_shards, current_hashes

DEMO = Path(__file__).resolve().parents[2] / "shards" / "demo"


@pytest.fixture
def demo_copy(tmp_path) -> Path:
    copy = tmp_path / "demo"
    shutil.copytree(DEMO, copy, ignore=shutil.ignore_patterns("sources", ".work"))  # the shards too: setup checks them
    return copy


def test_the_shipped_demo_matches_its_manifest():
    assert current_hashes(DEMO) == json.loads((DEMO / "manifest.json").read_text())["hashes"]


def test_a_swapped_entity_vocabulary_is_refused_with_both_hashes(demo_copy):
    recorded = json.loads((demo_copy / "manifest.json").read_text())["hashes"]["entity_vocab"]
    vocab = demo_copy / "entity_vocab.jsonl"
    vocab.write_text(vocab.read_text().replace('"count": ', '"count": 1', 1))
    with pytest.raises(DatasetMismatchError) as refused:
        KnowledgeDataModule(str(demo_copy), num_workers=0).setup("fit")
    message = str(refused.value)
    assert "entity_vocab.jsonl does not belong to the shards" in message
    # Whole hashes, so that either can be searched for (manifest.json, a checkpoint's dataset_hashes).
    assert f"records sha256 {recorded}, the files hash to {current_hashes(demo_copy)['entity_vocab']};" in message
    assert "--data.allow_mismatch true" in message
    with pytest.warns(UserWarning, match="allow_mismatch"):
        KnowledgeDataModule(str(demo_copy), num_workers=0, allow_mismatch=True).setup("fit")


def test_a_checkpoint_from_another_dataset_is_refused(demo_copy):
    data = KnowledgeDataModule(str(demo_copy), num_workers=0)
    state = data.state_dict()
    assert state["dataset_hashes"] == current_hashes(demo_copy)
    data.load_state_dict(state)  # its own: accepted
    other = {**state, "dataset_hashes": {**state["dataset_hashes"], "tokenizer": "ab" * 32}}
    with pytest.raises(DatasetMismatchError, match=rf"trained with a tokenizer of sha256 {'ab' * 32}, .* has "
                       + state["dataset_hashes"]["tokenizer"] + ";"):
        data.load_state_dict(other)


def test_every_shard_the_manifest_lists_is_checked_at_setup_without_reading_it(demo_copy):
    manifest = json.loads((demo_copy / "manifest.json").read_text())
    check_shards(demo_copy, manifest, list(manifest["shards"]))
    # A shard deleted under the dataset used to be found when the resampler first drew it, steps in.
    (demo_copy / "train-000001.tar").unlink()
    with pytest.raises(DatasetMismatchError, match=rf"^{demo_copy / 'train-000001.tar'}: not found; manifest.json lists it among "
                       r"the train shards \(1000 samples\)\. Restore it, or prepare the dataset again$"):
        KnowledgeDataModule(str(demo_copy), num_workers=0).setup("fit")
    check_shards(demo_copy, manifest, ["val", "facts-train"])  # only the splits asked for
    # Cut short (or another dataset's): the size the manifest records, from a stat.
    val = demo_copy / "val-000000.tar"
    val.write_bytes(val.read_bytes()[:10240])
    with pytest.raises(DatasetMismatchError, match=rf"^{val}: 10240 bytes, manifest.json records 184320 for this val shard"):
        check_shards(demo_copy, manifest, ["val"])
    # Facts are read only for oe: without it their shards are not checked.
    (demo_copy / "facts-val-000000.tar").unlink()
    data = KnowledgeDataModule(str(demo_copy), num_workers=0, objectives=["mlm", "mep_vocab"],
                               train_shards="train-000000.tar", val_shards=str(DEMO / "val-000000.tar"))
    data.setup("fit")

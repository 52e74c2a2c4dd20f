import io

import numpy as np
import pytest
import torch

import lightning_kg.data.datamodule as datamodule_module
from lightning_kg.data.datamodule import KnowledgeDataModule, decode_text_sample, expand_urls
from tests.factories import prepare_tiny


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return prepare_tiny(tmp_path_factory.mktemp("dm"), val_fraction=0.4, shard_max_samples=1)


def batches(dm, count):
    iterator = iter(dm.train_dataloader())
    return [next(iterator) for _ in range(count)]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_stream_continues_exactly(dataset, workers):
    options = dict(num_workers=workers, batch_size=3, fact_batch_size=2, shuffle_buffer=5)
    straight = batches(KnowledgeDataModule(str(dataset), **options), 6)
    first = KnowledgeDataModule(str(dataset), **options)
    head = batches(first, 3)
    state = first.state_dict() | {"consumed_batches": 3}
    resumed = KnowledgeDataModule(str(dataset), **options)
    resumed.load_state_dict(state)
    tail = batches(resumed, 3)
    for expected, got in zip(straight, head + tail):
        assert expected.keys() == got.keys()
        for key in expected:
            assert torch.equal(expected[key], got[key]), key
    # Different seeds give different streams, so the equality above means something.
    other = batches(KnowledgeDataModule(str(dataset), **options, seed=1), 1)[0]
    assert not torch.equal(other["input_ids"], straight[0]["input_ids"]) or not torch.equal(other["mlm_labels"], straight[0]["mlm_labels"])


def test_resume_with_another_worker_count_is_refused(dataset):
    dm = KnowledgeDataModule(str(dataset), num_workers=2)
    dm.load_state_dict({"consumed_batches": 4, "lanes": 1, "seed": 0})
    with pytest.raises(ValueError, match="--data.num_workers 0"):
        dm.train_dataloader()


def test_every_batch_holds_text_rows_and_facts(dataset):
    (batch,) = batches(KnowledgeDataModule(str(dataset), num_workers=0, batch_size=4, fact_batch_size=2), 1)
    assert batch["input_ids"].shape[0] == 4 and batch["input_ids"].shape[1] % 8 == 0
    assert batch["oe_query_ids"].shape[0] == 2 and batch["oe_objects"].min() > 2


def test_two_ranks_see_disjoint_validation_samples(dataset, monkeypatch):
    real_decode = datamodule_module.decode_text_sample

    def keys_seen(rank, world):
        keys = []

        def recording(raw, *args):
            keys.append(raw["__key__"])
            return real_decode(raw, *args)

        monkeypatch.setattr(datamodule_module, "decode_text_sample", recording)
        monkeypatch.setattr(datamodule_module, "_rank_and_world", lambda: (rank, world))
        list(KnowledgeDataModule(str(dataset), num_workers=0, batch_size=2).val_dataloader())
        return keys

    alone, first, second = keys_seen(0, 1), keys_seen(0, 2), keys_seen(1, 2)
    assert first and second and not set(first) & set(second)
    assert sorted(first + second) == sorted(alone)


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_bad_samples_name_the_shard_the_key_and_the_expectation():
    good = {"__url__": "s3://b/train-000007.tar", "__key__": "abc-0001", "json": b'{"lang": "en", "mentions": [[1, 3, 9]]}',
            "input_ids.npy": npy(np.array([0, 5, 6, 2], np.int32))}
    assert decode_text_sample(good, 100, 10)["mentions"].tolist() == [[1, 3, 9]]
    cases = [
        ({"json": None}, r"s3://b/train-000007.tar: sample abc-0001: no 'json' member"),
        ({"json": b'{"lang": "en"}'}, r"json has no \"mentions\" list"),
        ({"input_ids.npy": npy(np.array([0, 5, 2], np.int64))}, r"input_ids is int64 \(3,\), expected int32"),
        ({"json": b'{"mentions": [[1, 3, 10]]}'}, r"entity index 10 outside the entity vocabulary of 10"),
        ({"json": b'{"mentions": [[1, 9, 5]]}'}, r"mention span lies outside the tokens 1..3"),
        ({"input_ids.npy": npy(np.array([0, 500, 2], np.int32))}, r"token id 500 outside the tokenizer's 100 ids"),
    ]
    for change, message in cases:
        raw = {k: v for k, v in (good | change).items() if v is not None}
        with pytest.raises(ValueError, match=message):
            decode_text_sample(raw, 100, 10)


def test_url_specs_expand_braces_globs_and_pipes(dataset, tmp_path):
    names = sorted(p.name for p in dataset.glob("train-*.tar"))
    assert len(names) >= 2
    assert expand_urls(f"train-{{000000..00000{len(names) - 1}}}.tar", dataset) == [str(dataset / n) for n in names]
    assert expand_urls("train-*.tar", dataset) == [str(dataset / n) for n in names]
    assert expand_urls("pipe:cat /x/train-{000000..000001}.tar", dataset) == ["pipe:cat /x/train-000000.tar", "pipe:cat /x/train-000001.tar"]
    with pytest.raises(FileNotFoundError, match="train-999999.tar"):
        expand_urls("train-999999.tar", dataset)


def test_pipe_urls_stream_through_a_command(dataset):
    dm = KnowledgeDataModule(str(dataset), num_workers=0, batch_size=2, train_shards=f"pipe:cat {dataset}/train-000000.tar")
    (batch,) = batches(dm, 1)
    assert batch["input_ids"].shape[0] == 2


def test_a_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json not found. Prepare a dataset"):
        KnowledgeDataModule(str(tmp_path / "none"))

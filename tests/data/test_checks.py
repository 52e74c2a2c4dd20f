"""Bad shards and samples: errors that name the shard, the key and what was expected; training's
skip policy (counted, warned, capped by max_bad_fraction, logged); exact resume past bad data."""

import csv
import json
import re
import shutil
import tarfile
import warnings

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from lightning_kg.data.checks import BadDataError, BadSampleError, BadShardError
from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.model.config import ObjectiveSettings
from lightning_kg.recipes.synthetic_shards import fact_sample, make_dataset, npy, text_sample, write_shard
from lightning_kg.train.module import KnowledgePretraining
from tests.data.batch_compare import assert_same, batches

EXPECTED_TAR = "expected a tar of samples as docs/FORMATS.md describes"
CUT_SHORT = "expected the whole tar (was a copy or a write cut short?)"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("checks") / "dataset", train_shards=2, val_shards=2)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A text shard of 12 good samples and one with three bad ones among the same 12; a fact shard of
    4 good facts and one with a bad fact before them. With shuffling off, a stream of the bad ones
    must give the batches of the good ones."""
    out = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(1)
    good = [text_sample(f"{i:016x}-0000", rng, 40) for i in range(12)]
    no_json = {k: v for k, v in text_sample("bad0000000000001-0000", rng, 40).items() if k != "json"}
    wrong_dtype = text_sample("bad0000000000002-0000", rng, 40) | {"input_ids.npy": npy(np.array([0, 5, 6, 2], np.int64))}
    unknown_entity = text_sample("bad0000000000003-0000", rng, 40) | {
        "json": json.dumps({"lang": "en", "mentions": [[1, 2, 40]]}).encode()}
    facts = [fact_sample(rng, 40) for _ in range(4)]
    bad_fact = fact_sample(rng, 40)
    bad_fact["json"] = json.dumps(json.loads(bad_fact["json"]) | {"object": 99}).encode()
    bad_fact["__key__"] = "3-P36-99-en"
    paths = {name: out / f"{name}.tar" for name in ("good", "mixed", "facts", "mixed-facts")}
    write_shard(paths["good"], good)
    write_shard(paths["mixed"], good[:1] + [no_json] + good[1:5] + [wrong_dtype, unknown_entity] + good[5:])
    write_shard(paths["facts"], facts)
    write_shard(paths["mixed-facts"], [bad_fact] + facts)
    return {name: str(path) for name, path in paths.items()}


def copy_of(dataset, tmp_path):
    return shutil.copytree(dataset, tmp_path / "dataset")


def tar_offsets(path):
    """(header offset, data offset) of each member of a tar."""
    with tarfile.open(path) as tar:
        return [(member.offset, member.offset_data) for member in tar.getmembers()]


def cut_inside_a_member(path):
    # Members 0-3 are samples 0 and 1; the cut is in the data of member 4. WebDataset hands on a
    # sample when the next one's first member arrives, so sample 1 is lost with the rest.
    data = path.read_bytes()
    path.write_bytes(data[:tar_offsets(path)[4][1] + 10])


def cut_inside_a_header(path):
    # tarfile reads a tar cut inside a header block as a shorter, valid tar: only the manifest's count shows it.
    data = path.read_bytes()
    path.write_bytes(data[:tar_offsets(path)[6][0] + 100])


SHARD_FAULTS = {
    "missing": (lambda path: path.unlink(), rf"cannot read the shard \(No such file or directory\); {EXPECTED_TAR}"),
    "empty": (lambda path: path.write_bytes(b""), f"the shard is empty; {EXPECTED_TAR}"),
    "not a tar": (lambda path: path.write_bytes(b'{"not": "a tar"}\n' * 64),
                  rf"the shard is not a tar file \(invalid header\); {EXPECTED_TAR}"),
    "truncated inside a member": (cut_inside_a_member,
                                  rf"the shard is truncated: its tar ends inside a member after 1 sample\(s\); {re.escape(CUT_SHORT)}"),
    "truncated inside a header": (cut_inside_a_header,
                                  rf"the shard ends after 3 sample\(s\), manifest.json lists 24; {re.escape(CUT_SHORT)}"),
}


@pytest.mark.parametrize("fault", SHARD_FAULTS)
def test_a_bad_shard_stops_validation_naming_the_url_and_the_expectation(dataset, tmp_path, fault):
    data_dir = copy_of(dataset, tmp_path)
    corrupt, message = SHARD_FAULTS[fault]
    corrupt(data_dir / "val-000000.tar")
    dm = KnowledgeDataModule(str(data_dir), num_workers=0, batch_size=4)  # training's policy is skip: validation still fails
    with pytest.raises(BadShardError, match="^" + re.escape(str(data_dir / "val-000000.tar")) + ": " + message + "$"):
        list(dm.val_dataloader())


def test_a_failing_pipe_command_names_its_url_and_exit_status(dataset, tmp_path):
    # The command dies before writing: its status, not "the shard is empty", whatever the timing.
    url = f"pipe:cat {tmp_path}/nowhere.tar 2>/dev/null"
    dm = KnowledgeDataModule(str(dataset), num_workers=0, val_shards=url)
    with pytest.raises(BadShardError, match=f"^{re.escape(url)}: cannot read the shard: the command exited with status 1"):
        list(dm.val_dataloader())
    # The command writes a whole tar, then fails (a download that reports an error at the end).
    url = f"pipe:cat {dataset}/val-000000.tar; exit 3"
    dm = KnowledgeDataModule(str(dataset), num_workers=0, val_shards=url)
    with pytest.raises(BadShardError, match=f"^{re.escape(url)}: cannot read the shard: the command exited with status 3"):
        list(dm.val_dataloader())
    # The same tar from a command that succeeds reads whole.
    dm = KnowledgeDataModule(str(dataset), num_workers=0, batch_size=4, val_shards=f"pipe:cat {dataset}/val-000000.tar")
    assert sum(len(batch["input_ids"]) for batch in dm.val_dataloader()) == 24


SAMPLE_FAULTS = {
    "missing a member": ({"json": None}, r"no 'json' member \(members: \['input_ids.npy'\]\)"),
    "wrong dtype": ({"input_ids.npy": npy(np.array([0, 5, 6, 2], np.int64))},
                    r"input_ids is int64 \(4,\), expected int32 \(S,\) with 2 <= S <= 64"),
    "longer than max_seq_length": ({"input_ids.npy": npy(np.array([0] + [5] * 63 + [2], np.int32))},
                                   r"input_ids is int32 \(65,\), expected int32 \(S,\) with 2 <= S <= 64"),
    "entity outside the vocabulary": ({"json": json.dumps({"lang": "en", "mentions": [[1, 2, 40]]}).encode()},
                                      r"entity index 40 in mentions, expected \[UNK\] \(1\) or 3..39 "
                                      r"\(do the shards belong to this entity_vocab.jsonl\?\)"),
}


@pytest.mark.parametrize("fault", SAMPLE_FAULTS)
def test_a_bad_sample_stops_validation_naming_the_shard_the_key_and_the_expectation(dataset, tmp_path, fault):
    change, message = SAMPLE_FAULTS[fault]
    rng = np.random.default_rng(0)
    samples = [text_sample(f"{i:016x}-0000", rng, 40) for i in range(3)]
    samples[1] = {k: v for k, v in (samples[1] | change).items() if v is not None}
    write_shard(tmp_path / "val-bad.tar", samples)
    dm = KnowledgeDataModule(str(dataset), num_workers=0, batch_size=2, val_shards=str(tmp_path / "val-bad.tar"))
    with pytest.raises(BadSampleError, match=f"^{re.escape(str(tmp_path / 'val-bad.tar'))}: sample 0000000000000001-0000: {message}$"):
        list(dm.val_dataloader())


def test_training_skips_bad_samples_warns_and_counts_them_in_the_batch(dataset, shards):
    options = dict(num_workers=0, batch_size=4, fact_batch_size=2, shuffle_buffer=0, max_bad_fraction=0.2)
    clean = batches(KnowledgeDataModule(str(dataset), train_shards=shards["good"], train_fact_shards=shards["facts"], **options), 4)
    with pytest.warns(UserWarning) as caught:
        mixed = batches(KnowledgeDataModule(str(dataset), train_shards=shards["mixed"],
                                            train_fact_shards=shards["mixed-facts"], **options), 4)
    # The good samples, in the same batches with the same masks, as if the bad ones were not there.
    assert_same(clean, mixed, ignore=["bad_samples"])
    # Text rows g0 B g1..g3 | g4 B B g5..g7 | g8..g11 | g0 B g1..g3; facts B f0 f1 | f2 f3 | B f0 f1 | f2 f3.
    assert [int(b["bad_samples"]) for b in mixed] == [2, 2, 1, 1]
    assert all(b["bad_samples"].dtype == torch.int64 and b["bad_samples"].ndim == 0 for b in mixed)
    messages = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert messages[:4] == [
        f"{shards['mixed']}: sample bad0000000000001-0000: no 'json' member (members: ['input_ids.npy'])\n"
        "skipped (1 of 2 samples read by this loader worker were bad)",
        f"{shards['mixed-facts']}: sample 3-P36-99-en: json \"object\" is 99, expected an entity index in 3..39\n"
        "skipped (2 of 6 samples read by this loader worker were bad)",
        f"{shards['mixed']}: sample bad0000000000002-0000: input_ids is int64 (4,), expected int32 (S,) with 2 <= S <= 64\n"
        "skipped (3 of 10 samples read by this loader worker were bad)",
        f"{shards['mixed']}: sample bad0000000000003-0000: entity index 40 in mentions, expected [UNK] (1) or 3..39 "
        "(do the shards belong to this entity_vocab.jsonl?)\nskipped (4 of 11 samples read by this loader worker were bad)",
    ]
    assert len(messages) == sum(int(b["bad_samples"]) for b in mixed)


def test_more_bad_samples_than_max_bad_fraction_stop_training(dataset, shards):
    dm = KnowledgeDataModule(str(dataset), num_workers=0, batch_size=4, fact_batch_size=2, shuffle_buffer=0,
                             train_shards=shards["mixed"], train_fact_shards=shards["mixed-facts"])  # the default: 0.01
    # One bad sample in the first 100 is allowed, the second is not: rows g0 B g1 g2 g3, then the bad fact.
    with pytest.warns(UserWarning, match="bad0000000000001-0000"), pytest.raises(BadDataError) as raised:
        batches(dm, 1)
    assert str(raised.value) == (
        f"{shards['mixed-facts']}: sample 3-P36-99-en: json \"object\" is 99, expected an entity index in 3..39\n"
        "2 of 6 samples read by this loader worker were bad: more than data.max_bad_fraction=0.01 (of at least 100), "
        "so training stops")


def test_the_fail_policy_stops_training_at_the_first_bad_sample(dataset, shards):
    dm = KnowledgeDataModule(str(dataset), num_workers=0, batch_size=4, shuffle_buffer=0, train_shards=shards["mixed"],
                             train_fact_shards=shards["facts"], bad_samples="fail")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(BadSampleError, match=f"^{re.escape(shards['mixed'])}: sample bad0000000000001-0000: no 'json' member"):
            batches(dm, 1)
    assert not [w for w in caught if "skipped" in str(w.message)]  # nothing was skipped


def test_an_unreadable_training_shard_is_skipped_and_counted(dataset, shards, tmp_path):
    (tmp_path / "not-a-tar.tar").write_bytes(b"<html>403 Forbidden</html>\n" * 40)
    options = dict(num_workers=0, batch_size=4, fact_batch_size=2, shuffle_buffer=0, train_fact_shards=shards["facts"])
    clean = batches(KnowledgeDataModule(str(dataset), train_shards=shards["good"], **options), 8)
    with pytest.warns(UserWarning, match=f"^{re.escape(str(tmp_path / 'not-a-tar.tar'))}: the shard is not a tar file"):
        mixed = batches(KnowledgeDataModule(str(dataset), train_shards=[shards["good"], str(tmp_path / "not-a-tar.tar")],
                                            max_bad_fraction=0.2, **options), 8)
    # Each time the resampler draws the bad shard, it counts as one bad sample (the manifest does not list it).
    assert_same(clean, mixed, ignore=["bad_samples"])
    assert sum(int(b["bad_samples"]) for b in mixed) > 0


def test_a_missing_training_shard_counts_as_the_samples_the_manifest_lists(dataset, tmp_path):
    data_dir = copy_of(dataset, tmp_path)
    (data_dir / "train-000001.tar").unlink()
    dm = KnowledgeDataModule(str(data_dir), num_workers=0, batch_size=4, shuffle_buffer=0)
    with pytest.raises(BadDataError) as raised:
        batches(dm, 20)
    first, summary = str(raised.value).split("\n")
    assert first == f"{data_dir / 'train-000001.tar'}: cannot read the shard (No such file or directory); {EXPECTED_TAR}"
    assert re.fullmatch(r"24 of \d+ samples read by this loader worker were bad: more than data.max_bad_fraction=0.01 "
                        r"\(of at least 100\), so training stops", summary)


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])  # 2: loader worker processes
def test_a_resumed_stream_skips_the_same_bad_data(dataset, shards, tmp_path, workers):
    (tmp_path / "empty.tar").write_bytes(b"")
    options = dict(num_workers=workers, batch_size=3, fact_batch_size=2, shuffle_buffer=20, max_bad_fraction=0.3,
                   train_shards=[shards["mixed"], shards["good"], str(tmp_path / "empty.tar")], train_fact_shards=shards["mixed-facts"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        straight = batches(KnowledgeDataModule(str(dataset), **options), 8)
        resumed = KnowledgeDataModule(str(dataset), **options)
        resumed.load_state_dict({"consumed_batches": 5, "lanes": max(1, workers), "seed": 0})
        assert_same(straight[5:], batches(resumed, 3))
    assert sum(int(b["bad_samples"]) for b in straight[5:]) > 0  # the resumed part met bad data too


@pytest.mark.slow  # fits on bad shards, over 3 s
def test_the_count_reaches_the_logs_as_a_running_total(dataset, shards, tmp_path):
    dm = KnowledgeDataModule(str(dataset), num_workers=0, batch_size=4, fact_batch_size=2, shuffle_buffer=0,
                             max_bad_fraction=0.2, train_shards=shards["mixed"], train_fact_shards=shards["mixed-facts"])
    model = KnowledgePretraining(vocab_size=dm.vocab_size, entity_vocab_size=dm.entity_vocab_size,
                                 pad_token_id=dm.pad_token_id, objective_settings=ObjectiveSettings(queue_size=8), warmup_steps=1)
    trainer = L.Trainer(max_steps=4, accelerator="cpu", logger=CSVLogger(tmp_path, name="", version=""),
                        log_every_n_steps=2, limit_val_batches=0, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    synced_at, log = [], model.log

    def spy(name, value, **options):  # which steps ask for a reduction over ranks (a collective under DDP)
        if options.get("sync_dist"):
            synced_at.append((trainer.global_step, name))
        return log(name, value, **options)

    model.log = spy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, datamodule=dm)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    # Steps of 2, 2, 1 and 1 bad samples; the logger writes every second step and misses none of them.
    assert [(int(r["step"]), float(r["train/bad_samples"])) for r in rows if r.get("train/bad_samples")] == [(1, 4.0), (3, 6.0)]
    # Summed over ranks only at the steps the logger writes (global_step has advanced by then), not every step.
    assert [step for step, name in synced_at if name == "train/bad_samples"] == [2, 4]


def test_the_policy_is_checked(dataset):
    with pytest.raises(ValueError, match="data.bad_samples is 'ignore', expected 'fail' or 'skip'"):
        KnowledgeDataModule(str(dataset), bad_samples="ignore")
    with pytest.raises(ValueError, match=r"data.max_bad_fraction is 1.0, expected a share in \[0, 1\)"):
        KnowledgeDataModule(str(dataset), max_bad_fraction=1.0)

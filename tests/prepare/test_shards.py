import json
import tarfile

import numpy as np
import pytest
import webdataset as wds

from lightning_kg.dataset.files import file_sha256
from lightning_kg.prepare.shards import ShardJournal, ShardSink


def samples(n):
    for i in range(n):
        yield {"__key__": f"doc{i:03d}-0000", "input_ids.npy": np.arange(i + 3, dtype=np.int32),
               "mentions.npy": np.zeros((0, 3), np.int32), "json": {"lang": "bg", "title": f"Страница {i}"}}


def write(directory, n=25, max_samples=10):
    journal = ShardJournal(directory / "journal.jsonl")
    sink = ShardSink(directory, "train", journal, max_samples=max_samples, max_bytes=1 << 30)
    for sample in samples(n):
        sink.write(sample)
    return sink.close()


def test_shards_read_back_with_webdataset_and_tar(tmp_path):
    infos = write(tmp_path)
    assert [(i.name, i.samples) for i in infos] == [("train-000000.tar", 10), ("train-000001.tar", 10), ("train-000002.tar", 5)]
    for info in infos:
        assert file_sha256(tmp_path / info.name) == info.sha256
        with tarfile.open(tmp_path / info.name) as tar:
            assert len(tar.getnames()) == 3 * info.samples
    dataset = wds.WebDataset([str(tmp_path / i.name) for i in infos], shardshuffle=False).decode()
    read = list(dataset)
    assert [s["__key__"] for s in read] == [s["__key__"] for s in samples(25)]
    assert read[4]["input_ids.npy"].tolist() == list(range(7)) and read[4]["input_ids.npy"].dtype == np.int32
    assert read[4]["json"] == {"lang": "bg", "title": "Страница 4"}


def test_size_bound_starts_a_new_shard(tmp_path):
    journal = ShardJournal(tmp_path / "journal.jsonl")
    sink = ShardSink(tmp_path, "val", journal, max_samples=1000, max_bytes=4 * 1024)
    for sample in samples(10):
        sink.write(sample)
    infos = sink.close()
    assert len(infos) > 1 and sum(i.samples for i in infos) == 10
    assert all(i.bytes <= 4 * 1024 + 1024 * 10 for i in infos)  # tar adds its end-of-archive blocks


def test_same_samples_give_byte_identical_shards(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, second = write(tmp_path / "a"), write(tmp_path / "b")
    assert len(first) > 1 and [i.sha256 for i in first] == [i.sha256 for i in second]


def test_restart_skips_finished_shards_and_replaces_partial_ones(tmp_path):
    first = write(tmp_path)
    finished = tmp_path / "train-000000.tar"
    before = finished.stat().st_mtime_ns
    # A crash while writing shard 2: its partial file lies around and the journal lacks it.
    journal_lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    (tmp_path / "journal.jsonl").write_text("\n".join(journal_lines[:2]) + "\n")
    (tmp_path / "train-000002.tar").unlink()
    (tmp_path / "train-000002.tar.partial").write_bytes(b"half a shard")
    second = write(tmp_path)
    assert finished.stat().st_mtime_ns == before
    assert [i.sha256 for i in second] == [i.sha256 for i in first]
    assert json.loads((tmp_path / "journal.jsonl").read_text().splitlines()[-1])["name"] == "train-000002.tar"


def test_a_sample_with_an_unknown_extension_is_refused(tmp_path):
    sink = ShardSink(tmp_path, "train", ShardJournal(tmp_path / "j.jsonl"), 10, 1 << 20)
    with pytest.raises(ValueError, match=r"sample k: no encoding for 'input_ids.pt'"):
        sink.write({"__key__": "k", "input_ids.pt": b""})


def test_a_journal_line_torn_by_a_kill_is_ignored_and_the_shard_rewritten(tmp_path):
    first = write(tmp_path)
    journal = tmp_path / "journal.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])  # killed while appending the third line
    assert sorted(ShardJournal(journal).finished) == ["train-000000.tar", "train-000001.tar"]
    second = write(tmp_path)
    assert [i.sha256 for i in second] == [i.sha256 for i in first]
    assert [json.loads(line)["name"] for line in journal.read_text().splitlines()] == [i.name for i in first]


def test_a_broken_line_inside_a_journal_is_an_error_naming_it(tmp_path):
    write(tmp_path)
    journal = tmp_path / "journal.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"journal.jsonl:2: not a shard journal line"):
        ShardJournal(journal)


def test_journal_lines_of_another_fingerprint_are_not_finished_work(tmp_path):
    journal = ShardJournal(tmp_path / "journal.jsonl", fingerprint="old")
    sink = ShardSink(tmp_path, "train", journal, max_samples=10, max_bytes=1 << 30)
    for sample in samples(5):
        sink.write(sample)
    sink.close()
    assert list(ShardJournal(tmp_path / "journal.jsonl", fingerprint="old").finished) == ["train-000000.tar"]
    assert ShardJournal(tmp_path / "journal.jsonl", fingerprint="new").finished == {}


def test_each_shard_counts_its_samples_per_language_and_the_journal_keeps_them(tmp_path):
    journal = ShardJournal(tmp_path / "journal.jsonl")
    sink = ShardSink(tmp_path, "train", journal, max_samples=4, max_bytes=1 << 30)
    for number, sample in enumerate(samples(6)):
        sink.write(sample | {"json": {"lang": "sw" if number in (1, 4) else "en", "title": "t"}})
    assert [info.languages for info in sink.close()] == [{"en": 3, "sw": 1}, {"en": 1, "sw": 1}]
    assert ShardJournal(tmp_path / "journal.jsonl").finished["train-000000.tar"].languages == {"en": 3, "sw": 1}

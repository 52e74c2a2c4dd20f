"""Wikidata decoded in worker processes reads what one process reads: the same knowledge base and
the same bad lines, in order, though the workers test the link targets by hash; a file cut short
is an error, which says how far it was read."""

import gzip
import pickle
import time
from dataclasses import asdict

import pytest

from lightning_kg.prepare import chunk_pool
from lightning_kg.prepare.chunk_pool import ChunkPool, KeyFilter, any_of
from lightning_kg.prepare.knowledge_base import KnowledgeBase
from lightning_kg.prepare.wikidata import Selection, WikidataInputError, iter_entities
from tests.factories import wikidata_dump
from tests.prepare.wikidata_chunks import LINKED, SITES, many_entities, write_gz


def read_all(path, workers: int, monkeypatch, chunk_bytes: int = 1 << 22):
    """The three passes as the merge runs them, and the bad lines reported."""
    monkeypatch.setattr("lightning_kg.prepare.dumps.CHUNK_BYTES", chunk_bytes)
    bad = []
    with ChunkPool(workers) as pool:
        kb = KnowledgeBase.from_dumps([str(path)], {"en", "bg"}, SITES, on_error=bad.append, linked=LINKED, pool=pool)
        kb.add_items([str(path)], {"Q17", "Q1007"}, {"en", "bg"}, pool)
        kb.add_labels([str(path)], kb.keep_only({"Q17", "Q1007"}), {"en", "bg"}, pool)
    return kb, [str(record) for record in bad]


def test_key_filter_holds_every_key_and_pickles_as_its_path(tmp_path):
    keys = {("enwiki", f"Title {n}") for n in range(5000)} | {"Q42"}
    found = KeyFilter.write(keys, tmp_path / "keys.npy")
    copy = pickle.loads(pickle.dumps(found))
    assert all(key in copy for key in keys)
    assert sum(("enwiki", f"Other {n}") in copy for n in range(5000)) == 0
    assert len(pickle.dumps(found)) < 1000 < len(keys) * 8  # the path, not the 40 KB of hashes


def test_a_filter_answers_lists_of_keys_as_a_set_does(tmp_path):
    keys = {("enwiki", f"Title {n}") for n in range(100)}
    lists = [[], [("enwiki", "Title 5")], [("enwiki", "Other"), ("enwiki", "Title 99")], [("dewiki", "Title 5")], []]
    assert any_of(KeyFilter.write(keys, tmp_path / "keys.npy"), lists) == any_of(keys, lists) == [False, True, True, False, False]
    assert any_of(KeyFilter.write([], tmp_path / "none.npy"), lists) == [False] * 5
    assert any_of(KeyFilter.write(keys, tmp_path / "keys.npy"), []) == []


def lines_slowly(chunk) -> list[bytes]:
    """A chunk's lines, slowly in a worker (its slots are set there): the reader gets ahead of it."""
    if chunk_pool.SLOTS:
        time.sleep(0.02)
    return [bytes(line) for line in chunk.lines(chunk_pool.SLOTS)[:-1]]


def test_the_reading_process_decodes_chunks_itself_while_the_workers_are_busy(tmp_path, monkeypatch):
    monkeypatch.setattr("lightning_kg.prepare.dumps.CHUNK_BYTES", 4096)
    path = write_gz(tmp_path / "wikidata.json.gz", many_entities(300), broken_line=False)
    with ChunkPool(2) as pool:
        lines = [line for chunk in pool.map_lines(lines_slowly, path) for line in chunk]
    assert lines == gzip.decompress(path.read_bytes()).split(b"\n")[:-1]  # every line once, in order
    assert pool.chunks["here"] > 5 and pool.chunks["workers"] > 5, pool.chunks


def test_two_workers_read_what_one_reads(tmp_path, monkeypatch):
    path = write_gz(tmp_path / "wikidata.json.gz", many_entities(300))
    one, bad_one = read_all(path, 1, monkeypatch)
    two, bad_two = read_all(path, 2, monkeypatch, chunk_bytes=4096)  # some 30 chunks across the workers
    assert asdict(one) == asdict(two) and bad_one == bad_two
    assert [record.split(":", 1)[1][:7] for record in bad_one] == ["line 4:", "line 13", "line 15"]  # in line order
    assert set(one.titles) == {"Q17", "Q1490", "Q1007"} and set(one.facts) == {"Q17", "Q1007"}


def test_lines_a_filter_lets_through_are_still_checked_against_the_set(tmp_path):
    """A KeyFilter may say yes to a key not in the set (a hash collision): the reader turns it away."""

    class Everything(ChunkPool):
        def shared_keys(self, keys):
            return type("All", (), {"__contains__": lambda self, key: True})()

    path = write_gz(tmp_path / "wikidata.json.gz", many_entities(20), broken_line=False)
    selection = Selection(LINKED, tuple(SITES))
    exact_bad, let_through_bad = [], []
    exact = [entity.id for entity in iter_entities(path, exact_bad.append, selection=selection)]
    with Everything() as pool:
        assert [entity.id for entity in iter_entities(path, let_through_bad.append, selection=selection, pool=pool)] == exact
    assert let_through_bad == exact_bad and len(exact_bad) == 2
    assert "Q1007" in exact and "Q1008" not in exact


@pytest.mark.parametrize("workers", [1, 2])
def test_a_dump_cut_short_is_an_error_even_with_accept_bad(tmp_path, workers):
    whole = gzip.compress(wikidata_dump(many_entities(3000), broken_line=False).encode("utf-8"), mtime=0)
    path = tmp_path / "wikidata.json.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with ChunkPool(workers) as pool, pytest.raises(WikidataInputError, match=r"wikidata.json.gz: cut short "
                                                                                r"\(Compressed file ended.*download it again"):
        list(iter_entities(path, pool=pool, accept_bad=True))  # accept_bad does not cover a cut file


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_is_told_the_compressed_bytes_read_up_to_the_file_size(tmp_path, monkeypatch, workers):
    monkeypatch.setattr("lightning_kg.prepare.dumps.CHUNK_BYTES", 4096)
    path = write_gz(tmp_path / "wikidata.json.gz", many_entities(300))
    told = []
    with ChunkPool(workers) as pool:
        assert len(list(iter_entities(path, lambda record: None, pool=pool, progress=told.append))) == 304
    assert len(told) > 5 and told == sorted(told) and told[-1] == path.stat().st_size

"""A pass killed part way resumes from its journal: the chunks it finished are replayed, not
decoded again, and the pass reads what an uninterrupted one reads, with 1 and 2 workers."""

import gzip
from dataclasses import asdict

import pytest

from lightning_kg.prepare.chunk_journal import ChunkJournal, journal_path, remove_journals
from lightning_kg.prepare.chunk_pool import ChunkPool
from lightning_kg.prepare.knowledge_base import KnowledgeBase
from tests.prepare.wikidata_chunks import LINKED, SITES, many_entities, write_gz


class Killed(Exception):
    """Stands for the process being killed at that point."""


def test_a_journal_replays_what_was_appended_and_drops_a_torn_frame(tmp_path):
    path = tmp_path / "pass.journal"
    journal = ChunkJournal(path, "key 1")
    assert list(journal.replay()) == []
    journal.append({"chunk": 0})
    journal.append((1, [b"x"]))
    journal.close()
    whole = path.stat().st_size
    with open(path, "ab") as file:  # the kill cut the next frame short
        file.write(b"\x40\x00\x00\x00\x00\x00\x00\x00partial")
    again = ChunkJournal(path, "key 1")
    assert list(again.replay()) == [{"chunk": 0}, (1, [b"x"])] and again.replayed == 2 and not again.complete
    again.append("two")
    again.finish()
    again.close()
    assert path.stat().st_size > whole
    last = ChunkJournal(path, "key 1")
    assert list(last.replay()) == [{"chunk": 0}, (1, [b"x"]), "two"] and last.complete


def test_a_journal_of_other_settings_starts_over(tmp_path):
    path = tmp_path / "pass.journal"
    old = ChunkJournal(path, "old settings")
    old.append("old result")
    old.close()
    new = ChunkJournal(path, "new settings")
    assert list(new.replay()) == [] and new.replayed == 0
    new.append("new result")
    new.close()
    assert list(ChunkJournal(path, "new settings").replay()) == ["new result"]
    assert list(ChunkJournal(path, "old settings").replay()) == []


def three_passes(path, pool, work_dir, kill_after: int | None = None):
    """The merge's three passes, each journaled; ``kill_after``: the pass-2 chunks appended before the kill."""
    if kill_after is not None:
        appended = []
        original = ChunkJournal.append

        def append(journal, result):
            if journal.path.name.startswith("items-"):
                if len(appended) == kill_after:
                    raise Killed(f"after {kill_after} chunks")
                appended.append(1)
            original(journal, result)

        ChunkJournal.append = append
    try:
        with pool.journaled(work_dir, "first", "run"):
            kb = KnowledgeBase.from_dumps([str(path)], {"en", "bg"}, SITES, on_error=lambda record: None, linked=LINKED, pool=pool)
        with pool.journaled(work_dir, "items", "run"):
            kb.add_items([str(path)], {"Q17", "Q1007", "Q1100", "Q1250"}, {"en", "bg"}, pool)
        with pool.journaled(work_dir, "labels", "run"):
            kb.add_labels([str(path)], kb.keep_only({"Q17", "Q1007", "Q1100", "Q1250"}), {"en", "bg"}, pool)
    finally:
        if kill_after is not None:
            ChunkJournal.append = original
    return kb


@pytest.mark.parametrize("workers", [1, 2])
def test_a_pass_killed_part_way_resumes_after_the_chunks_it_finished(tmp_path, monkeypatch, workers):
    monkeypatch.setattr("lightning_kg.prepare.dumps.CHUNK_BYTES", 4096)
    path = write_gz(tmp_path / "wikidata.json.gz", many_entities(300))
    (tmp_path / "clean").mkdir()
    with ChunkPool(workers) as pool:
        clean = three_passes(path, pool, tmp_path / "clean")
        per_pass = pool.chunks["here"] + pool.chunks["workers"]
        assert per_pass >= 3 * 20, pool.chunks  # some 25 chunks a pass
    chunks = per_pass // 3
    work = tmp_path / "work"
    work.mkdir()
    with ChunkPool(workers) as pool, pytest.raises(Killed):
        three_passes(path, pool, work, kill_after=10)
    with ChunkPool(workers) as pool:
        resumed = three_passes(path, pool, work)
        # Pass 1 was read to its end: replayed whole; pass 2 from its 11th chunk; pass 3 afresh.
        assert pool.chunks["journal"] == chunks + 10
        assert pool.chunks["here"] + pool.chunks["workers"] == (chunks - 10) + chunks
    assert asdict(resumed) == asdict(clean)
    assert {"Q1100", "Q1250"} <= set(resumed.facts)
    remove_journals(work, "items")
    assert not journal_path(work, "items", path).exists() and journal_path(work, "first", path).exists()


def test_a_replayed_dump_is_not_read_again(tmp_path, monkeypatch):
    monkeypatch.setattr("lightning_kg.prepare.dumps.CHUNK_BYTES", 4096)
    path = write_gz(tmp_path / "wikidata.json.gz", many_entities(100), broken_line=False)
    with ChunkPool() as pool, pool.journaled(tmp_path, "count", "run"):
        first = list(pool.map_lines(lambda chunk: len(chunk.lines()), path))
    path.write_bytes(gzip.compress(b"not what was journaled"))  # read again, this would be other results
    with ChunkPool() as pool, pool.journaled(tmp_path, "count", "run"):
        assert list(pool.map_lines(lambda chunk: len(chunk.lines()), path)) == first
        assert pool.chunks == {"here": 0, "workers": 0, "journal": len(first)}

"""A run killed in any stage, then started again, ends with the files of an uninterrupted run and
reuses the stages that had finished (the log names them)."""

import logging

import pytest

import lightning_kg.prepare.cached_steps as cached_steps
import lightning_kg.prepare.manifest as manifest
import lightning_kg.prepare.parse as parsing
from lightning_kg.prepare.chunk_journal import ChunkJournal
from lightning_kg.prepare.knowledge_base import KnowledgeBase
from lightning_kg.prepare.pipeline import prepare
from tests.factories import config, write_dumps


class Killed(Exception):
    """Stands for the process being killed at that point."""


def outputs(out):
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and ".work" not in p.parts}


def kill_when_written(monkeypatch, name):
    """Kill the run right before it records ``name`` (all the stage's other work done)."""
    original = cached_steps.write_json

    def write_json(path, *args, **kwargs):
        if path.name == name:
            raise Killed(name)
        return original(path, *args, **kwargs)

    for module in (cached_steps, manifest):  # the stages' records, and the manifest
        monkeypatch.setattr(module, "write_json", write_json)


def kill_second_dump(monkeypatch):
    original, calls = parsing.parse_dump, []

    def parse_dump(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Killed("parse")
        return original(*args, **kwargs)

    monkeypatch.setattr(parsing, "parse_dump", parse_dump)


# stage killed -> what the rerun must say it reused
CASES = {"parse": [], "merge": ["parse"], "write": ["parse", "merge"], "manifest": ["parse", "merge", "write"]}


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(CASES))
def test_a_kill_in_each_stage_then_a_rerun_gives_the_same_files(stage, tmp_path, monkeypatch, caplog):
    dumps = write_dumps(tmp_path / "dumps")
    prepare(config(dumps, tmp_path / "clean", shard_max_samples=2))
    with monkeypatch.context() as patch:
        if stage == "parse":
            kill_second_dump(patch)
        else:
            kill_when_written(patch, {"merge": "merge.json", "write": "text-000.json", "manifest": "manifest.json"}[stage])
        with pytest.raises(Killed):
            prepare(config(dumps, tmp_path / "out", shard_max_samples=2))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lightning_kg.prepare"):
        prepare(config(dumps, tmp_path / "out", shard_max_samples=2))
    assert outputs(tmp_path / "out") == outputs(tmp_path / "clean")
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stages reused")]
    assert said == ([f"stages reused from an earlier run: {', '.join(CASES[stage])}"] if CASES[stage] else [])
    if stage == "parse":  # the dump parsed before the kill is reused on its own
        assert sum("parsed by an earlier run, reused" in r.getMessage() for r in caplog.records) == 1
    if stage == "merge":  # killed after its Wikidata passes: they are not read again
        assert [r.getMessage() for r in caplog.records if "of an earlier run reused" in r.getMessage()] == [
            "wikidata: the first pass of an earlier run reused", "wikidata: the second and third passes of an earlier run reused"]


@pytest.mark.slow
def test_a_kill_in_the_second_wikidata_pass_reuses_the_first(tmp_path, monkeypatch, caplog):
    dumps = write_dumps(tmp_path / "dumps")
    prepare(config(dumps, tmp_path / "clean", shard_max_samples=2))
    with monkeypatch.context() as patch:
        def add_items(*args, **kwargs):
            raise Killed("second pass")

        patch.setattr(KnowledgeBase, "add_items", add_items)
        with pytest.raises(Killed):
            prepare(config(dumps, tmp_path / "out", shard_max_samples=2))
    with caplog.at_level(logging.INFO, logger="lightning_kg.prepare"):
        prepare(config(dumps, tmp_path / "out", shard_max_samples=2))
    assert outputs(tmp_path / "out") == outputs(tmp_path / "clean")
    assert [r.getMessage() for r in caplog.records if "of an earlier run reused" in r.getMessage()] == [
        "wikidata: the first pass of an earlier run reused"]


@pytest.mark.slow
def test_a_kill_part_way_through_a_wikidata_pass_resumes_it_from_its_journal(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("lightning_kg.prepare.dumps.CHUNK_BYTES", 512)  # the factory's dump in a few chunks
    dumps = write_dumps(tmp_path / "dumps")
    prepare(config(dumps, tmp_path / "clean", shard_max_samples=2))
    with monkeypatch.context() as patch:
        original, appended = ChunkJournal.append, []

        def append(journal, result):
            if journal.path.name.startswith("wikidata-items-"):
                if len(appended) == 2:
                    raise Killed("second pass, third chunk")
                appended.append(1)
            original(journal, result)

        patch.setattr(ChunkJournal, "append", append)
        with pytest.raises(Killed):
            prepare(config(dumps, tmp_path / "out", shard_max_samples=2))
    assert sorted(p.name.split("-")[1] for p in (tmp_path / "out" / ".work").glob("*.journal")) == ["items"]
    with caplog.at_level(logging.INFO, logger="lightning_kg.prepare"):
        prepare(config(dumps, tmp_path / "out", shard_max_samples=2))
    assert outputs(tmp_path / "out") == outputs(tmp_path / "clean")
    said = [r.getMessage() for r in caplog.records if "wikidata: " in r.getMessage() and "earlier run" in r.getMessage()]
    assert said == ["wikidata: the first pass of an earlier run reused",
                    "wikidata: items pass resumed: 2 chunks from the journal of an earlier run"]
    assert not list((tmp_path / "out" / ".work").glob("*.journal"))  # removed once the passes were recorded
    # A kill between a pass's record and its journals' removal leaves them: the next run removes them.
    (tmp_path / "out" / ".work" / "wikidata-items-0123456789ab.journal").write_bytes(b"left")
    (tmp_path / "out" / "merge.json").unlink(missing_ok=True)
    (tmp_path / "out" / ".work" / "merge.json").unlink()
    prepare(config(dumps, tmp_path / "out", shard_max_samples=2))
    assert not list((tmp_path / "out" / ".work").glob("*.journal"))

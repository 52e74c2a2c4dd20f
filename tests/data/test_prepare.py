"""End to end: real-format dumps (written here) -> vocabulary, tokenizer, knowledge table, shards."""

import json
import tarfile

import numpy as np
import pytest
import webdataset as wds

from lightning_kg.data.dumps import DumpError
from lightning_kg.data.entity_vocab import EntityVocab
from lightning_kg.data.knowledge import KnowledgeTable
from lightning_kg.data.prepare import prepare
from tests.factories import config, write_dumps


@pytest.fixture()
def dumps(tmp_path):
    return write_dumps(tmp_path / "dumps")


def read_shards(out, split):
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    urls = [str(out / s["name"]) for s in manifest["shards"][split]]
    return list(wds.WebDataset(urls, shardshuffle=False).decode()) if urls else []


def test_links_in_two_languages_resolve_to_one_entity(dumps, tmp_path):
    out = tmp_path / "out"
    manifest = prepare(config(dumps, out))
    vocab = EntityVocab.load(out / "entity_vocab.jsonl")
    # Japan: en x3 (one through the Nippon redirect) + bg x1; the category page does not count.
    japan = vocab.index("Q17")
    assert vocab.counts[japan] == 4 and vocab.titles[japan] == {"bg": "Япония", "en": "Japan"}
    assert vocab.counts[vocab.index("Q1490")] == 5  # Tokyo, lower-case "tokyo" link included
    assert vocab.index("en:Mongolia") > 2  # no Wikidata item: keyed lang:Title
    texts = read_shards(out, "train")
    assert {s["json"]["lang"] for s in texts} == {"en", "bg"}
    bulgarian = [m[2] for s in texts if s["json"]["lang"] == "bg" for m in s["json"]["mentions"]]
    # Азия and Токио from the article Япония, Токио and Япония from the article Токио.
    assert sorted(bulgarian) == sorted([vocab.index("Q48"), vocab.index("Q1490"), vocab.index("Q1490"), japan])
    assert manifest["counts"]["skipped_records"] == 1  # the broken Wikidata line


def test_shards_match_the_manifest_through_tar_and_webdataset(dumps, tmp_path):
    out = tmp_path / "out"
    manifest = prepare(config(dumps, out))
    for split, shards in manifest["shards"].items():
        for shard in shards:
            with tarfile.open(out / shard["name"]) as tar:
                keys = {name.split(".", 1)[0] for name in tar.getnames()}
            assert len(keys) == shard["samples"], shard
        assert len(read_shards(out, split)) == sum(s["samples"] for s in shards)
    assert manifest["languages"] == ["bg", "en"]
    assert set(manifest["hashes"]) == {"tokenizer", "entity_vocab", "knowledge"}
    for sample in read_shards(out, "train"):
        ids, mentions = sample["input_ids.npy"], np.asarray(sample["json"]["mentions"]).reshape(-1, 3)
        assert ids.dtype == np.int32 and len(ids) <= 32 and mentions.shape[1] == 3
        assert (mentions[:, 0] >= 1).all() and (mentions[:, 1] <= len(ids) - 1).all()


def test_facts_and_knowledge_texts(dumps, tmp_path):
    out = tmp_path / "out"
    prepare(config(dumps, out))
    vocab = EntityVocab.load(out / "entity_vocab.jsonl")
    facts = read_shards(out, "facts-train")
    capital = sorted((f["json"]["lang"], f["json"]["relation_label"], f["json"]["object_label"]) for f in facts if f["json"]["relation"] == "P36")
    assert capital == [("bg", "столица", "Токио"), ("en", "capital", "Tokyo")]
    table = KnowledgeTable.load(out)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    japan_en = tokenizer.decode(table.text(vocab.index("Q17"), "en"), skip_special_tokens=True)
    assert "Japan" in japan_en and "East Asia" in japan_en
    # Tokyo has no description: its text is composed from its facts.
    tokyo_bg = tokenizer.decode(table.text(vocab.index("Q1490"), "bg"), skip_special_tokens=True)
    assert "държава" in tokyo_bg and "Япония" in tokyo_bg


def test_held_out_facts_never_reach_training(dumps, tmp_path):
    out = tmp_path / "out"
    manifest = prepare(config(dumps, out, heldout_fact_fraction=1.0))
    assert manifest["counts"]["facts"].get("train", 0) == 0 and manifest["counts"]["facts"]["heldout"] > 0
    vocab = EntityVocab.load(out / "entity_vocab.jsonl")
    table = KnowledgeTable.load(out)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    # Held-out facts are not used to compose knowledge texts either.
    assert "Япония" not in tokenizer.decode(table.text(vocab.index("Q1490"), "bg"), skip_special_tokens=True)


def test_same_inputs_give_byte_identical_output(dumps, tmp_path):
    prepare(config(dumps, tmp_path / "a"))
    prepare(config(dumps, tmp_path / "b"))
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file() and ".work" not in p.parts)
    assert any(str(f).startswith("train-") for f in files)
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_restart_keeps_finished_shards(dumps, tmp_path):
    out = tmp_path / "out"
    first = prepare(config(dumps, out, shard_max_samples=1))
    names = [s["name"] for s in first["shards"]["train"]]
    assert len(names) >= 2
    kept = {n: (out / n).stat().st_mtime_ns for n in names[:-1]}
    (out / names[-1]).unlink()  # as if killed while writing the last shard
    second = prepare(config(dumps, out, shard_max_samples=1))
    assert {n: (out / n).stat().st_mtime_ns for n in names[:-1]} == kept
    assert second["shards"] == first["shards"]


def test_strict_mode_stops_at_the_broken_line(dumps, tmp_path):
    with pytest.raises(DumpError, match=r"wikidata.json.bz2:line 4"):
        prepare(config(dumps, tmp_path / "out", strict=True))


def test_clear_errors_for_missing_inputs_and_unwritable_output(dumps, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        prepare(config(dumps, tmp_path / "out", wikipedia=[str(tmp_path / "nothing-here*.xml")]))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="cannot write to output directory"):
        prepare(config(dumps, blocker / "out"))


def test_slices_on_a_slurm_array_give_the_same_samples_as_one_machine(dumps, tmp_path):
    whole = prepare(config(dumps, tmp_path / "whole"))
    sliced_out = tmp_path / "sliced"
    for stage, slices in (("parse", range(2)), ("merge", [0]), ("write", range(2)), ("manifest", [0])):
        for number in slices:
            prepare(config(dumps, sliced_out, stage=stage, slice=number, num_slices=2))
    sliced = json.loads((sliced_out / "manifest.json").read_text(encoding="utf-8"))
    assert sliced["hashes"] == whole["hashes"] and sliced["counts"] == whole["counts"]
    # Slice 1 numbers its shards from 10000, so the two slices never write the same name.
    assert any(s["name"].startswith("train-01") for s in sliced["shards"]["train"])

    def samples(out):
        return sorted((s["__key__"], s["input_ids.npy"].tobytes(), json.dumps(s["json"], sort_keys=True))
                      for split in ("train", "val") for s in read_shards(out, split))

    assert samples(sliced_out) == samples(tmp_path / "whole")


def test_stages_out_of_order_say_what_to_run_first(dumps, tmp_path):
    with pytest.raises(FileNotFoundError, match="run the parse stage for every slice first"):
        prepare(config(dumps, tmp_path / "out", stage="merge", num_slices=2))
    prepare(config(dumps, tmp_path / "out", stage="parse", slice=0, num_slices=1))
    with pytest.raises(FileNotFoundError, match="run the merge stage before writing shards"):
        prepare(config(dumps, tmp_path / "out", stage="write"))

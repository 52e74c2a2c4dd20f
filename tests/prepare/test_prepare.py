"""End to end: real-format dumps (written here) -> vocabulary, tokenizer, knowledge table, shards."""

import bz2
import json
import re
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import webdataset as wds

from lightning_kg.dataset.entity_vocab import EntityVocab
from lightning_kg.dataset.knowledge import KnowledgeTable
from lightning_kg.prepare import pipeline
from lightning_kg.prepare import write as write_stage
from lightning_kg.prepare.dumps import DumpError
from lightning_kg.prepare.pipeline import prepare
from lightning_kg.prepare.shards import stable_fraction
from tests.factories import EN_PAGES, ENTITIES, config, item, page, wikidata_dump, write_dumps, xml_dump


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


def test_a_write_slice_holds_the_summaries_without_their_link_counts(dumps, tmp_path, monkeypatch):
    """Only the merge reads the link counts and redirects, nearly all of a summary's size."""
    out = tmp_path / "out"
    for stage in ("parse", "merge"):
        prepare(config(dumps, out, stage=stage))
    given, write_text_shards = [], write_stage.write_text_shards

    def spy(out, work_dir, summaries, *args, **kwargs):
        given.extend(set(summary) for summary in summaries.values())
        return write_text_shards(out, work_dir, summaries, *args, **kwargs)

    monkeypatch.setattr(write_stage, "write_text_shards", spy)
    prepare(config(dumps, out, stage="write"))
    assert len(given) == 2 and all({"site", "lang", "articles"} <= keys and not keys & set(pipeline.LINK_KEYS) for keys in given)
    assert list(out.glob("train-*.tar"))  # and the slice wrote its shards


def test_stages_out_of_order_say_what_to_run_first(dumps, tmp_path):
    with pytest.raises(FileNotFoundError, match="run the parse stage for every slice first"):
        prepare(config(dumps, tmp_path / "out", stage="merge", num_slices=2))
    for number in range(2):
        prepare(config(dumps, tmp_path / "out", stage="parse", slice=number, num_slices=2))
    with pytest.raises(FileNotFoundError, match="merge.json not found: run the merge stage before writing shards"):
        prepare(config(dumps, tmp_path / "out", stage="write", num_slices=2))


def written_files(out):
    """Every output file but the scratch work, as {relative name: bytes}."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and ".work" not in p.parts}


def many_pages(count, lang="en"):
    """``count`` short articles linking to each other, so text spreads over several parse chunks."""
    return [page(f"Page {i}", f"Page {i} is linked to [[Page {(i + 1) % count}]] and [[Page {(i * 7) % count}|another]]. "
                              f"It has a second sentence.\n\n[[Category:Test]]") for i in range(count)]


def test_changed_settings_redo_what_they_affect_and_nothing_stale_stays(dumps, tmp_path, caplog):
    out = tmp_path / "out"
    first = prepare(config(dumps, out, max_seq_length=32, shard_max_samples=1))
    parsed = {p.name: p.stat().st_mtime_ns for p in (out / ".work").glob("docs-*")}
    second = prepare(config(dumps, out, max_seq_length=64))
    assert "prepared with other settings or inputs (max_seq_length 32 -> 64; shard_max_samples 1 -> 4)" in caplog.text
    fresh = prepare(config(dumps, tmp_path / "fresh", max_seq_length=64))
    assert second["shards"] == fresh["shards"] and written_files(out) == written_files(tmp_path / "fresh")
    assert len(first["shards"]["train"]) > len(second["shards"]["train"])  # the extra old shards are gone, not left beside
    assert {p.name: p.stat().st_mtime_ns for p in (out / ".work").glob("docs-*")} == parsed  # parsing did not depend on it
    other = tmp_path / "other"
    capped = prepare(config(dumps, other, max_pages=1))
    assert capped["counts"]["articles"] == 2
    uncapped = prepare(config(dumps, other, max_pages=None))
    assert uncapped["counts"]["articles"] == 5
    # A dump rewritten with other content under the same name is another input: parsed again.
    (dumps / "enwiki-pages-articles.xml.bz2").write_bytes(bz2.compress(xml_dump("en", EN_PAGES + [page("Mongolia", "[[Asia]] [[Asia]]")]).encode()))
    rewritten = prepare(config(dumps, other))
    assert rewritten["counts"]["articles"] == 6


def test_work_of_other_settings_is_never_reused_even_without_the_fingerprint_file(dumps, tmp_path):
    out = tmp_path / "out"
    prepare(config(dumps, out, max_pages=1, shard_max_samples=1))
    (out / ".work" / "fingerprint.json").unlink()  # as if someone deleted it to get past the check
    again = prepare(config(dumps, out, max_pages=None, shard_max_samples=1))
    fresh = prepare(config(dumps, tmp_path / "fresh", max_pages=None, shard_max_samples=1))
    assert again["counts"]["articles"] == fresh["counts"]["articles"] == 5
    assert again["shards"] == fresh["shards"]


@pytest.mark.slow  # a pool of two worker processes
def test_workers_give_byte_identical_output(tmp_path):
    """Two workers, within one dump (chunks of pages) and across dumps (a file each), write exactly
    what one process writes, manifest included."""
    source = tmp_path / "dumps"
    source.mkdir()
    (source / "enwiki-pages-articles.xml.bz2").write_bytes(bz2.compress(xml_dump("en", many_pages(300)).encode()))
    one_file = dict(wikipedia=[str(source / "enwiki-pages-articles.xml.bz2")], wikidata=[], languages=None)
    prepare(config(source, tmp_path / "w1", **one_file))
    prepare(config(source, tmp_path / "w2", workers=2, **one_file))
    serial = written_files(tmp_path / "w1")
    assert serial == written_files(tmp_path / "w2")
    assert json.loads(serial["manifest.json"])["counts"]["articles"] == 300
    (source / "dewiki-pages-articles.xml").write_text(xml_dump("de", many_pages(50, "de")), encoding="utf-8")
    two_files = dict(wikipedia=[str(source / "*wiki-pages-articles.xml*")], wikidata=[], languages=None)
    prepare(config(source, tmp_path / "f1", **two_files))
    prepare(config(source, tmp_path / "f2", workers=2, **two_files))
    assert written_files(tmp_path / "f1") == written_files(tmp_path / "f2")


class RecordingBar:
    """Stands in for tqdm: records each update with how many pages the reader had yielded by then."""

    updates: list[tuple[int, int]] = []
    pages_read = 0

    def __init__(self, *args, **kwargs):
        RecordingBar.updates = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, count):
        RecordingBar.updates.append((count, RecordingBar.pages_read))


# With 2 workers the pages are parsed in worker processes.
@pytest.mark.parametrize("workers, files", [(1, 1), pytest.param(2, 1, marks=pytest.mark.slow), pytest.param(2, 2, marks=pytest.mark.slow)])
def test_progress_moves_while_a_dump_is_read(tmp_path, monkeypatch, workers, files):
    import lightning_kg.prepare.parse as parsing

    source = tmp_path / "dumps"
    source.mkdir()
    for lang in ["en", "de"][:files]:
        (source / f"{lang}wiki-pages-articles.xml").write_text(xml_dump(lang, many_pages(200)), encoding="utf-8")
    reader = parsing.iter_pages

    def counting_reader(*args, **kwargs):
        for parsed in reader(*args, **kwargs):
            RecordingBar.pages_read += 1
            yield parsed

    RecordingBar.pages_read = 0
    # Small chunks and little read-ahead, so 200 pages make many chunks (a real dump has millions).
    monkeypatch.setattr(parsing, "CHUNK_PAGES", 4)
    monkeypatch.setattr("lightning_kg.prepare.chunk_pool.IN_FLIGHT_PER_WORKER", 1)
    monkeypatch.setattr(parsing, "tqdm", RecordingBar)
    monkeypatch.setattr(parsing, "iter_pages", counting_reader)
    parsing.parse_dumps([str(p) for p in sorted(source.iterdir())], list(range(files)), tmp_path, None, workers, False, "f")
    updates = RecordingBar.updates
    assert sum(count for count, _ in updates) == 200 * files
    assert len(updates) >= 10 and max(count for count, _ in updates) <= parsing.PROGRESS_EVERY
    if files == 1:  # this process reads: the bar moved long before the reader reached the end
        assert updates[len(updates) // 2][1] < 200


def test_wikis_whose_site_id_is_not_their_language(tmp_path):
    """nowiki writes xml:lang nb and simplewiki en: sitelinks are keyed by the site id, labels by the language."""
    source = tmp_path / "dumps"
    source.mkdir()
    nowiki = xml_dump("nb", [page("Japan", "'''Japan''' er et land i [[Asia]]. Hovedstaden er [[Tokyo]]."),
                             page("Tokyo", "[[Tokyo]] ligger i [[Japan]].")]).replace("<dbname>nbwiki", "<dbname>nowiki")
    (source / "nowiki-pages-articles.xml").write_text(nowiki, encoding="utf-8")
    simple = xml_dump("en", [page("Japan", "'''Japan''' is a country in [[Asia]]. Its capital is [[Tokyo City|Tokyo]].")])
    (source / "simplewiki-pages-articles.xml").write_text(simple.replace("<dbname>enwiki", "<dbname>simplewiki"), encoding="utf-8")
    entities = [item("Q17", {"nb": "Japan", "en": "Japan"}, [("nowiki", "Japan"), ("simplewiki", "Japan"), ("enwiki", "Japan")]),
                item("Q1490", {"nb": "Tokyo", "en": "Tokyo"}, [("nowiki", "Tokyo"), ("simplewiki", "Tokyo City")]),
                item("Q48", {"nb": "Asia", "en": "Asia"}, [("nowiki", "Asia"), ("simplewiki", "Asia")])]
    (source / "wikidata.json").write_text(wikidata_dump(entities, broken_line=False), encoding="utf-8")
    out = tmp_path / "out"
    manifest = prepare(config(source, out, wikipedia=[str(source / "*wiki-pages-articles.xml")], wikidata=[str(source / "wikidata.json")],
                              languages=None))
    vocab = EntityVocab.load(out / "entity_vocab.jsonl")
    assert manifest["languages"] == ["en", "nb"]
    # Tokyo: 2 links in nowiki + 1 in simplewiki (as "Tokyo City"), Asia 1 + 1, Japan 1; no nb:/en: keys.
    assert vocab.entities[3:] == ["Q1490", "Q48", "Q17"] and vocab.counts[3:] == [3, 2, 1]
    assert vocab.titles[vocab.index("Q1490")] == {"en": "Tokyo City", "nb": "Tokyo"}
    assert {s["json"]["lang"] for s in read_shards(out, "train")} == {"en", "nb"}


def test_aliases_in_knowledge_texts_and_descriptions_in_facts(tmp_path):
    entities = [dict(e) for e in ENTITIES]
    entities[0] = dict(entities[0], aliases={"en": [{"language": "en", "value": v} for v in ("Nippon", "JP", "Nihon", "Japan")]})
    source = write_dumps(tmp_path / "dumps")
    (source / "wikidata.json.bz2").write_bytes(bz2.compress(wikidata_dump(entities).encode()))
    out = tmp_path / "out"
    prepare(config(source, out))
    vocab = EntityVocab.load(out / "entity_vocab.jsonl")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    text = tokenizer.decode(KnowledgeTable.load(out).text(vocab.index("Q17"), "en"), skip_special_tokens=True)
    # The three aliases kept, the label's repeat left out (the tokenizer learnt the knowledge texts too: nothing is <unk>).
    assert text == "Japan (Nippon, JP, Nihon) island country in East Asia"
    facts = {(f["json"]["relation"], f["json"]["lang"]): f["json"] for f in read_shards(out, "facts-train")}
    assert facts[("P36", "en")]["subject_description"] == "island country in East Asia"
    assert facts[("P17", "en")]["object_description"] == "island country in East Asia"
    assert "subject_description" not in facts[("P36", "bg")] and "relation_description" not in facts[("P36", "en")]


def test_val_split_is_by_document_hash_and_no_document_is_in_both(tmp_path):
    source = tmp_path / "dumps"
    source.mkdir()
    (source / "enwiki-pages-articles.xml").write_text(xml_dump("en", many_pages(60)), encoding="utf-8")
    out = tmp_path / "out"
    manifest = prepare(config(source, out, wikipedia=[str(source / "enwiki-pages-articles.xml")], wikidata=[], languages=None,
                              val_fraction=0.3, max_seq_length=24))
    titles = {split: {s["json"]["title"] for s in read_shards(out, split)} for split in ("train", "val")}
    assert titles["train"] and titles["val"] and not titles["train"] & titles["val"]
    assert titles["val"] == {f"Page {i}" for i in range(60) if stable_fraction(f"enwiki:Page {i}") < 0.3}
    assert manifest["counts"]["documents"] == {"train": len(titles["train"]), "val": len(titles["val"])}
    keys = {split: {s["__key__"].split("-")[0] for s in read_shards(out, split)} for split in ("train", "val")}
    assert len(keys["train"] | keys["val"]) == 60 and not keys["train"] & keys["val"]


def test_a_local_tokenizer_directory(dumps, tmp_path):
    first = tmp_path / "first"
    prepare(config(dumps, first))
    second = tmp_path / "second"
    prepare(config(dumps, second, tokenizer=str(first / "tokenizer")))
    assert [s["input_ids.npy"].tolist() for s in read_shards(second, "train")] == \
        [s["input_ids.npy"].tolist() for s in read_shards(first, "train")]
    only_spm = tmp_path / "xlmr"
    only_spm.mkdir()
    (only_spm / "sentencepiece.bpe.model").write_bytes(b"\n\x05<unk>")
    with pytest.raises(ValueError, match=r"xlmr holds sentencepiece.bpe.model but no tokenizer.json: .*pip install sentencepiece"):
        prepare(config(dumps, tmp_path / "third", tokenizer=str(only_spm)))


def test_empty_results_are_clear_errors(tmp_path):
    source = tmp_path / "dumps"
    source.mkdir()
    (source / "enwiki-pages-articles.xml").write_text(xml_dump("en", [page("Plain", "No links at all.")]), encoding="utf-8")
    plain = dict(wikipedia=[str(source / "enwiki-pages-articles.xml")], wikidata=[], languages=None)
    with pytest.raises(ValueError, match=r"no entity mention found in 1 dump\(s\) \(1 articles\)"):
        prepare(config(source, tmp_path / "a", **plain))
    (source / "enwiki-pages-articles.xml").write_text(xml_dump("en", many_pages(5)), encoding="utf-8")
    with pytest.raises(ValueError, match=r"no training text sample was produced from 5 article\(s\) \(val_fraction 1.0\)"):
        prepare(config(source, tmp_path / "b", val_fraction=1.0, **plain))


def run_cli(*args, cwd):
    command = [sys.executable, "-m", "lightning_kg", "prepare", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.slow  # four CLI runs in subprocesses
def test_cli_user_errors_are_one_line_without_a_traceback(dumps, tmp_path):
    missing = run_cli("--wikipedia", str(tmp_path / "nothing-here.xml.bz2"), "--out", str(tmp_path / "a"), cwd=tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    unwritable = run_cli("--wikipedia", str(dumps / "enwiki-pages-articles.xml.bz2"), "--out", str(blocker / "out"), cwd=tmp_path)
    (tmp_path / "plainwiki.xml").write_text(xml_dump("en", [page("Plain", "No links.")]), encoding="utf-8")
    empty = run_cli("--wikipedia", str(tmp_path / "plainwiki.xml"), "--out", str(tmp_path / "b"), cwd=tmp_path)
    strict = run_cli("--wikipedia", str(dumps / "enwiki-pages-articles.xml.bz2"), "--wikidata", str(dumps / "wikidata.json.bz2"),
                     "--out", str(tmp_path / "c"), "--strict", "--num-slices", "1", cwd=tmp_path)
    for result, expected in ((missing, "error: no input file matches '.*nothing-here.xml.bz2'"),
                             (unwritable, "error: cannot write to output directory .*file/out"),
                             (empty, r"error: no entity mention found in 1 dump\(s\)"),
                             (strict, r"error: malformed record \(--strict stops here\): .*wikidata.json.bz2:line 4: not a Wikidata "
                                      r"entity \(.*\); expected one JSON object per line")):
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert re.search(expected, result.stderr.strip().splitlines()[-1]), result.stderr


def test_fact_languages_writes_each_fact_in_that_many_languages(dumps, tmp_path):
    def fact_languages(out, split):
        return sorted((f["json"]["subject"], f["json"]["relation"], f["json"]["lang"]) for f in read_shards(out, split))

    prepare(config(dumps, tmp_path / "one", fact_languages=1))
    train = fact_languages(tmp_path / "one", "facts-train")
    assert len(train) == len({(s, r) for s, r, _ in train}) == 3  # Japan P36 and P30, Tokyo P17: one language each
    assert {lang for _, _, lang in train} == {"bg", "en"}  # picked by hash, not always the first
    prepare(config(dumps, tmp_path / "two", fact_languages=2, heldout_fact_fraction=1.0))
    assert len(fact_languages(tmp_path / "two", "facts-heldout")) == 6


def test_title_mentions_put_each_articles_subject_beside_what_it_states(dumps, tmp_path, caplog):
    out = tmp_path / "out"
    prepare(config(dumps, out))
    parsed = {p.name: p.read_bytes() for p in (out / ".work").glob("docs-*")}
    prepare(config(dumps, out, title_mentions=True))
    assert "title_mentions false -> true" in caplog.text
    assert {p.name: p.read_bytes() for p in (out / ".work").glob("docs-*")} != parsed  # the parse stage redone
    vocab = EntityVocab.load(out / "entity_vocab.jsonl")
    japan = vocab.index("Q17")
    assert vocab.counts[japan] == 4 + 2  # '''Japan''' and '''Япония''' open their articles
    openings = {(s["json"]["lang"], s["json"]["mentions"][0][0], s["json"]["mentions"][0][2]) for s in read_shards(out, "train")
                if s["json"]["mentions"]}
    assert ("en", 1, japan) in openings and ("bg", 1, japan) in openings  # the first mention, right after <s>

"""Bad input is loud: a cut dump, a wrong Wikidata file, settings that cannot work, zero facts."""

import bz2
import json
import logging
import subprocess
import sys

import pytest

from lightning_kg.dataset.entity_vocab import EntityVocab
from lightning_kg.prepare.config import PrepareConfig
from lightning_kg.prepare.dumps import DumpError
from lightning_kg.prepare.knowledge_base import KnowledgeBase
from lightning_kg.prepare.merge import write_knowledge
from lightning_kg.prepare.pipeline import prepare
from lightning_kg.prepare.wikidata import WikidataInputError
from tests.factories import EN_PAGES, ENTITIES, config, page, wikidata_dump, write_dumps, xml_dump


@pytest.fixture()
def dumps(tmp_path):
    return write_dumps(tmp_path / "dumps")


def many_pages(count):
    return [page(f"Page {i}", f"Page {i} links [[Page {(i + 1) % count}]] and [[Tokyo]].") for i in range(count)]


@pytest.mark.parametrize("how", ["cut bz2", "broken XML"])
def test_a_dump_cut_short_is_a_warning_counted_in_the_manifest_and_an_error_when_strict(dumps, tmp_path, caplog, how):
    text = xml_dump("en", many_pages(400)).encode()
    path = dumps / "enwiki-pages-articles.xml.bz2"
    if how == "cut bz2":  # streams of 50 pages, as in a multistream dump, the file cut in the sixth
        streams = [bz2.compress(text[i : i + len(text) // 8]) for i in range(0, len(text), len(text) // 8)]
        path.write_bytes(b"".join(streams[:5]) + streams[5][: len(streams[5]) // 2])
    else:
        at = text.index(b"<title>Page 300<")
        path.write_bytes(bz2.compress(text[:at] + b"<oops></page>" + text[at:]))
    manifest = prepare(config(dumps, tmp_path / "out", wikidata=[]))
    assert manifest["counts"]["truncated_inputs"] == 1
    (warning,) = [r.getMessage() for r in caplog.records if "cut short" in r.getMessage() and "kept" in r.getMessage()]
    pages = manifest["counts"]["pages"] - 2  # the bgwiki dump's two pages
    assert f"{path}:line " in warning and f"after {pages} page(s); the rest of the file is skipped" in warning
    assert 0 < pages < 400 and (how == "cut bz2" or pages == 300)
    with pytest.raises(DumpError, match=rf"input cut short \(--strict stops here\): {path}:line \d+: "):
        prepare(config(dumps, tmp_path / "strict", wikidata=[], strict=True))


@pytest.mark.parametrize("content, expected", [
    (b"", "no Wikidata entity read from an empty file"),
    (b"this is not json\n" * 3, r"no Wikidata entity read from 3 line\(s\), none of them an item or a property \(first problem: line 1"),
    ("\n".join([xml_dump("en", EN_PAGES)] * 3).encode(), "no Wikidata entity read from"),
])
def test_a_wikidata_file_without_entities_stops_before_any_parsing(dumps, tmp_path, content, expected):
    (dumps / "wikidata.json.bz2").write_bytes(bz2.compress(content))
    with pytest.raises(WikidataInputError, match=rf"wikidata.json.bz2: {expected}.*pass --accept_bad_wikidata true"):
        prepare(config(dumps, tmp_path / "out"))
    assert not list((tmp_path / "out" / ".work").glob("docs-*"))  # checked before the Wikipedia dumps were parsed
    manifest = prepare(config(dumps, tmp_path / "anyway", accept_bad_wikidata=True))  # "I know"
    assert manifest["counts"]["entities"] > 3


def test_a_wikidata_file_of_mostly_malformed_lines_is_an_error(dumps, tmp_path):
    lines = wikidata_dump(ENTITIES, broken_line=False).splitlines()
    broken = lines[:2] + ['{"type": "item", "id": "Q9", "labels": '] * 12 + lines[2:]
    (dumps / "wikidata.json.bz2").write_bytes(bz2.compress("\n".join(broken).encode()))
    with pytest.raises(WikidataInputError, match=r"wikidata.json.bz2: 12 of 19 lines \(63%\) are not Wikidata entities, more than 1%"):
        prepare(config(dumps, tmp_path / "out"))


def test_strict_reads_the_wikidata_head_before_the_wikipedia_parse(dumps, tmp_path):
    with pytest.raises(DumpError, match=r"wikidata.json.bz2:line 4"):
        prepare(config(dumps, tmp_path / "out", strict=True))
    assert not list((tmp_path / "out" / ".work").glob("docs-*"))


def test_zero_facts_is_a_warning_that_says_why(dumps, tmp_path, caplog):
    entities = [e for e in ENTITIES if e["type"] != "property"]  # the facts' properties have no label in any language
    (dumps / "wikidata.json.bz2").write_bytes(bz2.compress(wikidata_dump(entities).encode()))
    manifest = prepare(config(dumps, tmp_path / "out"))
    assert manifest["counts"]["facts"] == {}
    assert ("no fact written: none of the 3 claims between vocabulary entities has labels for subject, relation and object in one of "
            "languages ['bg', 'en'] (no relation label in any of them for 3)") in caplog.text


def test_zero_knowledge_texts_is_a_warning_that_says_why(tmp_path, caplog):
    vocab = EntityVocab.build({"en:Tokyo": 2, "en:Japan": 1}, {"en:Tokyo": {"en": "Tokyo"}, "en:Japan": {"en": "Japan"}}, 1, 10)
    with caplog.at_level(logging.WARNING):
        counts = write_knowledge(tmp_path, vocab, KnowledgeBase(), None, [], ["bg"], 32)
    assert counts["texts"] == 0
    assert "no knowledge text written: none of the 2 entities has a label in languages ['bg'] (their labels are in: en)" in caplog.text


def test_languages_none_of_the_dumps_is_in_stop_before_parsing(dumps, tmp_path):
    with pytest.raises(ValueError, match=r"languages \['xx'\]: none is the language of a Wikipedia dump given \(bg, en\)"):
        prepare(config(dumps, tmp_path / "out", languages=["xx"]))
    assert not list((tmp_path / "out" / ".work").glob("docs-*"))


@pytest.mark.parametrize("setting, value, expected", [
    ("max_seq_length", 2, r"max_seq_length 2: expected a whole number of at least 8 \(<s>, </s> and the text between\)"),
    ("tokenizer_vocab_size", 0, "tokenizer_vocab_size 0: expected a whole number of at least 8"),
    ("val_fraction", 1.5, r"val_fraction 1.5: expected a fraction in \[0, 1\]"),
    ("max_pages", {"enwiki-*": -1}, "max_pages {'enwiki-\\*': -1}: expected null, a whole number"),
    ("fact_languages", 0, r"fact_languages 0: expected a whole number of at least 1 or null \(all\)"),
    ("languages", ["en", "en"], r"languages \['en', 'en'\]: expected null \(the dumps' languages\) or a list of distinct"),
    ("languages", ["EN"], r"not one: \['EN'\]"),
    ("workers", 0, "workers 0: expected a whole number of at least 1"),
])
def test_settings_are_checked_when_made(setting, value, expected):
    with pytest.raises(ValueError, match=rf"prepare settings: .*{expected}"):
        PrepareConfig(wikipedia="x.xml", out="out", **{setting: value})


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "lightning_kg", "prepare", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_cli_a_bad_number_and_a_misspelt_key_in_a_config_file(dumps, tmp_path):
    short = run_cli("--wikipedia", str(dumps / "enwiki-pages-articles.xml.bz2"), "--out", str(tmp_path / "a"), "--max_seq_length", "2",
                    cwd=tmp_path)
    assert short.returncode == 1 and "Traceback" not in short.stderr
    assert "error: prepare settings: max_seq_length 2: expected a whole number of at least 8" in short.stderr
    assert not (tmp_path / "a").exists()  # nothing read, nothing written
    settings = tmp_path / "mine.yaml"
    settings.write_text(json.dumps({"wikipedia": str(dumps / "enwiki-pages-articles.xml.bz2"), "out": str(tmp_path / "b"),
                                    "max_seq_lenght": 64}), encoding="utf-8")
    misspelt = run_cli("--config", str(settings), cwd=tmp_path)
    assert misspelt.returncode == 1 and "Traceback" not in misspelt.stderr
    assert misspelt.stderr.strip().splitlines()[-1] == (f"error: {settings}: 'max_seq_lenght' is not a prepare setting "
                                                        "(did you mean 'max_seq_length'?)")

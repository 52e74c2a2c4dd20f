"""The MediaWiki XML and Wikidata JSON readers on small files in the real formats."""

import bz2
import gzip
import json
from importlib.util import find_spec
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_kg.prepare.dumps import DumpError, LineChunk, expand_inputs
from lightning_kg.prepare.mediawiki import iter_pages, wiki_site
from lightning_kg.prepare.wikidata import iter_entities
from lightning_kg.recipes.dump_files import wikidata_json, write_dump
from tests.factories import EN_PAGES, ENTITIES, page, wikidata_dump, xml_dump

GENSIM = Path(find_spec("gensim").origin).parent / "test/test_data" if find_spec("gensim") else Path("/nonexistent")


def test_pages_redirects_and_namespaces(tmp_path):
    path = tmp_path / "enwiki.xml.bz2"
    path.write_bytes(bz2.compress(xml_dump("en", EN_PAGES).encode()))
    pages = list(iter_pages(path))
    assert [(p.title, p.namespace, p.redirect) for p in pages] == [
        ("Japan", 0, None), ("Tokyo", 0, None), ("Nippon", 0, "Japan"), ("Category:Countries", 14, None), ("Asia", 0, None)]
    assert pages[0].text.startswith("'''Japan''' is an island") and wiki_site(path) == ("enwiki", "en")


def test_multistream_bz2_reads_every_stream(tmp_path):
    """Wikimedia's multistream layout: the header alone in the first bz2 stream, then streams of
    whole pages, the closing tag alone in the last, all concatenated into one file."""
    text = xml_dump("en", EN_PAGES)
    head, body = text.split("<page>", 1)
    body, tail = ("<page>" + body).rsplit("</mediawiki>", 1)
    pages = ["<page>" + p for p in body.split("<page>")[1:]]
    streams = [head, "".join(pages[:2]), "".join(pages[2:4]), pages[4], "</mediawiki>" + tail]
    path = tmp_path / "enwiki-pages-articles-multistream.xml.bz2"
    path.write_bytes(b"".join(bz2.compress(part.encode()) for part in streams))
    assert path.read_bytes().count(b"BZh9") == 5
    assert [p.title for p in iter_pages(path)] == ["Japan", "Tokyo", "Nippon", "Category:Countries", "Asia"]


def test_site_id_and_language_can_differ(tmp_path):
    path = tmp_path / "nowiki.xml"
    path.write_text(xml_dump("nb", [page("Japan", "tekst")]).replace("<dbname>nbwiki", "<dbname>nowiki"), encoding="utf-8")
    assert wiki_site(path) == ("nowiki", "nb")
    path.write_text(xml_dump("x", []).replace(' xml:lang="x"', "").replace("xwiki", "zh_yuewiki"), encoding="utf-8")
    assert wiki_site(path) == ("zh_yuewiki", "zh-yue")


def test_utf16_with_a_bom_and_a_malformed_page(tmp_path):
    broken = page("", "no title") + page("Bad ns", "x", ns="x")
    text = '<?xml version="1.0" encoding="UTF-16"?>\n' + xml_dump("bg", [page("Япония", "текст"), broken])
    path = tmp_path / "bgwiki.xml"
    path.write_bytes(text.encode("utf-16"))
    skipped = []
    assert [p.title for p in iter_pages(path, on_error=skipped.append)] == ["Япония"]
    assert [r.reason for r in skipped] == ["page without a <title>", "<ns> is not a number: 'x'"]
    assert str(skipped[1]).startswith(f"{path}:page 'Bad ns' (line 33):")  # where its <page> opens
    with pytest.raises(DumpError, match="page without a <title>"):
        list(iter_pages(path))


def test_truncated_xml_keeps_the_pages_before_the_cut(tmp_path):
    text = xml_dump("en", EN_PAGES)
    path = tmp_path / "cut.xml"
    path.write_text(text[: text.index("<title>Asia")], encoding="utf-8")
    skipped = []
    assert len(list(iter_pages(path, on_error=skipped.append))) == 4
    assert len(skipped) == 1 and "invalid XML" in skipped[0].reason


@pytest.mark.skipif(not GENSIM.exists(), reason="gensim's Wikipedia excerpts are not installed")
def test_the_gensim_excerpts():
    english = list(iter_pages(GENSIM / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"))
    bulgarian = list(iter_pages(GENSIM / "bgwiki-latest-pages-articles-shortened.xml.bz2"))
    assert len(english) == 206 and len(bulgarian) == 3
    assert wiki_site(GENSIM / "bgwiki-latest-pages-articles-shortened.xml.bz2") == ("bgwiki", "bg")
    anarchism = next(p for p in english if p.title == "Anarchism")
    assert "[[political philosophy]]" in anarchism.text


@pytest.mark.parametrize("suffix, compress", [(".json", lambda b: b), (".json.bz2", bz2.compress), (".json.gz", gzip.compress)])
def test_wikidata_items_properties_and_bad_lines(tmp_path, suffix, compress):
    entities = ENTITIES + [{"type": "item", "id": "Q5", "labels": {}, "claims": {"P31": [
        {"mainsnak": {"snaktype": "novalue", "property": "P31"}},
        {"mainsnak": {"snaktype": "somevalue", "property": "P31"}},
        {"mainsnak": {"snaktype": "value", "property": "P31", "datavalue": {"type": "string", "value": "x"}}},
        {"mainsnak": {"snaktype": "value", "property": "P31",
                      "datavalue": {"type": "wikibase-entityid", "value": {"entity-type": "item", "numeric-id": 215627}}}}]}}]
    path = tmp_path / f"wikidata{suffix}"
    path.write_bytes(compress(wikidata_dump(entities).encode()))
    skipped = []
    read = {e.id: e for e in iter_entities(path, on_error=skipped.append)}
    assert sorted(read) == ["P17", "P30", "P36", "Q1490", "Q17", "Q48", "Q5"]  # the lexeme is skipped quietly
    japan = read["Q17"]
    assert japan.labels["bg"] == "Япония" and japan.sitelinks["enwiki"] == "Japan"
    assert japan.claims == [("P36", "Q1490"), ("P30", "Q48")] and japan.descriptions == {"en": "island country in East Asia"}
    assert read["P36"].kind == "property" and read["P36"].labels["en"] == "capital"
    assert read["Q5"].labels == {} and read["Q5"].claims == [("P31", "Q215627")]
    assert [f"{r.location}" for r in skipped] == ["line 4"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=30), st.dictionaries(st.sampled_from(["id", "type", "labels", "claims"]),
                                                                  st.one_of(st.text(max_size=5), st.integers(), st.none()), max_size=4)
                          .map(json.dumps)), max_size=8))
def test_random_lines_never_crash_the_reader(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("wd") / "random.json"
    write_dump(path, wikidata_json(line.replace("\n", " ") for line in lines))
    skipped = []
    read = list(iter_entities(path, on_error=skipped.append, accept_bad=True))  # the file-level checks: test_bad_input.py
    assert len(read) + len(skipped) <= len(lines)


def test_expand_inputs_sorts_deduplicates_and_names_a_missing_pattern(tmp_path):
    for name in ("b.xml", "a.xml"):
        (tmp_path / name).write_text("")
    assert expand_inputs([str(tmp_path / "*.xml"), str(tmp_path / "a.xml")]) == [str(tmp_path / "a.xml"), str(tmp_path / "b.xml")]
    with pytest.raises(FileNotFoundError, match="no input file matches .*missing"):
        expand_inputs(str(tmp_path / "missing*.xml"))


def test_a_cut_bz2_keeps_the_pages_before_the_cut_and_stopping_early_ends_the_reader(tmp_path, monkeypatch):
    import threading

    import lightning_kg.prepare.mediawiki as mediawiki

    monkeypatch.setattr(mediawiki, "BLOCK", 4096)  # many blocks, so the reader thread is still busy when we stop
    text = xml_dump("en", EN_PAGES * 40).encode()
    quarter = len(text) // 4
    streams = [bz2.compress(text[i * quarter: (i + 1) * quarter if i < 3 else None]) for i in range(4)]
    path = tmp_path / "cut.xml.bz2"
    path.write_bytes(b"".join(streams[:2]) + streams[2][:100])  # cut inside the third stream
    skipped = []
    pages = list(iter_pages(path, on_error=skipped.append))
    assert 50 < len(pages) < 150 and len(skipped) == 1 and "unreadable" in skipped[0].reason
    whole = b"".join(streams)
    before = threading.active_count()
    path.write_bytes(whole)
    reader = iter_pages(path)
    assert next(reader).title == "Japan"
    reader.close()
    assert threading.active_count() == before


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=20).filter(lambda head: b"\n" not in head), st.lists(st.sampled_from([b"a", b"\n", b"{}", b"\xd0\xb8"]), max_size=30), st.data())
def test_a_chunk_splits_as_its_joined_bytes_do(head, pieces, data):
    """Its lines are views of the block, never a copy of it whole, but the same bytes as splitting
    the head (part of one line) and the block joined; so also from a shared-memory slot."""
    block = b"".join(pieces)
    cut = data.draw(st.integers(0, len(block)))
    expected = (head + block[:cut]).split(b"\n")
    assert [bytes(line) for line in LineChunk(head, block, cut).lines()] == expected
    slot = memoryview(bytearray(block + b"tail"))
    assert [bytes(line) for line in LineChunk(head, 0, cut).lines([slot])] == expected

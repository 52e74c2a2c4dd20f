"""The CLDR demo recipe writes real-format Wikidata JSON and MediaWiki XML dumps, read here with the
standard library only (not the project's readers)."""

import bz2
import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from lightning_kg.recipes.cldr_demo import TEXT_LANGUAGES, build

EXPORT = "{http://www.mediawiki.org/xml/export-0.10/}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The full build (about 5 s)."""
    out = tmp_path_factory.mktemp("sources")
    build(out)
    return out


@pytest.fixture(scope="module")
def entities(sources):
    lines = bz2.decompress((sources / "wikidata-cldr.json.bz2").read_bytes()).decode().split("\n")
    # The dump shape: "[" alone, one entity per line ending in "," except the last, "]" alone.
    assert lines[0] == "[" and lines[-2:] == ["]", ""]
    body = lines[1:-2]
    assert all(line.endswith(",") for line in body[:-1]) and not body[-1].endswith(",")
    return [json.loads(line.removesuffix(",")) for line in body]


def target_ids(item, prop):
    return [claim["mainsnak"]["datavalue"]["value"]["id"] for claim in item["claims"].get(prop, [])]


def english(entities, name, kind="item"):
    return next(e for e in entities if e["type"] == kind and e.get("labels", {}).get("en", {}).get("value") == name)


def wiki_pages(path):
    root = ET.fromstring(bz2.decompress(path.read_bytes()))
    return root, {page.findtext(f"{EXPORT}title"): page for page in root.iter(f"{EXPORT}page")}


def test_japan_item(entities):
    japan = english(entities, "Japan")
    assert japan["id"].startswith("Q") and len(japan["labels"]) >= 100
    assert japan["labels"]["bg"] == {"language": "bg", "value": "Япония"}
    assert japan["sitelinks"]["bgwiki"] == {"site": "bgwiki", "title": "Япония", "badges": []}
    assert target_ids(japan, "P37") == [english(entities, "Japanese")["id"]]
    assert target_ids(japan, "P38") == [english(entities, "Japanese Yen")["id"]]
    assert target_ids(japan, "P361") == [english(entities, "Eastern Asia")["id"]]
    assert target_ids(japan, "P30") == [english(entities, "Asia")["id"]]
    assert target_ids(english(entities, "Eastern Asia"), "P361") == [english(entities, "Asia")["id"]]
    assert target_ids(english(entities, "Tokyo"), "P17") == [japan["id"]]
    by_id = {e["id"]: e for e in entities}
    [script] = target_ids(english(entities, "Japanese"), "P282")  # CLDR's script Jpan is also "Japanese" in English
    assert by_id[script]["labels"]["ja"]["value"] == "日本語の文字" and script != english(entities, "Japanese")["id"]
    claim = japan["claims"]["P37"][0]
    assert claim["type"] == "statement" and claim["mainsnak"]["datatype"] == "wikibase-item"
    assert claim["mainsnak"]["datavalue"]["type"] == "wikibase-entityid"


def test_properties_lexeme_and_sparse_descriptions(entities):
    properties = {e["id"]: e for e in entities if e["type"] == "property"}
    assert {"P17", "P30", "P37", "P38", "P282", "P361"} <= set(properties)
    assert properties["P37"]["labels"]["de"]["value"] == "Amtssprache"
    assert all(set(TEXT_LANGUAGES) <= set(p["labels"]) for p in properties.values())
    assert [e["id"] for e in entities if e["type"] == "lexeme"] == ["L1"]
    items = [e for e in entities if e["type"] == "item"]
    assert len({e["id"] for e in items}) == len(items) > 800
    described = [e for e in items if e["descriptions"]]
    assert 0 < len(described) < len(items) / 2 and all(len(e["descriptions"]) <= 5 for e in described)


def test_wikis_are_well_formed_and_link_the_facts(sources, entities):
    for lang in TEXT_LANGUAGES:
        root, pages = wiki_pages(sources / f"{lang}wiki-cldr.xml.bz2")
        assert root.get(XML_LANG) == lang and root.findtext(f"{EXPORT}siteinfo/{EXPORT}dbname") == f"{lang}wiki"
        assert len(pages) > 400
        assert any(page.findtext(f"{EXPORT}ns") == "14" for page in pages.values())
    root, pages = wiki_pages(sources / "dewiki-cldr.xml.bz2")
    japanese = english(entities, "Japanese")["labels"]["de"]["value"]
    text = pages["Japan"].findtext(f"{EXPORT}revision/{EXPORT}text")
    assert f"[[{japanese}]]" in text and "[[Ostasien]]" in text and "<ref" in text and "{{Infobox" in text
    assert pages["JP"].find(f"{EXPORT}redirect").get("title") == "Japan"
    _, pages = wiki_pages(sources / "enwiki-cldr.xml.bz2")
    assert "[[Japanese Yen|Japanese yen]]" in pages["Japan"].findtext(f"{EXPORT}revision/{EXPORT}text")


def test_sitelinks_name_pages(sources, entities):
    _, pages = wiki_pages(sources / "bgwiki-cldr.xml.bz2")
    territories = [e for e in entities if "P30" in e.get("claims", {}) and "bgwiki" in e["sitelinks"]]
    assert territories and all(e["sitelinks"]["bgwiki"]["title"] in pages for e in territories)


@pytest.mark.slow  # two runs of the recipe in subprocesses
def test_byte_identical_runs(tmp_path):
    for run in ("a", "b"):
        command = [sys.executable, "-m", "lightning_kg.recipes.cldr_demo", "--out", str(tmp_path / run),
                   "--languages", "en,bg", "--max-territories", "20"]
        subprocess.run(command, check=True, capture_output=True)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["bgwiki-cldr.xml.bz2", "enwiki-cldr.xml.bz2", "wikidata-cldr.json.bz2"]
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)


def test_region_and_language_entries_link_territories_and_scripts(sources):
    _, pages = wiki_pages(sources / "enwiki-cldr.xml.bz2")
    eastern_asia = pages["Eastern Asia"].findtext(f"{EXPORT}revision/{EXPORT}text")
    assert eastern_asia.startswith("'''Eastern Asia''' — part of: [[Asia]]. Comprises: [[China]], ")
    assert "[[Japan]]" in eastern_asia and "[[Taiwan]]" in eastern_asia
    assert pages["Serbian"].findtext(f"{EXPORT}revision/{EXPORT}text").startswith("'''Serbian''' — writing system: [[Cyrillic]].")
    _, pages = wiki_pages(sources / "jawiki-cldr.xml.bz2")
    assert "構成：" in pages["東アジア"].findtext(f"{EXPORT}revision/{EXPORT}text")

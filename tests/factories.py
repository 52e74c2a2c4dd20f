"""Small dumps in the real formats (written by lightning_kg.recipes.dump_files, as the recipes' are), and the prepare config that reads them.

The Wikipedia and Wikidata snippets are hand-written for these tests; Q-ids and titles follow the real
ones so the examples read naturally.
"""

import json
from pathlib import Path

from lightning_kg.prepare.config import PrepareConfig
from lightning_kg.recipes.dump_files import mediawiki_xml, page_xml, wikidata_json, write_dump


def page(title, text, ns=0, redirect=None):
    return page_xml(title, text, ns, redirect=redirect)


def xml_dump(lang, pages):
    return mediawiki_xml(lang, pages)


EN_PAGES = [
    page("Japan", "'''Japan''' is an island country in [[Asia]]. Its capital is [[Tokyo]].\n\n"
                  "[[Nippon]] is another name. {{Infobox country|name=Japan}}The [[tokyo|capital]] is large.\n\n[[Category:Countries]]"),
    page("Tokyo", "[[Tokyo]] is the capital of [[Japan]]. It lies in [[Asia]]."),
    page("Nippon", "", redirect="Japan"),
    page("Category:Countries", "Countries of the world [[Japan]]", ns=14),
    page("Asia", "Asia is a continent. [[Japan]] and [[Mongolia]] are in Asia."),
]
BG_PAGES = [
    page("Япония", "'''Япония''' е островна държава в [[Азия]]. Столицата е [[Токио]]."),
    page("Токио", "[[Токио]] е столицата на [[Япония]]."),
]


def item(qid, labels, sitelinks=(), descriptions=None, claims=()):
    claim_json = {}
    for prop, target in claims:
        claim_json.setdefault(prop, []).append({"mainsnak": {"snaktype": "value", "property": prop, "datatype": "wikibase-item",
                                                              "datavalue": {"type": "wikibase-entityid", "value": {"entity-type": "item", "id": target}}},
                                                 "type": "statement", "rank": "normal"})
    return {"type": "item", "id": qid,
            "labels": {lang: {"language": lang, "value": v} for lang, v in labels.items()},
            "descriptions": {lang: {"language": lang, "value": v} for lang, v in (descriptions or {}).items()},
            "aliases": {}, "claims": claim_json,
            "sitelinks": {site: {"site": site, "title": title, "badges": []} for site, title in sitelinks}}


ENTITIES = [
    item("Q17", {"en": "Japan", "bg": "Япония", "fr": "Japon"}, [("enwiki", "Japan"), ("bgwiki", "Япония"), ("commonswiki", "Japan")],
         {"en": "island country in East Asia"}, [("P36", "Q1490"), ("P30", "Q48")]),
    item("Q1490", {"en": "Tokyo", "bg": "Токио"}, [("enwiki", "Tokyo"), ("bgwiki", "Токио")], claims=[("P17", "Q17")]),
    item("Q48", {"en": "Asia", "bg": "Азия"}, [("enwiki", "Asia"), ("bgwiki", "Азия")]),
    {"type": "property", "id": "P36", "labels": {"en": {"language": "en", "value": "capital"}, "bg": {"language": "bg", "value": "столица"}}},
    {"type": "property", "id": "P30", "labels": {"en": {"language": "en", "value": "continent"}, "bg": {"language": "bg", "value": "континент"}}},
    {"type": "property", "id": "P17", "labels": {"en": {"language": "en", "value": "country"}, "bg": {"language": "bg", "value": "държава"}}},
    {"type": "lexeme", "id": "L1", "lemmas": {}},
]


def wikidata_dump(entities, broken_line=True):
    lines = [json.dumps(e, ensure_ascii=False) for e in entities]
    if broken_line:
        lines.insert(2, '{"type": "item", "id": "Q99", "labels": ')
    return "".join(wikidata_json(lines))


def write_dumps(source: Path) -> Path:
    source.mkdir(parents=True, exist_ok=True)
    write_dump(source / "enwiki-pages-articles.xml.bz2", xml_dump("en", EN_PAGES))
    # bgwiki as the gensim excerpt ships it: UTF-16 with a byte-order mark.
    utf16 = xml_dump("bg", BG_PAGES).replace("<mediawiki", '<?xml version="1.0" encoding="UTF-16"?>\n<mediawiki', 1)
    (source / "bgwiki-pages-articles.xml").write_bytes(utf16.encode("utf-16"))
    write_dump(source / "wikidata.json.bz2", wikidata_dump(ENTITIES))
    return source


def config(dumps, out, **overrides):
    values = dict(wikipedia=[str(dumps / "*wiki-pages-articles.xml*")], wikidata=[str(dumps / "wikidata.json.bz2")],
                  out=str(out), tokenizer_vocab_size=300, max_seq_length=32, val_fraction=0.0, heldout_fact_fraction=0.0,
                  languages=["bg", "en"], shard_max_samples=4)
    values.update(overrides)
    return PrepareConfig(**values)

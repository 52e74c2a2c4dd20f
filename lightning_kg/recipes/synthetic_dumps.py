"""Synthetic dumps in the real formats, at any size: what the scale bench and the tests run ``prepare`` on.

A Wikidata JSON dump (``.json.gz``: one entity per line inside a JSON array) whose items have labels,
descriptions and aliases in 12 languages, 5-20 item-valued claims with references (and a date and a
URL claim, which ``prepare`` skips), sitelinks to the 12 Wikipedias and Commons; then properties.
Two MediaWiki ``pages-articles`` XML dumps (``.xml.bz2``, English and German) with siteinfo and
namespaces, articles whose paragraphs link to other items' articles (directly, through a
redirect, with an anchor), templates, references and categories, and redirect pages.

Only the first ``linked`` items have articles and are linked, so the vocabulary is fixed by the
pages while ``entities`` sets the size of the dump: what shows whether the merge's memory follows
the one or the other. Everything is drawn from ``random.Random(seed)``: same arguments, same bytes.

    python -m lightning_kg.recipes.synthetic_dumps --out /tmp/dumps --entities 20000 --pages 1000
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from lightning_kg.recipes.dump_files import mediawiki_xml, page_xml, wikidata_json, write_dump

LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "pt", "ru", "sv", "ja", "zh"]
WIKIS = {"enwiki": "en", "dewiki": "de"}  # the dumps written; sitelinks go to every language's wiki
PROPERTIES = 40
SYLLABLES = ["ka", "ro", "mi", "ten", "sa", "lu", "vor", "an", "bel", "ti", "no", "gra", "sel", "um", "pe", "dri", "os", "hal"]
WORDS = [
    "the", "of", "and", "in", "to", "was", "is", "for", "on", "as", "by", "with", "from", "at", "that",
    "which", "its", "an", "were", "are", "has", "been", "city", "river", "people", "century", "known",
    "first", "year", "part", "region", "called", "north", "south", "later", "during", "most", "other",
    "national"
]


def name(rng: random.Random, number: int) -> str:
    """A made-up name, unique by its number: "Karomi 1234"."""
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize() + f" {number}"


def _texts(values: dict[str, str]) -> dict:
    return {lang: {"language": lang, "value": value} for lang, value in values.items()}


def _item_value(qid: str) -> dict:
    return {"value": {"entity-type": "item", "numeric-id": int(qid[1:]), "id": qid}, "type": "wikibase-entityid"}


def _statement(rng: random.Random, subject: str, prop: str, datatype: str, value: dict | None) -> dict:
    snak = {"snaktype": "value" if value else "somevalue", "property": prop, "hash": f"{rng.getrandbits(160):040x}",
            "datatype": datatype} | ({"datavalue": value} if value else {})
    reference = {"hash": f"{rng.getrandbits(160):040x}",
                 "snaks": {"P248": [{"snaktype": "value", "property": "P248", "datatype": "wikibase-item",
                                     "datavalue": _item_value(f"Q{rng.randint(1, 1000)}")}],
                           "P813": [{"snaktype": "value", "property": "P813", "datatype": "time",
                                     "datavalue": {"value": {"time": "+2024-01-15T00:00:00Z", "timezone": 0, "before": 0,
                                                             "after": 0, "precision": 11,
                                                             "calendarmodel": "http://www.wikidata.org/entity/Q1985727"},
                                                   "type": "time"}}]},
                 "snaks-order": ["P248", "P813"]}
    return {"mainsnak": snak, "type": "statement", "id": f"{subject}${rng.getrandbits(128):032x}", "rank": "normal",
            "references": [reference]}


def item(rng: random.Random, number: int, entities: int, linked: int, names: dict[int, str]) -> dict:
    """Item ``Q{number}``: every language's label with probability 0.9 (English always)."""
    qid = f"Q{number}"
    base = names[number] if number in names else name(rng, number)
    languages = [lang for lang in LANGUAGES if lang == "en" or rng.random() < 0.9]
    labels = {lang: base if lang in ("en", "de") else f"{base} ({lang})" for lang in languages}
    descriptions = {lang: " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for lang in languages if rng.random() < 0.7}
    aliases = {lang: [{"language": lang, "value": f"{base} {suffix}"} for suffix in rng.sample(SYLLABLES, rng.randint(1, 3))]
               for lang in languages if rng.random() < 0.4}
    claims: dict[str, list] = {}
    for _ in range(rng.randint(5, 20)):
        prop = f"P{rng.randint(1, PROPERTIES)}"
        # Half the objects among the linked items, so facts between vocabulary entities exist.
        target = rng.randint(1, linked) if rng.random() < 0.5 else rng.randint(1, entities)
        claims.setdefault(prop, []).append(_statement(rng, qid, prop, "wikibase-item", _item_value(f"Q{target}")))
    claims["P569"] = [_statement(rng, qid, "P569", "time", {"value": {"time": f"+{rng.randint(1000, 2020)}-00-00T00:00:00Z",
                                                                     "precision": 9}, "type": "time"})]
    claims["P856"] = [_statement(rng, qid, "P856", "url", {"value": f"https://example.org/{number}", "type": "string"})]
    sitelinks = {f"{lang}wiki": {"site": f"{lang}wiki", "title": labels[lang], "badges": []} for lang in languages}
    sitelinks["commonswiki"] = {"site": "commonswiki", "title": f"Category:{base}", "badges": []}
    return {"type": "item", "id": qid, "labels": _texts(labels), "descriptions": _texts(descriptions), "aliases": aliases,
            "claims": claims, "sitelinks": sitelinks, "lastrevid": 2000000000 + number, "modified": "2024-01-15T00:00:00Z"}


def prop(number: int) -> dict:
    labels = {lang: f"relation {number} ({lang})" for lang in LANGUAGES}
    return {"type": "property", "datatype": "wikibase-item", "id": f"P{number}", "labels": _texts(labels),
            "descriptions": _texts({"en": f"relation number {number}"}), "aliases": {}, "claims": {}}


def _link(rng: random.Random, linked: int, names: dict[int, str], redirected: set[int]) -> str:
    # Skewed towards low numbers, as links are towards famous entities.
    target = int(linked * rng.random() ** 2) + 1
    title = names[target]
    style = rng.random()
    if style < 0.15 and target in redirected:
        return f"[[{title} alias]]"
    if style < 0.45:
        return f"[[{title}|{rng.choice(WORDS)} {title.split()[0].lower()}]]"
    return f"[[{title}]]"


def article(rng: random.Random, number: int, linked: int, names: dict[int, str], redirected: set[int]) -> str:
    """Wikitext: an infobox, 4-10 paragraphs of 3-7 sentences (about 500 words, as an average English article) with links and references, categories."""
    parts = [f"{{{{Infobox thing|name={names[number]}|founded={rng.randint(1000, 2020)}}}}}",
             f"'''{names[number]}''' is a {rng.choice(WORDS)} {rng.choice(WORDS)}."]
    for _ in range(rng.randint(4, 10)):
        sentences = []
        for _ in range(rng.randint(3, 7)):
            words = [_link(rng, linked, names, redirected) if rng.random() < 0.12 else rng.choice(WORDS)
                     for _ in range(rng.randint(8, 20))]
            words[0] = words[0].capitalize() if not words[0].startswith("[[") else words[0]
            ref = f"<ref>{{{{cite web|url=https://example.org/{rng.getrandbits(32)}|title=Source}}}}</ref>" if rng.random() < 0.2 else ""
            sentences.append(" ".join(words) + "." + ref)
        parts.append(" ".join(sentences))
    parts.append(f"== See also ==\n* {_link(rng, linked, names, redirected)}")
    parts.append(f"[[Category:{rng.choice(WORDS).capitalize()} things]]")
    return "\n\n".join(parts)


def wiki_dump(rng: random.Random, site: str, lang: str, pages: int, linked: int, names: dict[int, str]) -> str:
    """A pages-articles dump: ``pages`` articles (items 1..pages) and a redirect to a fifth of them."""
    redirected = set(range(1, linked + 1, 5))
    body = []
    for number in range(1, pages + 1):
        body.append(page_xml(names[number], article(rng, number, linked, names, redirected), page_id=number))
        if number in redirected:
            body.append(page_xml(f"{names[number]} alias", f"#REDIRECT [[{names[number]}]]", page_id=10_000_000 + number,
                                 redirect=names[number]))
    return mediawiki_xml(lang, body, site, namespaces={6: "File", 10: "Template", 14: "Category"})


def write_synthetic_dumps(out: str | Path, entities: int, pages: int, seed: int = 0) -> tuple[list[Path], Path]:
    """Write ``enwiki``/``dewiki`` dumps of ``pages`` articles each and a Wikidata dump of ``entities``
    items (plus properties) into ``out``; items 1..3 x ``pages`` are the ones articles link to.
    Returns (Wikipedia dump paths, Wikidata dump path)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    linked = min(entities, 3 * pages)
    names = {number: name(random.Random(f"{seed}-name-{number}"), number) for number in range(1, linked + 1)}
    wiki_paths = []
    for site, lang in WIKIS.items():
        path = out / f"{site}-synthetic-pages-articles.xml.bz2"
        wiki_paths.append(write_dump(path, wiki_dump(random.Random(f"{seed}-{site}"), site, lang, pages, linked, names)))
    data_path = out / "wikidata-synthetic-all.json.gz"
    rng = random.Random(f"{seed}-wikidata")
    records = (item(rng, number, entities, linked, names) if number <= entities else prop(number - entities)
               for number in range(1, entities + PROPERTIES + 1))  # a generator: the dump is never held
    write_dump(data_path, wikidata_json(json.dumps(record, ensure_ascii=False, separators=(",", ":")) for record in records))
    return wiki_paths, data_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--pages", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    wiki_paths, data_path = write_synthetic_dumps(args.out, args.entities, args.pages, args.seed)
    print("wrote", *wiki_paths, data_path)


if __name__ == "__main__":
    main()

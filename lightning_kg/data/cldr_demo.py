"""Recipe for the demo's multilingual knowledge: Unicode CLDR (through ``babel``) written out as a
Wikidata JSON dump and as MediaWiki XML dumps in 14 languages, the formats ``prepare`` reads.

    python -m lightning_kg.data.cldr_demo --out shards/demo/sources

What comes from CLDR: names of territories, languages, currencies, scripts and time-zone cities in
100+ locales; official languages and current currencies of each territory; each language's likely
script; each city's territory. Each territory's continent is derived from the IANA time-zone area
of its zones ("Asia/Tokyo" -> Asia), because babel ships no territory containment. The article
sentences are *templated*: fixed per-language templates filled with the real localised names.
Entity ids are local to the demo (Q1000000 upwards, assigned in sorted order), not Wikidata's;
property ids are Wikidata's. Output is byte-identical on every run.
"""

from __future__ import annotations

import argparse
import bz2
import json
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from babel import Locale, localedata
from babel.core import get_global
from babel.languages import get_official_languages
from babel.numbers import get_territory_currencies

TEXT_LANGUAGES = ["bg", "de", "en", "es", "fr", "it", "ja", "nl", "pl", "pt", "ru", "sv", "tr", "zh"]
CONTINENTS = {"Africa": "002", "America": "019", "Asia": "142", "Europe": "150", "Australia": "009", "Pacific": "009", "Antarctica": "010"}
CITIES_PER_TERRITORY = 3
FIRST_ID = 1_000_000

# property id -> label per text language (written for this recipe)
PROPERTIES = {
    "P17": {"bg": "държава", "de": "Staat", "en": "country", "es": "país", "fr": "pays", "it": "paese", "ja": "国", "nl": "land",
            "pl": "państwo", "pt": "país", "ru": "страна", "sv": "land", "tr": "ülke", "zh": "国家"},
    "P30": {"bg": "континент", "de": "Kontinent", "en": "continent", "es": "continente", "fr": "continent", "it": "continente",
            "ja": "大陸", "nl": "continent", "pl": "kontynent", "pt": "continente", "ru": "континент", "sv": "kontinent", "tr": "kıta", "zh": "大洲"},
    "P37": {"bg": "официален език", "de": "Amtssprache", "en": "official language", "es": "idioma oficial", "fr": "langue officielle",
            "it": "lingua ufficiale", "ja": "公用語", "nl": "officiële taal", "pl": "język urzędowy", "pt": "língua oficial",
            "ru": "официальный язык", "sv": "officiellt språk", "tr": "resmî dil", "zh": "官方语言"},
    "P38": {"bg": "валута", "de": "Währung", "en": "currency", "es": "moneda", "fr": "monnaie", "it": "valuta", "ja": "通貨",
            "nl": "munteenheid", "pl": "waluta", "pt": "moeda", "ru": "валюта", "sv": "valuta", "tr": "para birimi", "zh": "货币"},
    "P282": {"bg": "писменост", "de": "Schrift", "en": "writing system", "es": "sistema de escritura", "fr": "système d'écriture",
             "it": "sistema di scrittura", "ja": "文字体系", "nl": "schrift", "pl": "pismo", "pt": "sistema de escrita",
             "ru": "письменность", "sv": "skriftsystem", "tr": "yazı sistemi", "zh": "书写系统"},
}

# Templated sentences: {country}, {continent}, {languages}, {currency}, {cities} are [[links]].
TEMPLATES = {
    "bg": ["{country} е държава в {continent}.", "Официален език: {languages}.", "Валута: {currency}.", "Градове: {cities}."],
    "de": ["{country} ist ein Staat in {continent}.", "Amtssprache: {languages}.", "Währung: {currency}.", "Städte: {cities}."],
    "en": ["{country} is a country in {continent}.", "The official language is {languages}.", "The currency is the {currency}.",
           "Cities in {country} include {cities}."],
    "es": ["{country} es un país de {continent}.", "Idioma oficial: {languages}.", "Moneda: {currency}.", "Ciudades: {cities}."],
    "fr": ["{country} est un pays du continent {continent}.", "Langue officielle : {languages}.", "Monnaie : {currency}.", "Villes : {cities}."],
    "it": ["{country} è un paese del continente {continent}.", "Lingua ufficiale: {languages}.", "Valuta: {currency}.", "Città: {cities}."],
    "ja": ["{country}は{continent}の国である。", "公用語は{languages}である。", "通貨は{currency}である。", "主な都市は{cities}である。"],
    "nl": ["{country} is een land in {continent}.", "Officiële taal: {languages}.", "Munteenheid: {currency}.", "Steden: {cities}."],
    "pl": ["{country} to państwo na kontynencie {continent}.", "Język urzędowy: {languages}.", "Waluta: {currency}.", "Miasta: {cities}."],
    "pt": ["{country} é um país do continente {continent}.", "Língua oficial: {languages}.", "Moeda: {currency}.", "Cidades: {cities}."],
    "ru": ["{country} — страна, континент: {continent}.", "Официальный язык: {languages}.", "Валюта: {currency}.", "Города: {cities}."],
    "sv": ["{country} är ett land i {continent}.", "Officiellt språk: {languages}.", "Valuta: {currency}.", "Städer: {cities}."],
    "tr": ["{country}, {continent} kıtasında bir ülkedir.", "Resmî dil: {languages}.", "Para birimi: {currency}.", "Şehirler: {cities}."],
    "zh": ["{country}是位于{continent}的国家。", "官方语言是{languages}。", "货币是{currency}。", "主要城市有{cities}。"],
}
LIST_SEPARATOR = {"ja": "、", "zh": "、"}
# Short descriptions in two languages only, so most entities get a description composed from facts.
DESCRIPTIONS = {"en": "country in {continent}", "de": "Staat in {continent}"}


def label_locales() -> list[str]:
    """Base locales (no region) that name Japan: the languages whose labels go into the dump."""
    found = []
    for identifier in sorted(localedata.locale_identifiers()):
        if "_" in identifier or identifier == "root":
            continue
        if "JP" in Locale.parse(identifier).territories:
            found.append(identifier)
    return found


def build(out: Path) -> dict:
    locales = {code: Locale.parse(code) for code in label_locales()}
    english = locales["en"]
    zones = get_global("zone_territories")
    likely = get_global("likely_subtags")

    countries = sorted(t for t in english.territories if len(t) == 2 and t.isalpha() and t not in ("ZZ", "EU", "EZ", "UN", "QO", "XA", "XB"))
    continent_of, cities_of = {}, {}
    for zone, territory in sorted(zones.items()):
        area = zone.split("/")[0]
        if territory in countries and area in CONTINENTS:
            continent_of.setdefault(territory, CONTINENTS[area])
        if territory in countries and "/" in zone and zone.count("/") == 1:
            cities_of.setdefault(territory, []).append(zone)
    languages_of = {t: sorted(l for l in get_official_languages(t) if l in english.languages) for t in countries}
    currency_of = {t: next((c for c in get_territory_currencies(t) if c in english.currencies), None) for t in countries}
    script_of = {l: likely.get(l, "").split("_")[1] for ls in languages_of.values() for l in ls
                 if len(likely.get(l, "").split("_")) == 3 and likely[l].split("_")[1] in english.scripts}

    # Entities, in a fixed order: (kind, code) -> Q-id.
    keys = ([("continent", c) for c in sorted(set(CONTINENTS.values()))] + [("country", t) for t in countries]
            + [("language", l) for l in sorted({l for ls in languages_of.values() for l in ls})]
            + [("currency", c) for c in sorted({c for c in currency_of.values() if c})]
            + [("script", s) for s in sorted(set(script_of.values()))]
            + [("city", z) for t in countries for z in cities_of.get(t, [])[:CITIES_PER_TERRITORY]])
    qid = {key: f"Q{FIRST_ID + i}" for i, key in enumerate(keys)}

    def name(locale: Locale, kind: str, code: str) -> str | None:
        if kind in ("continent", "country"):
            return locale.territories.get(code)
        if kind == "language":
            return locale.languages.get(code)
        if kind == "currency":
            return locale.currencies.get(code)
        if kind == "script":
            return locale.scripts.get(code)
        return (locale.time_zones.get(code) or {}).get("city")

    def city_name(locale: Locale, zone: str) -> str:
        return name(locale, "city", zone) or zone.split("/")[-1].replace("_", " ")

    labels = {}
    for kind, code in keys:
        per_locale = {}
        for lang, locale in locales.items():
            text = city_name(locale, code) if kind == "city" else name(locale, kind, code)
            if text:
                per_locale[lang] = text
        labels[(kind, code)] = per_locale

    claims = {key: [] for key in keys}
    for t in countries:
        if t in continent_of:
            claims[("country", t)].append(("P30", qid[("continent", continent_of[t])]))
        claims[("country", t)] += [("P37", qid[("language", l)]) for l in languages_of[t]]
        if currency_of[t]:
            claims[("country", t)].append(("P38", qid[("currency", currency_of[t])]))
        for zone in cities_of.get(t, [])[:CITIES_PER_TERRITORY]:
            claims[("city", zone)].append(("P17", qid[("country", t)]))
    for language, script in script_of.items():
        claims[("language", language)].append(("P282", qid[("script", script)]))

    # A wiki title names one page: a city called like its country ("Andorra") gets no sitelink there.
    sitelinked, taken = set(), {lang: set() for lang in TEXT_LANGUAGES}
    for key in keys:
        for lang in TEXT_LANGUAGES:
            title = labels[key].get(lang)
            if title and title not in taken[lang]:
                taken[lang].add(title)
                sitelinked.add((key, lang))

    out.mkdir(parents=True, exist_ok=True)
    entities = []
    for key in keys:
        kind, code = key
        item = {"type": "item", "id": qid[key],
                "labels": {l: {"language": l, "value": v} for l, v in sorted(labels[key].items())},
                "descriptions": {}, "aliases": {}, "claims": {}, "sitelinks": {}}
        if kind == "country" and continent_of.get(code):
            for lang, template in DESCRIPTIONS.items():
                continent = labels[("continent", continent_of[code])].get(lang)
                if continent:
                    item["descriptions"][lang] = {"language": lang, "value": template.format(continent=continent)}
        for prop, target in claims[key]:
            snak = {"snaktype": "value", "property": prop, "datatype": "wikibase-item",
                    "datavalue": {"type": "wikibase-entityid", "value": {"entity-type": "item", "numeric-id": int(target[1:]), "id": target}}}
            item["claims"].setdefault(prop, []).append({"mainsnak": snak, "type": "statement", "rank": "normal"})
        for lang in TEXT_LANGUAGES:
            if (key, lang) in sitelinked:
                item["sitelinks"][f"{lang}wiki"] = {"site": f"{lang}wiki", "title": labels[key][lang], "badges": []}
        entities.append(item)
    for prop, per_language in PROPERTIES.items():
        entities.append({"type": "property", "id": prop, "datatype": "wikibase-item",
                         "labels": {l: {"language": l, "value": v} for l, v in sorted(per_language.items())}})
    entities.append({"type": "lexeme", "id": "L1", "lemmas": {"en": {"language": "en", "value": "demo"}}})
    lines = [json.dumps(e, ensure_ascii=False, sort_keys=True) for e in entities]
    dump = "[\n" + ",\n".join(lines) + "\n]\n"
    (out / "wikidata-cldr.json.bz2").write_bytes(bz2.compress(dump.encode("utf-8"), 9))

    pages_per_language = {}
    for lang in TEXT_LANGUAGES:
        separator = LIST_SEPARATOR.get(lang, ", ")
        pages = []

        def link(key) -> str | None:
            return f"[[{labels[key][lang]}]]" if (key, lang) in sitelinked else None

        for t in countries:
            country = labels[("country", t)].get(lang)
            continent = link(("continent", continent_of[t])) if t in continent_of else None
            languages = [link(("language", l)) for l in languages_of[t]]
            currency = link(("currency", currency_of[t])) if currency_of[t] else None
            cities = [link(("city", z)) for z in cities_of.get(t, [])[:CITIES_PER_TERRITORY]]
            if not country or not continent:
                continue
            values = {"country": country, "continent": continent, "languages": separator.join(l for l in languages if l),
                      "currency": currency, "cities": separator.join(c for c in cities if c)}
            first, *rest = TEMPLATES[lang]
            sentences = [first.format(**values)]
            for template, needed in zip(rest, ("languages", "currency", "cities")):
                if values[needed]:
                    sentences.append(template.format(**values))
            spacer = "" if lang in ("ja", "zh") else " "
            infobox = "{{Infobox country|code=" + t + "}}\n"
            text = infobox + "'''" + country + "'''" + sentences[0][len(country):] + spacer + spacer.join(sentences[1:])
            text += "<ref>Unicode CLDR, via babel</ref>"
            pages.append((country, 0, text, None))
            pages.append((t, 0, "", country))  # the territory code redirects to the article
        pages.append(("Category:CLDR", 14, "[[" + labels[("country", "JP")].get(lang, "Japan") + "]]", None))
        pages_per_language[lang] = len(pages)
        xml = [f'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="{lang}">',
               f"  <siteinfo>\n    <sitename>CLDR demo</sitename>\n    <dbname>{lang}wiki</dbname>\n    <case>first-letter</case>\n  </siteinfo>"]
        for number, (title, namespace, text, redirect) in enumerate(pages, 1):
            redirect_tag = f"\n    <redirect title={quoteattr(redirect)} />" if redirect else ""
            body = f"#REDIRECT [[{redirect}]]" if redirect else text
            xml.append(f"  <page>\n    <title>{escape(title)}</title>\n    <ns>{namespace}</ns>\n    <id>{number}</id>{redirect_tag}\n"
                       f"    <revision>\n      <id>{number}</id>\n      <text xml:space=\"preserve\">{escape(body)}</text>\n    </revision>\n  </page>")
        xml.append("</mediawiki>\n")
        (out / f"{lang}wiki-cldr.xml.bz2").write_bytes(bz2.compress("\n".join(xml).encode("utf-8"), 9))
    return {"entities": len(keys), "label_locales": len(locales), "pages": pages_per_language}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="shards/demo/sources", help="directory to write the dumps into")
    args = parser.parse_args()
    summary = build(Path(args.out))
    print(f"wrote {args.out}: {summary['entities']} entities labelled in {summary['label_locales']} locales; "
          f"pages per language {summary['pages']}")


if __name__ == "__main__":
    main()

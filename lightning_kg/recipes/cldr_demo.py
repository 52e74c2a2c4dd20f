"""Recipe for the demo's multilingual knowledge: Unicode CLDR (through ``babel``) written out as a
Wikidata JSON dump and as MediaWiki ``pages-articles`` XML dumps, the real formats ``prepare`` reads.

    python -m lightning_kg.recipes.cldr_demo --out shards/demo/sources

What comes from CLDR: names of regions, territories, languages, scripts, currencies and time-zone
exemplar cities in 100+ locales; each territory's official languages and current currency; each
language's likely script; each city's territory; the list patterns joining names ("A, B und C").
The territory containment tree (UN M49 regions) and UN membership are copied below from CLDR's
supplemental data because babel does not ship them. Each wiki has an article per territory and an
entry per region (its parent and parts: these links put the territories into the entity vocabulary,
so their facts can be trained and probed) and per language (its script). All sentences are
*templated*: fixed per-language templates written here, filled with the real localised names. Q-ids are local to the
demo (Q1000000 + position in KINDS order, then code order), not Wikidata's; property ids are
Wikidata's. Output is byte-identical on every run with the same babel.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

from babel import Locale, localedata
from babel.core import get_global
from babel.languages import get_official_languages
from babel.lists import format_list
from babel.numbers import get_territory_currencies

from lightning_kg.recipes.cldr_templates import DESCRIPTIONS, ENGLISH_THE, MEMBERS_LABEL, PROPERTIES, TEXT
from lightning_kg.recipes.dump_files import mediawiki_xml, page_xml, wikidata_json, write_dump

# CLDR supplemental territoryContainment (CLDR 48, same tree as babel's CLDR 47), groupings left out.
CONTAINMENT = {
    "001": "002 009 019 142 150", "002": "011 014 015 017 018", "009": "053 054 057 061 QO",
    "019": "005 013 021 029", "142": "030 034 035 143 145", "150": "039 151 154 155",
    "005": "AR BO BR BV CL CO EC FK GF GS GY PE PY SR UY VE",
    "011": "BF BJ CI CV GH GM GN GW LR ML MR NE NG SH SL SN TG",
    "013": "BZ CR GT HN MX NI PA SV",
    "014": "BI DJ ER ET IO KE KM MG MU MW MZ RE RW SC SO SS TF TZ UG YT ZM ZW",
    "015": "DZ EA EG EH IC LY MA SD TN",
    "017": "AO CD CF CG CM GA GQ ST TD",
    "018": "BW LS NA SZ ZA",
    "021": "BM CA GL PM US",
    "029": "AG AI AW BB BL BQ BS CU CW DM DO GD GP HT JM KN KY LC MF MQ MS PR SX TC TT VC VG VI",
    "030": "CN HK JP KP KR MN MO TW",
    "034": "AF BD BT IN IR LK MV NP PK",
    "035": "BN ID KH LA MM MY PH SG TH TL VN",
    "039": "AD AL BA ES GI GR HR IT ME MK MT PT RS SI SM VA XK",
    "053": "AU CC CX HM NF NZ",
    "054": "FJ NC PG SB VU",
    "057": "FM GU KI MH MP NR PW UM",
    "061": "AS CK NU PF PN TK TO TV WF WS",
    "143": "KG KZ TJ TM UZ",
    "145": "AE AM AZ BH CY GE IL IQ JO KW LB OM PS QA SA SY TR YE",
    "151": "BG BY CZ HU MD PL RO RU SK UA",
    "154": "AX CQ DK EE FI FO GB GG IE IM IS JE LT LV NO SE SJ",
    "155": "AT BE CH DE FR LI LU MC NL",
    "QO": "AC AQ CP DG TA",
}
# CLDR's "UN" grouping: members are called a country in the articles, the rest a territory.
UN_MEMBERS = {"AD", "AE", "AF", "AG", "AL", "AM", "AO", "AR", "AT", "AU", "AZ", "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BN", "BO", "BR", "BS", "BT", "BW", "BY", "BZ", "CA", "CD", "CF", "CG", "CH", "CI", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE", "EG", "ER", "ES", "ET", "FI", "FJ", "FM", "FR", "GA", "GB", "GD", "GE", "GH", "GM", "GN", "GQ", "GR", "GT", "GW", "GY", "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IN", "IQ", "IR", "IS", "IT", "JM", "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MG", "MH", "MK", "ML", "MM", "MN", "MR", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NE", "NG", "NI", "NL", "NO", "NP", "NR", "NZ", "OM", "PA", "PE", "PG", "PH", "PK", "PL", "PT", "PW", "PY", "QA", "RO", "RS", "RU", "RW", "SA", "SB", "SC", "SD", "SE", "SG", "SI", "SK", "SL", "SN", "SO", "SR", "SS", "ST", "SV", "SY", "SZ", "TD", "TG", "TH", "TJ", "TL", "TM", "TN", "TO", "TR", "TT", "TV", "TZ", "UA", "UG", "US", "UY", "UZ", "VC", "VE", "VN", "VU", "WS", "YE", "ZA", "ZM", "ZW"}  # noqa: E501 - one list, one line

# Id order and, when two entities share a title in one wiki, which one gets the sitelink.
KINDS = ("region", "territory", "language", "script", "currency", "city")
FIRST_ID = 1_000_000
CITIES_PER_TERRITORY = 3
TEXT_LANGUAGES = ("bg", "de", "en", "es", "fr", "it", "ja", "nl", "pl", "pt", "ru", "sv", "tr", "zh")
CONTINENTS = ("002", "009", "019", "142", "150")

CURRENCY_DATE = date(2025, 1, 1)  # "current" tender as of a fixed day, so the output does not age
# The demo's classes, named in English: each item is an instance (P31) of one, and a class is a
# subclass (P279) of the next one up, or of none. UN members are countries and continents are
# regions one level below the class their kind names, so a type read through P279 is tried too.
# Their Q-ids follow the entities' (the entities keep theirs); no property entity names P31 or
# P279, so no knowledge text or tokenizer text states them (prepare's silver tasks read them).
CLASSES = {"territory": None, "country": "territory", "region": None, "continent": "region", "city": None,
           "language": None, "writing system": None, "currency": None}
KIND_CLASS = {"region": "region", "territory": "territory", "language": "language", "script": "writing system",
              "currency": "currency", "city": "city"}


def label_locales() -> list[str]:
    """Base locales (no region) that name Japan: the languages whose labels go into the dump."""
    return [code for code in sorted(localedata.locale_identifiers())
            if "_" not in code and code != "root" and "JP" in Locale.parse(code).territories]


def cldr_facts(max_territories: int | None) -> dict:
    """Entity keys ``(kind, code)`` in id order and their relations ``{key: [(property, key), ...]}``."""
    english = Locale.parse("en")
    parent = {child: region for region, children in CONTAINMENT.items() for child in children.split()}
    regions = sorted(CONTAINMENT)
    territories = sorted(code for code in parent if code not in CONTAINMENT and code in english.territories)
    territories = territories[:max_territories]

    def continent(code: str) -> str:
        while code not in CONTINENTS:
            code = parent[code]
        return code

    def known_language(code: str) -> str | None:  # "nan_Hant" -> "nan" when CLDR names only the base
        return code if code in english.languages else code.split("_")[0] if code.split("_")[0] in english.languages else None

    likely, windows_zones = get_global("likely_subtags"), set(get_global("windows_zone_mapping").values())
    territory_zones = get_global("territory_zones")
    relations: dict[tuple, list] = {}
    for code in regions:
        relations[("region", code)] = [("P361", ("region", parent[code]))] if code in parent else []
    for code in territories:
        languages = dict.fromkeys(filter(None, map(known_language, get_official_languages(code))))
        currencies = [c for c in get_territory_currencies(code, CURRENCY_DATE, CURRENCY_DATE) if c in english.currencies]
        relations[("territory", code)] = ([("P361", ("region", parent[code])), ("P30", ("region", continent(code)))]
                                          + [("P37", ("language", language)) for language in languages]
                                          + [("P38", ("currency", currency)) for currency in currencies])
        # Exemplar cities: zones named "Area/City", the ones Windows maps its zones to first.
        zones = sorted((zone not in windows_zones, zone) for zone in territory_zones.get(code, ()) if zone.count("/") == 1)
        for _, zone in zones[:CITIES_PER_TERRITORY]:
            relations[("city", zone)] = [("P17", ("territory", code))]
    targets = {target for claims in list(relations.values()) for _, target in claims}
    for kind, code in sorted(targets):
        if kind == "language":
            subtags = code.split("_")[1:] + likely.get(code, "").split("_")[1:]
            script = next((tag for tag in subtags if len(tag) == 4 and tag in english.scripts), None)
            relations[(kind, code)] = [("P282", ("script", script))] if script else []
            if script:
                relations.setdefault(("script", script), [])
        relations.setdefault((kind, code), [])
    keys = sorted(relations, key=lambda key: (KINDS.index(key[0]), key[1]))
    return {"keys": keys, "relations": {key: relations[key] for key in keys}}


def localized_labels(keys: list[tuple], locales: list[str]) -> dict[tuple, dict[str, str]]:
    """``{key: {locale: name}}``. A city takes CLDR's root name ("Tokyo" from Asia/Tokyo) only in
    Latin-script locales, where that inherited name is what CLDR resolves to."""
    likely = get_global("likely_subtags")
    labels: dict[tuple, dict[str, str]] = {key: {} for key in keys}
    for code in locales:
        locale = Locale.parse(code)
        latin = likely.get(code, "").split("_")[1:2] == ["Latn"]
        tables = {"region": locale.territories, "territory": locale.territories, "language": locale.languages,
                  "script": locale.scripts, "currency": locale.currencies}
        for kind, entity in keys:
            if kind == "city":
                name = (locale.time_zones.get(entity) or {}).get("city")
                name = name or (entity.split("/")[1].replace("_", " ") if latin else None)
            else:
                name = tables[kind].get(entity)
            if name:
                labels[(kind, entity)][code] = name
    return labels


def wiki_title(name: str) -> str:
    """The page title a first-letter wiki gives a name ("японски" -> "Японски")."""
    return name[:1].upper() + name[1:]


def sitelinks(keys: list[tuple], labels: dict, languages: list[str]) -> dict[tuple, dict[str, str]]:
    """``{key: {lang: title}}``; a title already taken in a wiki (the city Andorra after the
    territory Andorra) is left out, since one title names one page."""
    links: dict[tuple, dict[str, str]] = {key: {} for key in keys}
    for lang in languages:
        taken = set()
        for key in keys:  # KINDS order: territories win over cities
            title = wiki_title(labels[key].get(lang, ""))
            if title and title not in taken:
                taken.add(title)
                links[key][lang] = title
    return links


def value_list(values: list[str], lang: str) -> dict:
    return {lang: [{"language": lang, "value": value} for value in values]}


def item_class(key: tuple) -> str:
    """The demo class an entity is an instance of (``CLASSES``)."""
    kind, code = key
    if kind == "territory" and code in UN_MEMBERS:
        return "country"
    return "continent" if kind == "region" and code in CONTINENTS else KIND_CLASS[kind]


def item_claim(prop: str, target: str) -> dict:
    """A Wikidata statement whose value is the item ``target``."""
    snak = {"snaktype": "value", "property": prop, "datatype": "wikibase-item",
            "datavalue": {"type": "wikibase-entityid", "value": {"entity-type": "item", "numeric-id": int(target[1:]), "id": target}}}
    return {"mainsnak": snak, "type": "statement", "rank": "normal"}


def wikidata_lines(facts: dict, labels: dict, links: dict) -> list[str]:
    """One JSON line per entity in Wikidata's dump shape: items, a lexeme, then properties."""
    qid = {key: f"Q{FIRST_ID + number}" for number, key in enumerate(facts["keys"])}
    class_qid = {name: f"Q{FIRST_ID + len(qid) + number}" for number, name in enumerate(CLASSES)}
    english = Locale.parse("en")
    entities = []
    for key, claims in facts["relations"].items():
        kind, code = key
        item = {"type": "item", "id": qid[key], "descriptions": {}, "aliases": {}, "claims": {},
                "labels": {lang: {"language": lang, "value": name} for lang, name in labels[key].items()},
                "sitelinks": {f"{lang}wiki": {"site": f"{lang}wiki", "title": title, "badges": []} for lang, title in links[key].items()}}
        if kind == "territory":
            item["aliases"] = value_list([code], "en")
            if code in UN_MEMBERS:
                continent = CONTINENTS.index(next(target[1] for prop, target in claims if prop == "P30"))
                item["descriptions"] = {lang: {"language": lang, "value": texts.split("|")[continent]}
                                        for lang, texts in DESCRIPTIONS.items()}
        if kind == "currency":
            item["aliases"] = value_list(sorted({code, english.currency_symbols.get(code, code)}), "en")
        for prop, target in claims:
            item["claims"].setdefault(prop, []).append(item_claim(prop, qid[target]))
        item["claims"]["P31"] = [item_claim("P31", class_qid[item_class(key)])]
        entities.append(item)
    for name, parent in CLASSES.items():
        entities.append({"type": "item", "id": class_qid[name], "descriptions": {}, "aliases": {}, "sitelinks": {},
                         "labels": {"en": {"language": "en", "value": name}},
                         "claims": {"P279": [item_claim("P279", class_qid[parent])]} if parent else {}})
    entities.append({"type": "lexeme", "id": "L1", "lemmas": {"en": {"language": "en", "value": "country"}},
                     "language": qid.get(("language", "en"), "Q0"), "claims": {}, "forms": [], "senses": []})
    for prop, names in PROPERTIES.items():
        entities.append({"type": "property", "id": prop, "datatype": "wikibase-item", "descriptions": {}, "aliases": {}, "claims": {},
                         "labels": {lang: {"language": lang, "value": name.replace("_", " ")}
                                    for lang, name in zip(TEXT_LANGUAGES, names.split())}})
    return [json.dumps(entity, ensure_ascii=False, sort_keys=True, separators=(",", ":")) for entity in entities]


def link(lang: str, target: tuple, labels: dict, links: dict) -> str | None:
    """``[[Label]]`` where the target has a page in this wiki, the bare label where it has none (a
    title taken by another entity), None where CLDR does not name it in ``lang``."""
    label = labels[target].get(lang)
    if not label or lang not in links[target]:
        return label
    if lang == "en" and target[0] == "currency":  # "[[Japanese Yen|Japanese yen]]": CLDR capitalises the unit
        *head, unit = label.split(" ")
        if head and unit.istitle():
            return f"[[{label}|{' '.join(head + [unit.lower()])}]]"
    return f"[[{label}]]"


def labelled(lang: str, label: str, value: str) -> str:
    """A labelled sentence, "Script: [[Latin]].", in the punctuation of ``lang``."""
    if lang in ("ja", "zh"):
        return f"{label}：{value}。"
    return f"{label}{' :' if lang == 'fr' else ':'} {value}."


def article(lang: str, key: tuple, facts: dict, labels: dict, links: dict) -> str | None:
    """Templated wikitext for one territory in one language, or None where CLDR has no name for it."""
    text, code = TEXT[lang], key[1]
    name = labels[key].get(lang)
    if not name:
        return None
    targets: dict[str, list[tuple]] = {}
    for prop, target in facts["relations"][key]:
        targets.setdefault(prop, []).append(target)
    targets["cities"] = [city for city, claims in facts["relations"].items() if city[0] == "city" and claims[0][1] == key]

    def linked(target: tuple) -> str | None:
        return link(lang, target, labels, links)

    def names(prop: str) -> str:
        return format_list([n for n in map(linked, targets.get(prop, [])) if n], locale=lang) if targets.get(prop) else ""

    region, continent = targets["P361"][0], targets["P30"][0]
    the = "the " if lang == "en" and region[1] in ENGLISH_THE else ""
    noun = text["noun"][code not in UN_MEMBERS]
    sentences = [text["first"].format(name=f"'''{name}'''", noun=noun, region=the + (linked(region) or region[1]))
                 + '<ref name="cldr">Unicode CLDR, territory containment.</ref>']
    the = "the " if lang == "en" and continent[1] in ENGLISH_THE else ""
    sentences.append(text["continent"].format(x=the + (linked(continent) or continent[1])))
    languages = [n for n in map(linked, targets.get("P37", [])) if n]
    if languages:
        sentences.append(text["languages"][len(languages) > 1].format(x=format_list(languages, locale=lang)))
    for field, prop in (("currency", "P38"), ("cities", "cities")):
        if names(prop):
            sentences.append(text[field].format(x=names(prop)))
    sentences[-1] += '<ref name="cldr" />'
    infobox = f"{{{{Infobox country\n| code = {code}\n| region = {labels[region].get(lang, region[1])}\n}}}}\n"
    spacer = "" if lang in ("ja", "zh") else " "
    return infobox + spacer.join(sentences) + f"\n\n[[{text['category']}:CLDR]]\n"


def entry(lang: str, key: tuple, facts: dict, labels: dict, links: dict) -> str | None:
    """Templated wikitext for a region (its parent and its parts: the links that put territories in
    the entity vocabulary) or a language (its script), as labelled sentences; None where it would say nothing."""
    name = labels[key].get(lang)
    property_label = {prop: names.split()[TEXT_LANGUAGES.index(lang)].replace("_", " ") for prop, names in PROPERTIES.items()}
    if key[0] == "region":
        parents = [target for prop, target in facts["relations"][key] if prop == "P361"]
        parts = [child for child, claims in facts["relations"].items()
                 if child[0] in ("region", "territory") and ("P361", key) in claims]
        said = [("P361", parents), (MEMBERS_LABEL[lang], parts)]
    else:
        said = [("P282", [target for prop, target in facts["relations"][key] if prop == "P282"])]
    sentences = [labelled(lang, property_label.get(label, label), format_list(names, locale=lang))
                 for label, targets in said if (names := [n for n in (link(lang, t, labels, links) for t in targets) if n])]
    if not name or not sentences:
        return None
    spacer = "" if lang in ("ja", "zh") else " "
    return f"'''{name}'''{'' if lang in ('ja', 'zh') else ' —'} " + spacer.join(sentences) + f"\n\n[[{TEXT[lang]['category']}:CLDR]]\n"


def wiki_dump(lang: str, facts: dict, labels: dict, links: dict) -> tuple[str, int]:
    """A ``pages-articles`` export: one article per territory with a redirect from its code, an entry per
    region and per language, a category page."""
    pages, titles = [], set()
    for key in facts["keys"]:
        if key[0] == "territory" and lang in links[key] and (text := article(lang, key, facts, labels, links)):
            pages.append((links[key][lang], 0, text, None))
            titles.add(links[key][lang])
    for title, *_ in list(pages):
        code = next(key[1] for key in facts["keys"] if key[0] == "territory" and links[key].get(lang) == title)
        if code not in titles:
            pages.append((code, 0, f"#REDIRECT [[{title}]]", title))
    for key in facts["keys"]:
        if key[0] in ("region", "language") and lang in links[key] and (text := entry(lang, key, facts, labels, links)):
            pages.append((links[key][lang], 0, text, None))
    category, template = TEXT[lang]["category"], TEXT[lang]["template"]
    pages.append((f"{category}:CLDR", 14, "Unicode CLDR.", None))
    xml = mediawiki_xml(lang, (page_xml(title, text, namespace, page_id, redirect, FIRST_ID + page_id)
                               for page_id, (title, namespace, text, redirect) in enumerate(pages, 1)),
                        namespaces={10: template, 14: category}, sitename="CLDR demo", generator="lightning_kg.recipes.cldr_demo")
    return xml, len(pages)


def build(out: Path, languages: tuple[str, ...] = TEXT_LANGUAGES, max_territories: int | None = None) -> dict:
    """Write ``wikidata-cldr.json.bz2`` and ``{lang}wiki-cldr.xml.bz2`` into ``out``; returns counts."""
    facts = cldr_facts(max_territories)
    locales = sorted(set(label_locales()) | set(languages))
    labels = localized_labels(facts["keys"], locales)
    links = sitelinks(facts["keys"], labels, languages)
    out.mkdir(parents=True, exist_ok=True)
    lines = wikidata_lines(facts, labels, links)
    write_dump(out / "wikidata-cldr.json.bz2", wikidata_json(lines))
    pages = {}
    for lang in languages:
        xml, pages[lang] = wiki_dump(lang, facts, labels, links)
        write_dump(out / f"{lang}wiki-cldr.xml.bz2", xml)
    kinds = {kind: sum(key[0] == kind for key in facts["keys"]) for kind in KINDS}
    claims = sum(len(claims) for claims in facts["relations"].values())
    return {"items": kinds, "properties": len(PROPERTIES), "claims": claims, "label_locales": len(locales), "pages": pages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("shards/demo/sources"), help="directory to write the dumps into")
    parser.add_argument("--languages", default=",".join(TEXT_LANGUAGES), help="comma-separated wikis to write (default: all 14)")
    parser.add_argument("--max-territories", type=int, help="keep the first N territories by code (quick builds in tests)")
    args = parser.parse_args()
    languages = tuple(args.languages.split(","))
    unknown = sorted(set(languages) - set(TEXT_LANGUAGES))
    if unknown:
        parser.error(f"--languages: no templates for {unknown}; expected some of {','.join(TEXT_LANGUAGES)}")
    print(f"wrote {args.out}: {build(args.out, languages, args.max_territories)}")


if __name__ == "__main__":
    main()

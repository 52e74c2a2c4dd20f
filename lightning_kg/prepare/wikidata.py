"""Stream entities out of Wikidata JSON dumps.

The dump is one JSON array with an entity per line (``[``, then lines ending in ``,``, then ``]``),
so it is read line by line and never held whole. Items and properties are yielded; lexemes and
other kinds are skipped quietly; a line that is not an entity is reported with its number.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lightning_kg.prepare.dumps import BadRecord, open_dump, raise_on_error

KINDS = {"item", "property"}


@dataclass
class WikidataEntity:
    id: str
    kind: str  # "item" or "property"
    labels: dict[str, str]
    descriptions: dict[str, str]
    aliases: dict[str, list[str]]
    sitelinks: dict[str, str]  # site -> title, e.g. {"enwiki": "Japan"}
    claims: list[tuple[str, str]]  # (property, object item) of item-valued claims


def _texts(values: dict) -> dict[str, str]:
    return {lang: v["value"] for lang, v in values.items() if isinstance(v, dict) and "value" in v}


def _item_claims(claims: dict) -> list[tuple[str, str]]:
    """(property, item) for every statement whose main value is an item; novalue/somevalue skipped."""
    found = []
    for prop, statements in claims.items():
        for statement in statements:
            snak = statement.get("mainsnak", {})
            value = snak.get("datavalue", {}) if snak.get("snaktype") == "value" else {}
            if value.get("type") != "wikibase-entityid":
                continue
            target = value.get("value", {})
            if target.get("entity-type", "item") != "item":
                continue
            qid = target.get("id") or (f"Q{target['numeric-id']}" if "numeric-id" in target else None)
            if qid:
                found.append((prop, qid))
    return found


def parse_entity(record: dict) -> WikidataEntity | None:
    """One dump entity, or None for kinds other than items and properties."""
    kind = record.get("type")
    if kind not in KINDS:
        return None
    return WikidataEntity(
        id=record["id"],
        kind=kind,
        labels=_texts(record.get("labels") or {}),
        descriptions=_texts(record.get("descriptions") or {}),
        aliases={lang: [a["value"] for a in values if "value" in a] for lang, values in (record.get("aliases") or {}).items()},
        sitelinks={site: link["title"] for site, link in (record.get("sitelinks") or {}).items() if "title" in link},
        claims=_item_claims(record.get("claims") or {}) if kind == "item" else [],
    )


def iter_entities(path: str | os.PathLike, on_error: Callable[[BadRecord], None] | None = None) -> Iterator[WikidataEntity]:
    """Items and properties of a dump (.json, .json.bz2, .json.gz). A bad line is reported to
    ``on_error`` and skipped (without one, ``DumpError`` is raised)."""
    on_error = on_error or raise_on_error
    path = str(path)
    with open_dump(path) as stream:
        for number, raw in enumerate(stream, 1):
            line = raw.strip().rstrip(b",")
            if not line or line in (b"[", b"]"):
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                    raise ValueError("not an object with a string \"id\"")
                entity = parse_entity(record)
            except (ValueError, AttributeError, TypeError, KeyError) as error:
                on_error(BadRecord(path, f"line {number}", f"not a Wikidata entity ({error}); expected one JSON "
                                   "object per line with an \"id\", as in Wikidata's JSON dumps"))
                continue
            if entity is not None:
                yield entity

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

import msgspec

from lightning_kg.prepare.dumps import BadRecord, DumpError, open_dump, raise_on_error

KINDS = {"item", "property"}
# A Wikidata file with more malformed lines than this share (and at least MIN_MALFORMED_LINES of
# them) is not the file meant: an error, not thousands of skipped lines.
MAX_MALFORMED_SHARE = 0.01
MIN_MALFORMED_LINES = 10
HEAD_LINES = 1000  # lines of each Wikidata file read before the Wikipedia dumps are parsed


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


class EntityHead(msgspec.Struct):
    """A line's id and kind, its sitelinks left as raw JSON: what decides whether the line is decoded
    whole. msgspec only checks the JSON of the rest (labels, claims), which makes this look some 40x
    cheaper than ``json.loads`` of the line (bench/prepare_scale.py)."""

    id: object = None
    type: object = None
    sitelinks: msgspec.Raw = msgspec.Raw(b"{}")


HEAD_DECODER = msgspec.json.Decoder(EntityHead)


class EntityLabels(msgspec.Struct):
    """A line's labels alone, the rest only checked to be JSON."""

    labels: object = None


LABELS_DECODER = msgspec.json.Decoder(EntityLabels)
# wanted(head) -> decode this line whole? (an item linked from the wikis, a property)
Wanted = Callable[[EntityHead], bool]


class WikidataInputError(ValueError):
    """A Wikidata file that is not one: empty, not JSON lines of entities, or mostly malformed."""


def iter_entities(path: str | os.PathLike, on_error: Callable[[BadRecord], None] | None = None, max_lines: int | None = None,
                  accept_bad: bool = False, wanted: Wanted | None = None) -> Iterator[WikidataEntity]:
    """Items and properties of a dump (.json, .json.bz2, .json.gz). A bad line is reported to
    ``on_error`` and skipped (without one, ``DumpError`` is raised). ``max_lines``: read only the
    head of the file. ``wanted``: only entities it accepts are decoded whole and yielded; the others
    are only checked to be JSON (a line that is not JSON, or has no string id, is still reported).

    A file that yields no entity, or whose malformed lines are more than ``MAX_MALFORMED_SHARE`` of
    its lines (and at least ``MIN_MALFORMED_LINES``), raises ``WikidataInputError`` once read,
    unless ``accept_bad``: it is another file than meant (an XML dump, an unfinished download).
    """
    on_error = on_error or raise_on_error
    path = str(path)
    lines = entities = malformed = 0
    first_problem = ""
    with open_dump(path) as stream:
        for number, raw in enumerate(stream, 1):
            if max_lines is not None and number > max_lines:
                break
            line = raw.strip().rstrip(b",")
            if not line or line in (b"[", b"]"):
                continue
            lines += 1
            if wanted is not None:
                try:
                    head = HEAD_DECODER.decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    head = None  # decoded whole below, which says what is wrong as before
                if head is not None and isinstance(head.id, str):
                    if head.type not in KINDS:
                        continue
                    if not wanted(head):
                        entities += 1
                        continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                    raise ValueError("not an object with a string \"id\"")
                entity = parse_entity(record)
            except (ValueError, AttributeError, TypeError, KeyError) as error:
                malformed += 1
                first_problem = first_problem or f"line {number}: {error}"
                on_error(BadRecord(path, f"line {number}", f"not a Wikidata entity ({error}); expected one JSON "
                                   "object per line with an \"id\", as in Wikidata's JSON dumps"))
                continue
            if entity is not None:
                entities += 1
                yield entity
    if accept_bad:
        return
    override = "; pass --accept_bad_wikidata true to go on with it"
    if entities == 0:
        what = f"{lines} line(s), none of them an item or a property" + (f" (first problem: {first_problem})" if first_problem else "")
        raise WikidataInputError(f"{path}: no Wikidata entity read from {what if lines else 'an empty file'}; expected Wikidata's "
                                 f"JSON dump (a JSON array, one entity per line){override}")
    if malformed >= MIN_MALFORMED_LINES and malformed > MAX_MALFORMED_SHARE * lines:
        raise WikidataInputError(f"{path}: {malformed} of {lines} lines ({malformed / lines:.0%}) are not Wikidata entities, more "
                                 f"than {MAX_MALFORMED_SHARE:.0%} (first: {first_problem}): a broken or another file{override}")


def iter_labels(path: str | os.PathLike, ids: set[str]) -> Iterator[tuple[str, dict[str, str]]]:
    """(id, labels) of the items and properties ``ids``, decoding nothing else of a line: the last
    pass of the merge, for the objects of the vocabulary's facts. Lines that are not entities were
    reported by the first pass and are passed over here."""
    with open_dump(path) as stream:
        for raw in stream:
            line = raw.strip().rstrip(b",")
            if not line or line in (b"[", b"]"):
                continue
            try:
                head = HEAD_DECODER.decode(line)
                if head.id not in ids or head.type not in KINDS:
                    continue
                labels = LABELS_DECODER.decode(line).labels
            except (msgspec.DecodeError, msgspec.ValidationError, TypeError):  # TypeError: an unhashable id
                continue
            if isinstance(labels, dict):
                yield head.id, _texts(labels)


def check_wikidata_head(path: str | os.PathLike, strict: bool, accept_bad: bool = False) -> None:
    """Read the first ``HEAD_LINES`` lines of a Wikidata file before anything else runs, so that an
    empty file, an XML dump given by mistake or (``strict``) a malformed line stops the run at once,
    not hours later when the merge stage reaches it."""
    def on_error(record: BadRecord) -> None:
        if strict:
            raise DumpError(f"malformed record (--strict stops here): {record}")

    for _ in iter_entities(path, on_error=on_error, max_lines=HEAD_LINES, accept_bad=accept_bad):
        pass

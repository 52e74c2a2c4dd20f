"""Stream entities out of Wikidata JSON dumps.

The dump is one JSON array with an entity per line (``[``, then lines ending in ``,``, then ``]``),
so it is read line by line and never held whole. Items and properties are yielded; lexemes and
other kinds are skipped quietly; a line that is not an entity is reported with its number.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace

import msgspec

from lightning_kg.prepare import chunk_pool
from lightning_kg.prepare.chunk_pool import ChunkPool
from lightning_kg.prepare.dumps import BadRecord, DumpError, LineChunk, open_dump, raise_on_error
from lightning_kg.prepare.namespaces import canonical_title

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
    whole. msgspec only checks the JSON of the rest (labels, claims), which makes this look many times
    cheaper than ``json.loads`` of the line (docs/PREPARE.md, "At full scale")."""

    id: object = None
    type: object = None
    sitelinks: msgspec.Raw = msgspec.Raw(b"{}")


HEAD_DECODER = msgspec.json.Decoder(EntityHead)


class EntityLabels(msgspec.Struct):
    """A line's labels alone, the rest only checked to be JSON."""

    labels: object = None


LABELS_DECODER = msgspec.json.Decoder(EntityLabels)
GENERIC_DECODER = msgspec.json.Decoder()


class WikidataInputError(ValueError):
    """A Wikidata file that is not one: empty, not JSON lines of entities, mostly malformed, or cut short."""


@dataclass(frozen=True)
class Selection:
    """Which entity lines are decoded whole: those with a key in ``keys``. With ``sites``, a line's
    keys are the (site, normalised title) of its sitelinks to those wikis (the first pass: items the
    wikis link to), and properties are always taken; without, its id (the second pass).

    What is not asked for is left out where the line is decoded (a worker), not sent back: the
    texts in other languages than ``languages`` (None: all; a popular item has hundreds) and, with
    ``sites``, the sitelinks to other wikis."""

    keys: Collection
    sites: tuple[str, ...] | None = None
    languages: frozenset[str] | None = None

    def trim(self, entity: WikidataEntity) -> WikidataEntity:
        def kept(values: dict) -> dict:
            return values if self.languages is None else {lang: v for lang, v in values.items() if lang in self.languages}

        sitelinks = entity.sitelinks if self.sites is None else {s: t for s, t in entity.sitelinks.items() if s in self.sites}
        return replace(entity, labels=kept(entity.labels), descriptions=kept(entity.descriptions), aliases=kept(entity.aliases),
                       sitelinks=sitelinks)


def line_keys(head: EntityHead, selection: Selection) -> list | None:
    """The keys ``selection`` looks a line up by; None where it is decoded whole whatever they are:
    a property, or sitelinks that are not as Wikidata writes them (decoding whole reports them)."""
    if selection.sites is None:
        return [head.id]
    if head.type != "item":
        return None
    try:
        links = GENERIC_DECODER.decode(head.sitelinks)
    except msgspec.DecodeError:
        return None
    if not isinstance(links, dict):
        return None
    keys = []
    for site in selection.sites:
        link = links.get(site)
        if link is None:
            continue
        if not isinstance(link, dict) or not isinstance(link.get("title", ""), str):
            return None
        if "title" in link:
            keys.append((site, canonical_title(link["title"])))
    return keys


WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")  # what bytes.strip() takes off
BRACKETS = frozenset(b"[]")


def _lines(chunk: LineChunk) -> tuple[int, Iterator[tuple[int, bytes | memoryview]]]:
    """(line ends in the chunk, (index, line) of its entity lines: stripped of white space and the
    trailing comma, the array's brackets and blank lines left out). A line is a view of the chunk's
    line, not a copy (msgspec decodes views; ``json.loads`` needs ``bytes()`` of it)."""
    lines = chunk.lines(chunk_pool.SLOTS)

    def entity_lines() -> Iterator[tuple[int, bytes | memoryview]]:
        for index, raw in enumerate(lines):
            start, end = 0, len(raw)
            while start < end and raw[start] in WHITESPACE:
                start += 1
            while end > start and raw[end - 1] in WHITESPACE:
                end -= 1
            while end > start and raw[end - 1] == 44:  # ","
                end -= 1
            if end - start > 1 or (end - start == 1 and raw[start] not in BRACKETS):
                yield index, raw if end - start == len(raw) else memoryview(raw)[start:end]

    return len(lines) - 1, entity_lines()


def entity_chunk(chunk: LineChunk, selection: Selection | None) -> tuple[int, int, int, list]:
    """Worker task: a chunk's lines -> (line ends, entity lines, entities passed over, ``[(index,
    keys, outcome)]`` for the lines decoded whole), ``outcome`` the entity, None for another kind, or
    the reason it is not one. ``keys`` are what the caller checks against the exact set, since a
    :class:`~lightning_kg.prepare.chunk_pool.KeyFilter` lets a few lines too many through."""
    ends, entity_lines = _lines(chunk)
    # First the heads, to find which lines to decode whole: their keys are looked up all at once.
    wanted = []  # (index, line, keys: None where it is decoded whatever they are)
    lines = 0
    for index, line in entity_lines:
        lines += 1
        keys = None
        if selection is not None:
            try:
                head = HEAD_DECODER.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError):
                head = None  # decoded whole below, which says what is wrong as before
            if head is not None and isinstance(head.id, str):
                if head.type not in KINDS:
                    continue
                keys = line_keys(head, selection)
        wanted.append((index, line, keys))
    looked_up = [(index, keys) for index, _, keys in wanted if keys is not None]
    hits = chunk_pool.any_of(selection.keys, [keys for _, keys in looked_up]) if looked_up else []
    passed_over = {index for (index, _), hit in zip(looked_up, hits) if not hit}
    decoded = []
    for index, line, keys in wanted:
        if index in passed_over:
            continue
        try:
            record = json.loads(bytes(line))
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise ValueError("not an object with a string \"id\"")
            outcome = parse_entity(record)
        except (ValueError, AttributeError, TypeError, KeyError) as error:
            outcome = str(error)
        if selection is not None and isinstance(outcome, WikidataEntity):
            outcome = selection.trim(outcome)
        decoded.append((index, keys, outcome))
    return ends, lines, len(passed_over), decoded


def _chunks(path: str, pool: ChunkPool, max_lines: int | None, function: Callable, *arguments,
            progress: Callable[[int], None] | None = None) -> Iterator:
    """``function(chunk, *arguments)`` of each chunk of the file in order, by ``pool`` (of its first
    ``max_lines`` lines only, here, if given); a file cut short raises ``WikidataInputError``.
    ``progress`` is told the file's (compressed) bytes read."""
    if max_lines is not None:
        with open_dump(path) as stream:
            head = b"".join(itertools.islice(stream, max_lines))
        yield function(LineChunk(b"", head, len(head)), *arguments)
        return
    try:
        yield from pool.map_lines(function, path, *arguments, progress=progress)
    except (EOFError, OSError) as error:
        raise WikidataInputError(f"{path}: cut short ({error}): an unfinished download or a damaged file; "
                                 "download it again") from error


def iter_entities(path: str | os.PathLike, on_error: Callable[[BadRecord], None] | None = None, max_lines: int | None = None,
                  accept_bad: bool = False, selection: Selection | None = None, pool: ChunkPool | None = None,
                  progress: Callable[[int], None] | None = None) -> Iterator[WikidataEntity]:
    """Items and properties of a dump (.json, .json.bz2, .json.gz). A bad line is reported to
    ``on_error`` and skipped (without one, ``DumpError`` is raised). ``max_lines``: read only the
    head of the file. ``selection``: only entities it selects are decoded whole and yielded; the
    others are only checked to be JSON (a line that is not JSON, or has no string id, is still
    reported). ``pool``: its workers decode the chunks, with the same result as this process.
    ``progress`` is told the file's (compressed) bytes read.

    A file that yields no entity, or whose malformed lines are more than ``MAX_MALFORMED_SHARE`` of
    its lines (and at least ``MIN_MALFORMED_LINES``), raises ``WikidataInputError`` once read,
    unless ``accept_bad``: it is another file than meant (an XML dump, an unfinished download).
    A file cut short raises it whatever ``accept_bad`` says.
    """
    on_error = on_error or raise_on_error
    path = str(path)
    pool = pool or ChunkPool()
    shared = None if selection is None else replace(selection, keys=pool.shared_keys(selection.keys))
    lines = entities = malformed = 0
    first_problem = ""
    offset = 0  # line ends before the chunk: its line i is line offset + i + 1 of the file
    for ends, chunk_lines, passed, decoded in _chunks(path, pool, max_lines, entity_chunk, shared, progress=progress):
        lines += chunk_lines
        entities += passed
        for index, keys, outcome in decoded:
            number = offset + index + 1
            if keys is not None and not any(key in selection.keys for key in keys):
                entities += 1  # let through by the workers' filter, not selected
            elif isinstance(outcome, str):
                malformed += 1
                first_problem = first_problem or f"line {number}: {outcome}"
                on_error(BadRecord(path, f"line {number}", f"not a Wikidata entity ({outcome}); expected one JSON "
                                   "object per line with an \"id\", as in Wikidata's JSON dumps"))
            elif outcome is not None:
                entities += 1
                yield outcome
        offset += ends
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


def label_chunk(chunk: LineChunk, ids: Collection, languages: frozenset[str] | None) -> list[tuple[str, dict[str, str]]]:
    """Worker task: (id, labels in ``languages``, None: all) of a chunk's items and properties with
    an id in ``ids``, decoding nothing else of a line."""
    heads = []
    for _, line in _lines(chunk)[1]:
        try:
            head = HEAD_DECODER.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if isinstance(head.id, str) and head.type in KINDS:
            heads.append((head.id, line))
    found = []
    for (entity_id, line), wanted in zip(heads, chunk_pool.any_of(ids, [[entity_id] for entity_id, _ in heads])):
        if not wanted:
            continue
        try:
            labels = LABELS_DECODER.decode(line).labels
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if isinstance(labels, dict):
            found.append((entity_id, _texts(labels if languages is None else {k: v for k, v in labels.items() if k in languages})))
    return found


def iter_labels(path: str | os.PathLike, ids: set[str], pool: ChunkPool | None = None,
                languages: frozenset[str] | None = None, progress: Callable[[int], None] | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """(id, labels in ``languages``, None: all) of the items and properties ``ids``: the last pass of
    the merge, for the objects of the vocabulary's facts. Lines that are not entities were reported
    by the first pass and are passed over here."""
    pool = pool or ChunkPool()
    for found in _chunks(str(path), pool, None, label_chunk, pool.shared_keys(ids), languages, progress=progress):
        yield from ((entity_id, labels) for entity_id, labels in found if entity_id in ids)


def check_wikidata_head(path: str | os.PathLike, strict: bool, accept_bad: bool = False) -> None:
    """Read the first ``HEAD_LINES`` lines of a Wikidata file before anything else runs, so that an
    empty file, an XML dump given by mistake or (``strict``) a malformed line stops the run at once,
    not hours later when the merge stage reaches it."""
    def on_error(record: BadRecord) -> None:
        if strict:
            raise DumpError(f"malformed record (--strict stops here): {record}")

    for _ in iter_entities(path, on_error=on_error, max_lines=HEAD_LINES, accept_bad=accept_bad):
        pass

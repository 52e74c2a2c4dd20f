"""NER tag sequences and entity spans, read the way seqeval's default mode reads them.

One reading serves IOB1, IOB2 (BIO) and IOBES alike, so a file is never refused for its scheme:
an ``I-X`` after ``O`` or after another type starts an entity (IOB1, and seqeval's repair of a
broken IOB2 sequence), ``B-X`` always starts one, ``E-X``/``S-X`` end one. What a scheme forbids
(``I-PER`` after ``B-LOC`` in IOB2) is found separately by :func:`scheme_breaks`, so the reader can
count and report it instead of dropping or silently mending it. Spans are word indices, end exclusive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

SCHEMES = ("IOB1", "IOB2", "IOBES")
PREFIXES = ("B", "I", "E", "S")
Span = tuple[int, int, str]  # (first word, one past the last word, entity type)
REPAIRS = {  # what :func:`spans_from_tags` makes of the tags each scheme forbids
    "IOB1": "a B- tag starts an entity wherever it stands",
    "IOB2": "an I- tag that continues no entity of its type starts one",
    "IOBES": "an I- or E- tag that continues no entity of its type starts one, an entity left open ends at its last tag",
}


def split_tag(tag: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", "")``; anything else is a ValueError."""
    if tag == "O":
        return "O", ""
    prefix, dash, kind = tag.partition("-")
    if prefix not in PREFIXES or not dash or not kind:
        raise ValueError(f"the tag {tag!r}: expected O or one of B-, I-, E-, S- followed by a type (B-PER)")
    return prefix, kind


def _ends(prev_prefix: str, prefix: str, prev_kind: str, kind: str) -> bool:
    """Whether an entity open at the previous word closes before this one (seqeval's end_of_chunk)."""
    return (prev_prefix in ("E", "S")
            or (prev_prefix in ("B", "I") and prefix in ("B", "S", "O"))
            or (prev_prefix != "O" and prev_kind != kind))


def _starts(prev_prefix: str, prefix: str, prev_kind: str, kind: str) -> bool:
    """Whether an entity starts at this word (seqeval's start_of_chunk)."""
    return (prefix in ("B", "S")
            or (prefix in ("I", "E") and prev_prefix in ("O", "E", "S"))
            or (prefix != "O" and prev_kind != kind))


def spans_from_tags(tags: Sequence[str]) -> list[Span]:
    """The entities of one sentence's tags, in order, as seqeval's default mode finds them."""
    spans: list[Span] = []
    start = None
    prev_prefix, prev_kind = "O", ""
    for position, tag in enumerate([*tags, "O"]):  # the trailing O closes an entity at the sentence's end
        prefix, kind = split_tag(tag)
        if start is not None and _ends(prev_prefix, prefix, prev_kind, kind):
            spans.append((start, position, prev_kind))
            start = None
        if _starts(prev_prefix, prefix, prev_kind, kind):
            start = position
        prev_prefix, prev_kind = prefix, kind
    return spans


def tags_from_spans(spans: Iterable[Span], length: int, scheme: str = "IOB2") -> list[str]:
    """The tags of a sentence of ``length`` words holding ``spans`` (disjoint, inside the sentence)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme {scheme!r}: expected one of {', '.join(SCHEMES)}")
    tags = ["O"] * length
    previous_end, previous_kind = -1, ""
    for start, end, kind in sorted(spans):
        if not 0 <= start < end <= length:
            raise ValueError(f"span {(start, end, kind)}: expected 0 <= start < end <= {length}, the sentence's length")
        if start < previous_end:
            raise ValueError(f"span {(start, end, kind)} overlaps the one before it; expected disjoint spans")
        tags[start:end] = [f"I-{kind}"] * (end - start)
        if scheme == "IOB2" or (scheme == "IOB1" and start == previous_end and kind == previous_kind):
            tags[start] = f"B-{kind}"
        elif scheme == "IOBES" and end - start == 1:
            tags[start] = f"S-{kind}"
        elif scheme == "IOBES":
            tags[start], tags[end - 1] = f"B-{kind}", f"E-{kind}"
        previous_end, previous_kind = end, kind
    return tags


def guess_scheme(sentences: Iterable[Sequence[str]]) -> str:
    """The scheme a file's tags follow: IOBES if any ``E-``/``S-`` appears, else IOB1 where more
    entities open with ``I-`` than with ``B-`` (an opening is a tag after ``O`` or another type), else IOB2."""
    opened_by = {"B": 0, "I": 0}
    for tags in sentences:
        prev_prefix, prev_kind = "O", ""
        for tag in tags:
            prefix, kind = split_tag(tag)
            if prefix in ("E", "S"):
                return "IOBES"
            if prefix in opened_by and (prev_prefix == "O" or prev_kind != kind):
                opened_by[prefix] += 1
            prev_prefix, prev_kind = prefix, kind
    return "IOB1" if opened_by["I"] > opened_by["B"] else "IOB2"


def scheme_breaks(tags: Sequence[str], scheme: str) -> list[int]:
    """Positions whose tag ``scheme`` forbids after the tag before it (for IOBES, also a ``B-``/``I-``
    left open: the position of the word that should have closed it, the last word at the sentence's end)."""
    breaks = []
    prev_prefix, prev_kind = "O", ""
    for position, tag in enumerate([*tags, "O"]):
        prefix, kind = split_tag(tag)
        is_open = prev_prefix in ("B", "I")  # an entity runs through the previous word
        continues = is_open and prev_kind == kind
        if scheme == "IOB2":
            broken = prefix == "I" and not continues
        elif scheme == "IOB1":
            broken = prefix == "B" and not continues
        elif scheme == "IOBES":  # an open entity must go on (I-, E- of its type), and only an open one may
            broken = is_open != (prefix in ("I", "E")) or (is_open and not continues)
        else:
            raise ValueError(f"scheme {scheme!r}: expected one of {', '.join(SCHEMES)}")
        if broken:
            breaks.append(min(position, len(tags) - 1))
        prev_prefix, prev_kind = prefix, kind
    return breaks

"""Turn parsed documents and facts into training samples (see docs/FORMATS.md).

Text is packed into sequences of at most ``max_seq_length`` tokens on sentence or paragraph
boundaries, as mLUKE and XLM-K build theirs, and a mention is never cut in two: a unit longer than
a sequence is split between tokens, and mentions crossing that split are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

# A sentence ends at . ! ? (or their CJK forms) followed by a space, or right after a CJK stop.
SENTENCE_END = re.compile(r"[.!?](?=\s)|[。！？]")


@dataclass
class TextSequence:
    input_ids: np.ndarray  # (S,) int32, <s> ... </s>
    mentions: np.ndarray  # (N, 3) int32: token_start, token_end (exclusive), entity index


@dataclass
class _Unit:
    """A run of tokens that packing keeps together: a sentence, or a paragraph's tail."""

    token_ids: list[int]
    mentions: list[tuple[int, int, int]]  # token spans relative to the unit


def char_spans_to_token_spans(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[tuple[int, int] | None]:
    """Token span ``[first, last + 1)`` of every character span; None where no token overlaps."""
    result = []
    for start, end in spans:
        covered = [i for i, (a, b) in enumerate(offsets) if b > start and a < end and b > a]
        result.append((covered[0], covered[-1] + 1) if covered else None)
    return result


def _sentence_token_breaks(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Token indices where a new sentence starts."""
    breaks = []
    token = 0
    for match in SENTENCE_END.finditer(text):
        char = match.end()
        while token < len(offsets) and offsets[token][0] < char:
            token += 1
        if 0 < token < len(offsets):
            breaks.append(token)
    return sorted(set(breaks))


def _paragraph_units(token_ids: list[int], offsets, text: str, mentions: list[tuple[int, int, int]]) -> list[_Unit]:
    """Split one tokenized paragraph into sentence units; a mention never straddles two units."""
    token_mentions = []
    spans = char_spans_to_token_spans(offsets, [(s, e) for s, e, _ in mentions])
    for span, (_, _, entity) in zip(spans, mentions):
        if span is not None:
            token_mentions.append((span[0], span[1], entity))
    breaks = [b for b in _sentence_token_breaks(text, offsets) if not any(s < b < e for s, e, _ in token_mentions)]
    bounds = [0, *breaks, len(token_ids)]
    units = []
    for lo, hi in zip(bounds, bounds[1:]):
        inside = [(s - lo, e - lo, ent) for s, e, ent in token_mentions if s >= lo and e <= hi]
        units.append(_Unit(token_ids[lo:hi], inside))
    return units


def _split_long(unit: _Unit, budget: int) -> list[_Unit]:
    """Cut a unit longer than ``budget`` between tokens; mentions that cross a cut are dropped."""
    pieces = []
    for lo in range(0, len(unit.token_ids), budget):
        hi = lo + budget
        inside = [(s - lo, e - lo, ent) for s, e, ent in unit.mentions if s >= lo and e <= hi]
        pieces.append(_Unit(unit.token_ids[lo:hi], inside))
    return pieces


def pack_document(
    paragraphs: Sequence[tuple[str, Sequence[tuple[int, int, int]]]],
    tokenizer,
    max_seq_length: int,
) -> Iterator[TextSequence]:
    """Pack a document's paragraphs into sequences.

    ``paragraphs``: (text, [(char_start, char_end, entity_index), ...]) in reading order. Mentions
    with entity index < 0 are left out (an entity outside the vocabulary).
    """
    budget = max_seq_length - 2
    texts = [text for text, _ in paragraphs]
    if not texts:
        return
    # verbose=False: paragraphs longer than the model are expected here; packing cuts them.
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    units: list[_Unit] = []
    for (text, mentions), ids, offsets in zip(paragraphs, encoded["input_ids"], encoded["offset_mapping"]):
        kept = [m for m in mentions if m[2] >= 0]
        for unit in _paragraph_units(ids, offsets, text, kept):
            units.extend(_split_long(unit, budget) if len(unit.token_ids) > budget else [unit])
    current_ids: list[int] = []
    current_mentions: list[tuple[int, int, int]] = []
    for unit in units:
        if current_ids and len(current_ids) + len(unit.token_ids) > budget:
            yield _finish(current_ids, current_mentions, tokenizer)
            current_ids, current_mentions = [], []
        offset = len(current_ids)
        current_ids.extend(unit.token_ids)
        current_mentions.extend((s + offset, e + offset, ent) for s, e, ent in unit.mentions)
    if current_ids:
        yield _finish(current_ids, current_mentions, tokenizer)


def _finish(token_ids: list[int], mentions: list[tuple[int, int, int]], tokenizer) -> TextSequence:
    ids = np.asarray([tokenizer.bos_token_id, *token_ids, tokenizer.eos_token_id], dtype=np.int32)
    spans = np.asarray([(s + 1, e + 1, ent) for s, e, ent in mentions], dtype=np.int32).reshape(-1, 3)
    return TextSequence(ids, spans)


def join_sequences(first: TextSequence, second: TextSequence) -> TextSequence:
    """``<s> a </s> b </s>``: two sequences in one sample, RoBERTa's packing across documents (the
    ``</s>`` between them marks the boundary), so short articles do not each pay a whole sample."""
    offset = len(first.input_ids) - 1
    mentions = second.mentions.copy()
    mentions[:, :2] += offset
    return TextSequence(np.concatenate([first.input_ids, second.input_ids[1:]]), np.concatenate([first.mentions, mentions]))


def knowledge_text(label: str, description: str | None, facts: Sequence[tuple[str, str]],
                   aliases: Sequence[str] = ()) -> tuple[str, str, bool]:
    """(label, description, composed): the entity's definition as XLM-K pairs it with mentions.

    Aliases follow the label as a dictionary headword gives them, "Japan (Nippon, JP)", so a
    mention by another name finds its text. Without a description, a short one is composed from
    the entity's facts ("capital: Tokyo; continent: Asia"), and ``composed`` says so; with
    neither, the label stands alone.
    """
    others = [alias for alias in dict.fromkeys(aliases) if alias != label]
    if others:
        label = f"{label} ({', '.join(others)})"
    if description:
        return label, description, False
    return label, "; ".join(f"{relation}: {obj}" for relation, obj in facts), True

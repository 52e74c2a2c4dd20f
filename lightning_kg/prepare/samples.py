"""Turn parsed documents and facts into training samples (see docs/FORMATS.md).

Text is packed into sequences of at most ``max_seq_length`` tokens on sentence or paragraph
boundaries, as mLUKE and XLM-K build theirs, and a mention is never cut in two: a unit longer than
a sequence is split between tokens, and mentions crossing that split are dropped.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import ge, itemgetter

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
    """Token span ``[first, last + 1)`` of every character span: the first and last non-empty token
    overlapping it; None where no token does.

    A fast tokenizer's offsets ascend, so each span is two binary searches (``O(mentions x log
    tokens)``, not the ``O(tokens x mentions)`` of trying every token); offsets that do not ascend
    take the search over every token, which gives the same answer.
    """
    return _token_spans(_TokenOffsets(offsets), spans)


class _TokenOffsets:
    """A paragraph's token offsets as the searches need them: starts and ends of the non-empty
    tokens and their positions, and whether they ascend. Built with ``map`` (C loops): this runs
    for every paragraph of every dump."""

    def __init__(self, offsets: Sequence[tuple[int, int]]):
        self.offsets = offsets
        self.all_starts = list(map(itemgetter(0), offsets))
        ends = list(map(itemgetter(1), offsets))
        if any(map(ge, self.all_starts, ends)):  # an empty token (start == end): leave it out
            self.positions = [i for i, (a, b) in enumerate(offsets) if b > a]
            self.starts, self.ends = [offsets[i][0] for i in self.positions], [offsets[i][1] for i in self.positions]
        else:
            self.positions, self.starts, self.ends = None, self.all_starts, ends
        self.ascending = self.starts == sorted(self.starts) and self.ends == sorted(self.ends)


def _token_spans(tokens: _TokenOffsets, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int] | None]:
    if not tokens.ascending:
        return [_covering_tokens(tokens.offsets, start, end) for start, end in spans]
    result = []
    for start, end in spans:
        first = bisect.bisect_right(tokens.ends, start)  # first token ending after the span starts
        last = bisect.bisect_left(tokens.starts, end) - 1  # last token starting before the span ends
        if first > last:
            result.append(None)
        elif tokens.positions is None:
            result.append((first, last + 1))
        else:
            result.append((tokens.positions[first], tokens.positions[last] + 1))
    return result


def _covering_tokens(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    covered = [i for i, (a, b) in enumerate(offsets) if b > start and a < end and b > a]
    return (covered[0], covered[-1] + 1) if covered else None


def _sentence_token_breaks(text: str, tokens: _TokenOffsets) -> list[int]:
    """Token indices where a new sentence starts: the first token starting at or after each
    sentence end (a binary search where token starts ascend, as a fast tokenizer's do)."""
    starts, count = tokens.all_starts, len(tokens.all_starts)
    ascending = tokens.ascending if tokens.positions is None else starts == sorted(starts)
    breaks, token = [], 0
    for match in SENTENCE_END.finditer(text):
        char = match.end()
        if ascending:
            token = bisect.bisect_left(starts, char, token)
        else:
            while token < count and starts[token] < char:
                token += 1
        if 0 < token < count:
            breaks.append(token)
    return sorted(set(breaks))


def _paragraph_units(token_ids: list[int], offsets, text: str, mentions: list[tuple[int, int, int]]) -> list[_Unit]:
    """Split one tokenized paragraph into sentence units; a mention never straddles two units."""
    tokens = _TokenOffsets(offsets)
    token_mentions = []
    spans = _token_spans(tokens, [(s, e) for s, e, _ in mentions])
    for span, (_, _, entity) in zip(spans, mentions):
        if span is not None:
            token_mentions.append((span[0], span[1], entity))
    # Token positions inside a mention (after its first token), where no unit may start.
    inside_mention = {position for s, e, _ in token_mentions for position in range(s + 1, e)}
    breaks = [b for b in _sentence_token_breaks(text, tokens) if b not in inside_mention]
    bounds = [0, *breaks, len(token_ids)]
    # Each mention lies within one unit (breaks skip mentions), found by its start.
    per_unit: list[list[tuple[int, int, int]]] = [[] for _ in range(len(bounds) - 1)]
    for s, e, ent in token_mentions:
        unit = bisect.bisect_right(bounds, s) - 1
        if unit < len(per_unit) and e <= bounds[unit + 1]:
            per_unit[unit].append((s - bounds[unit], e - bounds[unit], ent))
    return [_Unit(token_ids[lo:hi], inside) for (lo, hi), inside in zip(zip(bounds, bounds[1:]), per_unit)]


def _split_long(unit: _Unit, budget: int) -> list[_Unit]:
    """Cut a unit longer than ``budget`` between tokens; mentions that cross a cut are dropped."""
    pieces = []
    for lo in range(0, len(unit.token_ids), budget):
        hi = lo + budget
        inside = [(s - lo, e - lo, ent) for s, e, ent in unit.mentions if s >= lo and e <= hi]
        pieces.append(_Unit(unit.token_ids[lo:hi], inside))
    return pieces


def encode_texts(tokenizer, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """Token ids and character offsets of each text, no special tokens, never truncated.

    One call into the Rust tokenizer for many texts (a batch of documents), without the per-call
    work of the ``transformers`` wrapper; what it returns is what ``tokenizer(texts,
    add_special_tokens=False, return_offsets_mapping=True)`` does. A slow (Python) tokenizer goes
    through the wrapper.
    """
    backend = _plain_backend(tokenizer)
    if backend is None:
        # verbose=False: paragraphs longer than the model are expected here; packing cuts them.
        encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return list(zip(encoded["input_ids"], encoded["offset_mapping"]))
    return [(encoding.ids, encoding.offsets) for encoding in backend.encode_batch(texts, add_special_tokens=False)]


_BACKENDS: dict[int, tuple[object, object]] = {}  # id(tokenizer) -> (tokenizer, its plain backend); the reference keeps the id its own


def _plain_backend(tokenizer):
    """A copy of the fast tokenizer's Rust backend with truncation and padding off (a saved
    ``tokenizer.json`` may carry them; the wrapper turns them off per call), or None."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    if id(tokenizer) not in _BACKENDS:
        plain = type(backend).from_str(backend.to_str())
        plain.no_truncation()
        plain.no_padding()
        _BACKENDS.clear()  # one tokenizer at a time: a run writes with one
        _BACKENDS[id(tokenizer)] = (tokenizer, plain)
    return _BACKENDS[id(tokenizer)][1]


def pack_document(
    paragraphs: Sequence[tuple[str, Sequence[tuple[int, int, int]]]],
    tokenizer,
    max_seq_length: int,
    encoded: Sequence[tuple[list[int], Sequence[tuple[int, int]]]] | None = None,
) -> Iterator[TextSequence]:
    """Pack a document's paragraphs into sequences.

    ``paragraphs``: (text, [(char_start, char_end, entity_index), ...]) in reading order. Mentions
    with entity index < 0 are left out (an entity outside the vocabulary). ``encoded``: the
    paragraphs' (token ids, offsets) from :func:`encode_texts`, when the caller encoded a batch of
    documents at once; None encodes them here.
    """
    budget = max_seq_length - 2
    if not paragraphs:
        return
    if encoded is None:
        encoded = encode_texts(tokenizer, [text for text, _ in paragraphs])
    units: list[_Unit] = []
    for (text, mentions), (ids, offsets) in zip(paragraphs, encoded):
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

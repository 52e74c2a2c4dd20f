"""Examples -> the encoder's inputs and the heads' targets, as LUKE's fine-tuning readers build them.

Words are tokenized one by one, so each word's first and last subword positions are known: a span of
words ``[start, end)`` becomes the subwords from ``first[start]`` to ``last[end - 1]``. A word the
tokenizer maps to nothing, or one cut off by ``max_seq_length``, has no position; a gold span that
needs one is *lost*, and counted in :class:`LostSpans` (never a crash, never silent).

NER's entity head classifies every word-aligned span of at most ``max_mention_length`` subwords
(LUKE's ``max_mention_length`` 16), each a ``[MASK]`` entity whose position ids are its subwords;
a sentence with more candidates than ``max_entities`` (LUKE's ``max_entity_length`` 128) is split
into several rows that repeat its words. Enumerating a sentence's spans is a Python loop here, in
the collator; the model sees only tensors.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

from lightning_kg.dataset.format import IGNORE_INDEX
from lightning_kg.dataset.task_examples import Example, PairExample, RelationExample, SpanExample

ENCODER_INPUTS = ("input_ids", "attention_mask", "entity_ids", "entity_position_ids", "entity_attention_mask")
NON_ENTITY = "O"
"""Label index 0 of the NER entity head: a candidate span that is no entity."""


@dataclass
class LostSpans:
    """Gold spans the heads cannot see, by reason, for one split."""

    lost_to_tokenization: int = 0
    """A word of the span maps to no subword (an empty or unknown-to-the-tokenizer word)."""
    truncated: int = 0
    """The span lies past ``max_seq_length`` subwords."""
    longer_than_max_mention: int = 0
    """A gold NER span of more than ``max_mention_length`` subwords: never a candidate."""

    def total(self) -> int:
        return self.lost_to_tokenization + self.truncated + self.longer_than_max_mention

    def as_dict(self) -> dict[str, int]:
        return {"lost_to_tokenization": self.lost_to_tokenization, "truncated": self.truncated,
                "longer_than_max_mention": self.longer_than_max_mention}


@dataclass
class EncodedRow:
    """One row of a batch: the word ids and, per task, its entities and targets."""

    example_index: int
    input_ids: list[int]
    entity_ids: list[int] = field(default_factory=list)
    entity_positions: list[list[int]] = field(default_factory=list)
    """Per entity, the token positions (indices into ``input_ids``) of its mention."""
    start_positions: list[int] = field(default_factory=list)
    """Per entity (or per span of a word head), the first subword of its first word."""
    end_positions: list[int] = field(default_factory=list)
    """Per entity, the last subword of its last word."""
    labels: list[int] = field(default_factory=list)
    """NER entity head: one per entity; NER word head: one per token (``IGNORE_INDEX`` but first
    subwords); other tasks: one."""
    spans: list[tuple[int, int]] = field(default_factory=list)
    """NER entity head: each entity's word span ``(start, end)``, for decoding."""
    word_starts: list[int] = field(default_factory=list)
    """NER word head: per word, the token position of its first subword (-1: lost), for decoding."""


@dataclass
class WordAlignment:
    input_ids: list[int]
    first: list[int | None]
    """Per word, the token position of its first subword (None: lost)."""
    last: list[int | None]
    truncated: list[bool]
    """Per word, whether ``max_seq_length`` cut it off (rather than the tokenizer mapping it to nothing)."""


def align_words(tokenizer, words: tuple[str, ...], max_seq_length: int) -> WordAlignment:
    """``<s> w1 w2 ... </s>`` with each word tokenized on its own; at most ``max_seq_length`` tokens."""
    pieces = [tokenizer(word, add_special_tokens=False)["input_ids"] if word.strip() else [] for word in words]
    input_ids, first, last, truncated = [tokenizer.cls_token_id], [], [], []
    room = max_seq_length - 1  # </s>
    for word_pieces in pieces:
        fits = len(input_ids) + len(word_pieces) <= room
        if word_pieces and fits:
            first.append(len(input_ids))
            input_ids.extend(word_pieces)
            last.append(len(input_ids) - 1)
        else:
            first.append(None)
            last.append(None)
        truncated.append(bool(word_pieces) and not fits)
    input_ids.append(tokenizer.sep_token_id)
    return WordAlignment(input_ids, first, last, truncated)


def _span_positions(alignment: WordAlignment, start: int, end: int) -> tuple[int, int] | str:
    """(first, last) token position of words ``[start, end)``, or why the span is lost."""
    first, last = alignment.first[start], alignment.last[end - 1]
    if first is None or last is None:
        edge = start if first is None else end - 1
        return "truncated" if alignment.truncated[edge] else "lost_to_tokenization"
    return first, last


def _mention(first: int, last: int, max_mention_length: int) -> list[int]:
    return list(range(first, min(last, first + max_mention_length - 1) + 1))


def candidate_spans(alignment: WordAlignment, max_mention_length: int) -> list[tuple[int, int]]:
    """Every word span ``(start, end)`` whose words have subwords and that covers at most
    ``max_mention_length`` of them, in order of start, then end."""
    spans = []
    words = len(alignment.first)
    for start in range(words):
        if alignment.first[start] is None:
            continue
        for end in range(start + 1, words + 1):
            if alignment.last[end - 1] is None:
                continue
            if alignment.last[end - 1] - alignment.first[start] + 1 > max_mention_length:
                break
            spans.append((start, end))
    return spans


def iob2_tags(span_labels: list[str]) -> list[str]:
    """The word head's tags: ``O`` then ``B-X``, ``I-X`` for each entity type, in a fixed order."""
    return [NON_ENTITY, *(f"{prefix}-{label}" for label in span_labels for prefix in ("B", "I"))]


@dataclass
class TaskEncoder:
    """Encodes a task's examples for one head. ``labels``: the class names the head predicts
    (NER: entity types, without ``O``); ``mask_id``/``mask2_id``: the encoder's ``[MASK]``/``[MASK2]``
    entity ids (None for a word-only encoder)."""

    task: str
    head: str
    tokenizer: object
    labels: list[str]
    max_seq_length: int = 128
    max_mention_length: int = 16
    max_entities: int = 128
    mask_id: int | None = None
    mask2_id: int | None = None

    def __post_init__(self):
        if self.task == "ner":
            self.classes = [NON_ENTITY, *self.labels] if self.head == "entity" else iob2_tags(self.labels)
        else:
            self.classes = list(self.labels)
        self.class_index = {name: i for i, name in enumerate(self.classes)}

    @property
    def label_kind(self) -> str:
        """What ``collate`` pads the labels to: per token, per candidate span, or one per row."""
        return "row" if self.task != "ner" else "token" if self.head == "word" else "entity"

    def encode(self, examples: list[Example], lost: LostSpans, training: bool) -> list[EncodedRow]:
        """The rows of ``examples``; a relation or typing example whose span is lost gives no row
        (``run`` scores it as wrong) and is counted in ``lost``. ``training`` drops labels unseen
        in the label set as an error naming the example."""
        rows = []
        for index, example in enumerate(examples):
            rows.extend(self._encode_one(index, example, lost, training))
        return rows

    def _label(self, name: str, example: Example, training: bool) -> int:
        if name in self.class_index:
            return self.class_index[name]
        if training:
            raise ValueError(f"{example.source or 'an example'}: label {name!r} is not one of {self.labels}")
        return IGNORE_INDEX  # a test label the train split never had: no class can be right

    def _encode_one(self, index: int, example: Example, lost: LostSpans, training: bool) -> list[EncodedRow]:
        if isinstance(example, PairExample):
            ids = self.tokenizer(example.premise, example.hypothesis, truncation=True, max_length=self.max_seq_length)["input_ids"]
            return [EncodedRow(index, ids, labels=[self._label(example.label, example, training)])]
        alignment = align_words(self.tokenizer, example.words, self.max_seq_length)
        if isinstance(example, SpanExample):
            return self._encode_ner(index, example, alignment, lost, training)
        spans = [example.head, example.tail] if isinstance(example, RelationExample) else [example.span]
        located = [_span_positions(alignment, start, end) for start, end in spans]
        reasons = [where for where in located if isinstance(where, str)]
        if reasons:
            setattr(lost, reasons[0], getattr(lost, reasons[0]) + 1)
            return []
        row = EncodedRow(index, alignment.input_ids, labels=[self._label(example.label, example, training)])
        for number, (first, last) in enumerate(located):
            row.start_positions.append(first)
            row.end_positions.append(last)
            if self.head == "entity":
                row.entity_ids.append(self.mask_id if number == 0 else self.mask2_id)
                row.entity_positions.append(_mention(first, last, self.max_mention_length))
        return [row]

    def _encode_ner(self, index: int, example: SpanExample, alignment: WordAlignment, lost: LostSpans,
                    training: bool) -> list[EncodedRow]:
        gold = {}
        for start, end, label in example.spans:
            where = _span_positions(alignment, start, end)
            if isinstance(where, str):
                setattr(lost, where, getattr(lost, where) + 1)
            elif where[1] - where[0] + 1 > self.max_mention_length:
                lost.longer_than_max_mention += 1
            elif label in self.labels:
                gold[(start, end)] = label
            elif training:
                raise ValueError(f"{example.source or 'an example'}: label {label!r} is not one of {self.labels}")
        if self.head == "word":
            tags = [IGNORE_INDEX] * len(alignment.input_ids)
            for position in alignment.first:
                if position is not None:
                    tags[position] = 0
            for (start, end), label in gold.items():
                for word in range(start, end):
                    if alignment.first[word] is not None:
                        prefix = "B" if word == start else "I"
                        tags[alignment.first[word]] = self.class_index[f"{prefix}-{label}"]
            starts = [-1 if position is None else position for position in alignment.first]
            return [EncodedRow(index, alignment.input_ids, labels=tags, word_starts=starts)]
        spans = candidate_spans(alignment, self.max_mention_length)
        if not spans:
            return []
        rows = []
        for chunk_start in range(0, len(spans), self.max_entities):
            row = EncodedRow(index, alignment.input_ids)
            for start, end in spans[chunk_start:chunk_start + self.max_entities]:
                first, last = alignment.first[start], alignment.last[end - 1]
                row.entity_ids.append(self.mask_id)
                row.entity_positions.append(_mention(first, last, self.max_mention_length))
                row.start_positions.append(first)
                row.end_positions.append(last)
                row.labels.append(self.class_index[gold.get((start, end), NON_ENTITY)])
                row.spans.append((start, end))
            rows.append(row)
        return rows


@dataclass
class TaskBatch:
    """Padded tensors of several rows and what decoding needs to map them back to examples."""

    tensors: dict[str, torch.Tensor]
    """``input_ids``/``attention_mask`` (B, S); with entities ``entity_ids``/``entity_attention_mask`` (B, E)
    and ``entity_position_ids`` (B, E, M); ``start_positions``/``end_positions`` (B, E) token positions
    (0 padding); ``labels`` (B, E) for NER's entity head, (B, S) for its word head, (B,) otherwise."""
    example_index: list[int]
    spans: list[list[tuple[int, int]]]
    word_starts: list[list[int]]

    def encoder_inputs(self) -> dict[str, torch.Tensor]:
        """The tensors the encoder reads (words, and entities when there are any)."""
        return {k: v for k, v in self.tensors.items() if k in ENCODER_INPUTS}

    def to(self, device) -> TaskBatch:
        return TaskBatch({k: v.to(device) for k, v in self.tensors.items()}, self.example_index, self.spans, self.word_starts)


def collate(rows: list[EncodedRow], pad_token_id: int, max_mention_length: int, label_kind: str) -> TaskBatch:
    """Pad ``rows`` into one :class:`TaskBatch`. ``label_kind``: ``token`` (NER's word head), ``entity``
    (NER's entity head: one per candidate span) or ``row`` (the other tasks)."""
    batch, length = len(rows), max(len(row.input_ids) for row in rows)
    entities = max(len(row.start_positions) for row in rows)
    input_ids = torch.full((batch, length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((batch, length), dtype=torch.long)
    starts = torch.zeros((batch, entities), dtype=torch.long)
    ends = torch.zeros((batch, entities), dtype=torch.long)
    has_entities = any(row.entity_ids for row in rows)
    entity_ids = torch.zeros((batch, entities), dtype=torch.long)
    entity_mask = torch.zeros((batch, entities), dtype=torch.long)
    entity_positions = torch.full((batch, entities, max_mention_length), -1, dtype=torch.long)
    if label_kind == "row":
        labels = torch.tensor([row.labels[0] for row in rows], dtype=torch.long)
    else:
        labels = torch.full((batch, length if label_kind == "token" else entities), IGNORE_INDEX, dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, :len(row.input_ids)] = torch.tensor(row.input_ids)
        attention_mask[i, :len(row.input_ids)] = 1
        count = len(row.start_positions)
        starts[i, :count] = torch.tensor(row.start_positions, dtype=torch.long)
        ends[i, :count] = torch.tensor(row.end_positions, dtype=torch.long)
        if row.entity_ids:
            entity_ids[i, :count] = torch.tensor(row.entity_ids)
            entity_mask[i, :count] = 1
            for j, positions in enumerate(row.entity_positions):
                entity_positions[i, j, :len(positions)] = torch.tensor(positions)
        if label_kind != "row":
            labels[i, :len(row.labels)] = torch.tensor(row.labels, dtype=torch.long)
    tensors = {"input_ids": input_ids, "attention_mask": attention_mask, "start_positions": starts,
               "end_positions": ends, "labels": labels}
    if has_entities:
        tensors |= {"entity_ids": entity_ids, "entity_attention_mask": entity_mask, "entity_position_ids": entity_positions}
    return TaskBatch(tensors, [row.example_index for row in rows], [row.spans for row in rows],
                     [row.word_starts for row in rows])


def label_set(task: str, examples: list[Example]) -> list[str]:
    """The classes of a train split, sorted (NER: entity types, without ``O``)."""
    if task == "ner":
        return sorted({label for example in examples for _, _, label in example.spans})
    return sorted(Counter(example.label for example in examples))

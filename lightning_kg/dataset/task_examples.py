"""The examples of a transfer task (NER, relation, typing, sentence pairs), whatever file they came from.

The task files' readers and writers (``dataset.task_files``) and the silver builder (``prepare``) produce
these; fine-tuning (``transfer``) consumes them.
Spans are word indices, end exclusive, so a reader's tokenization never reaches the heads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Span = tuple[int, int]  # (first word, one past the last word)


@dataclass(frozen=True)
class SpanExample:
    """A sentence for NER: its words and gold entity spans ``(start, end, label)``."""

    words: tuple[str, ...]
    spans: tuple[tuple[int, int, str], ...]
    language: str
    source: str = field(default="", compare=False)  # "file:line", for error messages


@dataclass(frozen=True)
class RelationExample:
    """Two marked spans of a sentence (``<e1>``, ``<e2>``) and the relation between them."""

    words: tuple[str, ...]
    head: Span
    tail: Span
    label: str
    language: str
    source: str = field(default="", compare=False)


@dataclass(frozen=True)
class TypingExample:
    """One marked span of a sentence (``<e1>``) and its entity type."""

    words: tuple[str, ...]
    span: Span
    label: str
    language: str
    source: str = field(default="", compare=False)


@dataclass(frozen=True)
class PairExample:
    """A sentence pair (XNLI): premise, hypothesis, label."""

    premise: str
    hypothesis: str
    label: str
    language: str
    source: str = field(default="", compare=False)


Example = SpanExample | RelationExample | TypingExample | PairExample
NO_RELATION = "no_relation"

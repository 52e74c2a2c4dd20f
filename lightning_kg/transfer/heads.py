"""The fine-tuning heads, as mLUKE does them, and how their scores become predictions.

Entity heads (``head="entity"``) read the output states of ``[MASK]`` entities placed over spans:
- NER: every candidate span's feature is [first subword of its start word; last subword of its
  end word; its entity's state] (LUKE's span NER), one linear layer over all spans of a batch;
  decoding keeps the highest-scoring non-overlapping spans, greedily, as LUKE does;
- relation: the ``[MASK]`` (head) and ``[MASK2]`` (tail) entities' states, concatenated;
- typing: the span's ``[MASK]`` entity state.
Word heads (``head="word"``), the comparison mLUKE makes: NER as IOB2 token classification on
each word's first subword; relation: the two spans' first-subword states; typing: the span's
first-subword state. Sentence pairs read the first token's state (``<s>``) whatever the head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_kg.dataset.format import IGNORE_INDEX
from lightning_kg.transfer.features import NON_ENTITY

TASKS = ("ner", "relation", "typing", "pair")
HEADS = ("entity", "word")


def feature_size(task: str, head: str, hidden_size: int) -> int:
    """Width of the feature the classifier reads: 3H for span NER, 2H for relations, else H."""
    if task == "ner" and head == "entity":
        return 3 * hidden_size
    return 2 * hidden_size if task == "relation" else hidden_size


def _gather(states: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(B, S, H) states at (B, E) token positions -> (B, E, H)."""
    return states.gather(1, positions.unsqueeze(-1).expand(-1, -1, states.shape[-1]))


class TaskHead(nn.Module):
    """Dropout and one linear layer over the task's feature (LUKE's fine-tuning heads)."""

    def __init__(self, task: str, head: str, hidden_size: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        if task not in TASKS or head not in HEADS:
            raise ValueError(f"task {task!r}, head {head!r}: expected a task of {TASKS} and a head of {HEADS}")
        self.task, self.head = task, head
        self.uses_entities = head == "entity" and task != "pair"
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_size(task, head, hidden_size), num_classes)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)

    def features(self, word_hidden: torch.Tensor, entity_hidden: torch.Tensor | None,
                 tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Word states (B, S, H), entity states (B, E, H) or None -> NER: (B, E, 3H) entity head,
        (B, S, H) word head; relation (B, 2H); typing and pair (B, H)."""
        if self.task == "pair":
            return word_hidden[:, 0]
        if self.task == "ner" and self.head == "word":
            return word_hidden
        if self.head == "entity":
            if entity_hidden is None:
                raise ValueError("the entity head needs entity states; the batch has no entities")
            if self.task == "ner":
                return torch.cat([_gather(word_hidden, tensors["start_positions"]),
                                  _gather(word_hidden, tensors["end_positions"]), entity_hidden], dim=-1)
            return entity_hidden.flatten(1)  # relation: (B, 2H) [head; tail]; typing: (B, H)
        return _gather(word_hidden, tensors["start_positions"]).flatten(1)  # (B, 2H) or (B, H)

    def forward(self, word_hidden: torch.Tensor, entity_hidden: torch.Tensor | None,
                tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits: (B, E, C) span NER, (B, S, C) word NER, (B, C) otherwise."""
        return self.classifier(self.dropout(self.features(word_hidden, entity_hidden, tensors)))


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the labels that are not ``IGNORE_INDEX``; 0 (still reaching the head)
    when a batch has none, where ``cross_entropy`` would give NaN."""
    flat_logits, flat_labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    counted = flat_labels.ne(IGNORE_INDEX)
    losses = F.cross_entropy(flat_logits, flat_labels.clamp(min=0), reduction="none")
    return (losses * counted).sum() / counted.sum().clamp(min=1)


def greedy_spans(scored: list[tuple[float, int, int, str]]) -> set[tuple[int, int, str]]:
    """LUKE's decoding: ``(score, start, end, label)`` candidates, best first, each kept unless it
    overlaps one already kept."""
    kept, taken = set(), set()
    for _, start, end, label in sorted(scored, key=lambda item: (-item[0], item[1], item[2])):
        words = set(range(start, end))
        if not words & taken:
            kept.add((start, end, label))
            taken |= words
    return kept


def span_candidates(logits: torch.Tensor, spans: list[list[tuple[int, int]]], classes: list[str]) -> list[list[tuple]]:
    """(B, E, C) span logits -> per row, ``(score, start, end, label)`` of each span predicted not
    ``O`` (score: its class's log-probability). One device-to-host copy per batch."""
    log_probs = logits.float().log_softmax(-1)
    scores, best = log_probs.max(-1)  # (B, E)
    entity = best.ne(0)
    rows, columns = entity.nonzero(as_tuple=True)
    picked = zip(rows.tolist(), columns.tolist(), scores[rows, columns].tolist(), best[rows, columns].tolist())
    out = [[] for _ in spans]
    for row, column, score, label in picked:
        if column < len(spans[row]):
            start, end = spans[row][column]
            out[row].append((score, start, end, classes[label]))
    return out


def iob2_spans(tags: list[str]) -> set[tuple[int, int, str]]:
    """Word tags -> ``(start, end, label)`` chunks, as seqeval reads IOB2 by default: a chunk starts
    at ``B-X``, or at ``I-X`` after anything but ``X``, and runs over the ``I-X`` after it."""
    spans, start, kind = set(), None, None
    for index, tag in enumerate([*tags, NON_ENTITY]):
        prefix, _, label = tag.partition("-")
        continues = prefix == "I" and label == kind
        if start is not None and not continues:
            spans.add((start, index, kind))
            start, kind = None, None
        if prefix in ("B", "I") and not continues:
            start, kind = index, label
    return spans


def word_tag_spans(logits: torch.Tensor, word_starts: list[list[int]], classes: list[str]) -> list[set[tuple[int, int, str]]]:
    """(B, S, C) token logits -> per row, the chunks of its words' tags (a lost word is ``O``)."""
    best = logits.argmax(-1).tolist()
    return [iob2_spans([classes[row_best[p]] if p >= 0 else NON_ENTITY for p in starts])
            for row_best, starts in zip(best, word_starts)]

"""Dynamic masking at collate time and the batch the model reads (docs/FORMATS.md).

Masking happens here rather than in ``prepare`` so every pass over the data sees new masks, as
RoBERTa and mLUKE do. Each batch gets its own generator, seeded by the batch's position in the
stream, so a resumed run masks exactly as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lightning_kg.data.entity_vocab import MASK_ID, PAD_ID, UNK_ID
from lightning_kg.data.knowledge import KnowledgeTable

IGNORE = -100


def mask_tokens(
    input_ids: np.ndarray,
    special: np.ndarray,
    mention_spans: Sequence[tuple[int, int]],
    forced_spans: Sequence[tuple[int, int]],
    vocab_size: int,
    mask_token_id: int,
    rng: np.random.Generator,
    probability: float = 0.15,
    whole_mention: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """BERT masking: ``probability`` of the non-special tokens are predicted, of which 80% become
    ``<mask>``, 10% a random token, 10% stay. With ``whole_mention``, a mention span is chosen all or
    nothing. ``forced_spans`` are masked with ``<mask>`` whatever the draw (the mentions of
    ``mep_contrastive``) and count towards the budget.

    Returns (masked ids, labels): (S,) int64 each, labels -100 where nothing is predicted.
    """
    ids = input_ids.astype(np.int64).copy()
    labels = np.full_like(ids, IGNORE)
    candidates = ~special
    budget = int(round(probability * candidates.sum()))
    chosen = np.zeros_like(candidates)
    for start, end in forced_spans:
        chosen[start:end] = True
        labels[start:end] = ids[start:end]
        ids[start:end] = mask_token_id
    forced = chosen.copy()
    # Units: whole mentions (when asked) and every other candidate token alone.
    in_mention = np.zeros_like(candidates)
    units: list[tuple[int, int]] = []
    if whole_mention:
        for start, end in mention_spans:
            if not forced[start:end].any():
                units.append((start, end))
            in_mention[start:end] = True
    units += [(i, i + 1) for i in np.flatnonzero(candidates & ~in_mention & ~forced)]
    for index in rng.permutation(len(units)):
        if chosen.sum() >= budget:
            break
        start, end = units[index]
        chosen[start:end] = True
    chosen &= candidates | forced
    drawn = chosen & ~forced
    positions = np.flatnonzero(drawn)
    labels[positions] = ids[positions]
    roll = rng.random(len(positions))
    ids[positions[roll < 0.8]] = mask_token_id
    randomised = positions[(roll >= 0.8) & (roll < 0.9)]
    ids[randomised] = rng.integers(0, vocab_size, len(randomised))
    return ids, labels


def choose_masked_entities(entity_ids: np.ndarray, rng: np.random.Generator, probability: float) -> np.ndarray:
    """Slots to mask for ``mep_vocab``: about ``probability`` of the known entities, at least one.
    ``[UNK]`` slots stay as inputs and are never targets."""
    known = np.flatnonzero(entity_ids > UNK_ID)
    if not len(known):
        return known
    count = max(1, int(round(probability * len(known))))
    return np.sort(rng.choice(known, size=count, replace=False))


def _pad(rows: Sequence[np.ndarray], value: int, multiple: int = 1, minimum: int = 0) -> torch.Tensor:
    length = max([minimum, *(len(r) for r in rows)])
    length = -(-length // multiple) * multiple if length else 0
    out = np.full((len(rows), length), value, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return torch.from_numpy(out)


@dataclass
class Collator:
    """Builds a batch of text rows and facts (docs/FORMATS.md) from decoded samples."""

    pad_token_id: int
    mask_token_id: int
    vocab_size: int
    special_token_ids: tuple[int, ...]
    knowledge: KnowledgeTable
    mlm_probability: float = 0.15
    entity_mask_probability: float = 0.15
    whole_mention_masking: bool = True
    knowledge_language: str = "any"
    max_entities: int = 32
    max_mention_length: int = 16
    knowledge_max_length: int = 32
    pad_to_multiple_of: int = 8

    def __call__(self, texts: Sequence[dict], facts: Sequence[dict], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        specials = np.asarray(self.special_token_ids)
        rows, labels, entity_rows, entity_labels, span_rows = [], [], [], [], []
        mep_positions, mep_knowledge, mep_entities = [], [], []
        for row, sample in enumerate(texts):
            ids, mentions, lang = sample["input_ids"], sample["mentions"][: self.max_entities], sample["lang"]
            spans = [(int(s), int(min(e, s + self.max_mention_length))) for s, e, _ in mentions]
            entities = mentions[:, 2].astype(np.int64)
            masked = choose_masked_entities(entities, rng, self.entity_mask_probability)
            forced = []
            for slot in masked:
                text = self.knowledge.sample(int(entities[slot]), rng, lang if self.knowledge_language == "same" else None)
                if text is not None:
                    forced.append(spans[slot])
                    mep_positions.append((row, spans[slot][0]))
                    mep_knowledge.append(text[: self.knowledge_max_length])
                    mep_entities.append(int(entities[slot]))
            masked_ids, row_labels = mask_tokens(ids, np.isin(ids, specials), spans, forced, self.vocab_size,
                                                 self.mask_token_id, rng, self.mlm_probability, self.whole_mention_masking)
            rows.append(masked_ids)
            labels.append(row_labels)
            slot_labels = np.full(len(entities), IGNORE, dtype=np.int64)
            slot_labels[masked] = entities[masked]
            slot_inputs = entities.copy()
            slot_inputs[masked] = MASK_ID
            entity_rows.append(slot_inputs)
            entity_labels.append(slot_labels)
            span_rows.append(spans)

        input_ids = _pad(rows, self.pad_token_id, self.pad_to_multiple_of)
        max_slots = max([0, *(len(r) for r in entity_rows)])
        max_span = max([1, *(e - s for spans in span_rows for s, e in spans)])
        positions = torch.full((len(texts), max_slots, max_span), -1, dtype=torch.long)
        for row, spans in enumerate(span_rows):
            for slot, (start, end) in enumerate(spans):
                positions[row, slot, : end - start] = torch.arange(start, end)
        entity_ids = _pad(entity_rows, PAD_ID)
        batch = {
            "input_ids": input_ids,
            "attention_mask": _attention(rows, input_ids.shape[1]),
            "mlm_labels": _pad(labels, IGNORE, self.pad_to_multiple_of),
            "entity_ids": entity_ids,
            "entity_position_ids": positions,
            "entity_attention_mask": _pad([np.ones(len(r), dtype=np.int64) for r in entity_rows], 0),
            "entity_labels": _pad(entity_labels, IGNORE),
            "mep_mention_positions": torch.tensor(mep_positions, dtype=torch.long).reshape(-1, 2),
            "mep_entities": torch.tensor(mep_entities, dtype=torch.long),
        }
        batch.update(self._texts("mep_knowledge", mep_knowledge))
        queries, objects, object_ids = [], [], []
        for fact in facts:
            lang = fact["lang"] if self.knowledge_language == "same" else None
            text = self.knowledge.sample(int(fact["object"]), rng, lang)
            if text is None:
                continue
            queries.append(fact["query_ids"][: self.knowledge_max_length])
            objects.append(text[: self.knowledge_max_length])
            object_ids.append(int(fact["object"]))
        batch.update(self._texts("oe_query", queries))
        batch.update(self._texts("oe_object", objects))
        batch["oe_objects"] = torch.tensor(object_ids, dtype=torch.long)
        return batch

    def _texts(self, name: str, texts: list[np.ndarray]) -> dict[str, torch.Tensor]:
        ids = _pad(texts, self.pad_token_id, self.pad_to_multiple_of, minimum=1)
        return {f"{name}_ids": ids, f"{name}_mask": _attention(texts, ids.shape[1])}


def _attention(rows: Sequence[np.ndarray], length: int) -> torch.Tensor:
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        mask[i, : len(row)] = 1
    return mask

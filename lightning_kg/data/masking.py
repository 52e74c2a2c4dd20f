"""Dynamic masking at collate time and the batch the model reads (docs/FORMATS.md).

Masking happens here rather than in ``prepare`` so every pass over the data sees new masks, as
RoBERTa and mLUKE do. The caller passes one generator per batch, seeded by the batch's position in
the stream, so a resumed run masks exactly as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lightning_kg.data.batches import count_batch, masked_positions
from lightning_kg.dataset.entity_vocab import MASK_ID, PAD_ID, UNK_ID
from lightning_kg.dataset.format import IGNORE_INDEX
from lightning_kg.dataset.knowledge import KnowledgeTable


def mask_tokens(
    input_ids: np.ndarray,
    special_mask: np.ndarray,
    mention_spans: Sequence[tuple[int, int]],
    vocab_size: int,
    mask_token_id: int,
    rng: np.random.Generator,
    probability: float = 0.15,
    whole_mention: bool = True,
    forced_spans: Sequence[tuple[int, int]] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """BERT masking of one sequence.

    ``round(probability * n)`` of the ``n`` non-special tokens (at least one) are predicted; of
    those, 80% become ``mask_token_id``, 10% a random id below ``vocab_size``, 10% stay. With
    ``whole_mention``, a mention span ``[start, end)`` is chosen all or nothing and counts its
    length towards the budget (a span that would overshoot it is passed over). ``forced_spans``
    (the mentions of ``mep_contrastive``) always become ``<mask>`` and count towards the budget.

    Args: ``input_ids`` (S,) int, ``special_mask`` (S,) bool, True where a token is never chosen.
    Returns (masked ids, labels): (S,) int64 each, labels the original id where predicted, -100 elsewhere.
    """
    ids = input_ids.astype(np.int64)  # a copy
    labels = np.full_like(ids, IGNORE_INDEX)
    candidates = ~special_mask.astype(bool)
    count = int(candidates.sum())
    budget = max(1, int(round(probability * count))) if count and probability > 0 else 0
    forced = np.zeros_like(candidates)
    for start, end in forced_spans:
        forced[start:end] = True
    labels[forced] = ids[forced]
    ids[forced] = mask_token_id
    taken = int(forced.sum())
    # Units to draw: whole mentions (when asked) and every other candidate token alone.
    in_mention = forced.copy()
    units: list[tuple[int, int]] = []
    if whole_mention:
        for start, end in mention_spans:
            if not in_mention[start:end].any() and candidates[start:end].all():
                units.append((start, end))
            in_mention[start:end] = True
    units += [(i, i + 1) for i in np.flatnonzero(candidates & ~in_mention)]
    drawn = np.zeros_like(candidates)
    for unit in rng.permutation(len(units)) if taken < budget else ():
        start, end = units[unit]
        if taken + end - start <= budget:
            drawn[start:end] = True
            taken += end - start
            if taken == budget:
                break
    positions = np.flatnonzero(drawn)
    labels[positions] = ids[positions]
    roll = rng.random(len(positions))
    ids[positions[roll < 0.8]] = mask_token_id
    randomised = positions[(roll >= 0.8) & (roll < 0.9)]
    ids[randomised] = rng.integers(0, vocab_size, len(randomised))
    return ids, labels


def mask_entities(entity_ids: np.ndarray, rng: np.random.Generator, probability: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Entity masking for ``mep_vocab`` over one sequence's slots.

    ``round(probability * n)`` of the ``n`` slots holding a known entity (index > ``[UNK]``), at
    least one when there is any, become ``[MASK]`` (2). ``[UNK]`` slots stay as inputs and are
    never targets.
    Args: ``entity_ids`` (E,) int. Returns (inputs, labels): (E,) int64 each, labels -100 where not masked.
    """
    inputs = entity_ids.astype(np.int64)
    labels = np.full_like(inputs, IGNORE_INDEX)
    known = np.flatnonzero(inputs > UNK_ID)
    if len(known):
        chosen = rng.choice(known, size=max(1, int(round(probability * len(known)))), replace=False)
        labels[chosen] = inputs[chosen]
        inputs[chosen] = MASK_ID
    return inputs, labels


def _pad(rows: Sequence[np.ndarray], value: int, multiple: int = 1, minimum: int = 0) -> torch.Tensor:
    length = max([minimum, *(len(r) for r in rows)])
    length = -(-length // multiple) * multiple
    out = np.full((len(rows), length), value, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return torch.from_numpy(out)


def _attention(rows: Sequence[np.ndarray], length: int) -> torch.Tensor:
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        mask[i, : len(row)] = 1
    return mask


@dataclass
class Collator:
    """Builds one batch of text rows and facts (docs/FORMATS.md, "Batch") from decoded samples.

    A text sample is ``{"input_ids": (S,) int, "mentions": (N, 3) int [start, end, entity], "lang": str}``,
    a fact sample ``{"query_ids": (Lq,) int, "object": int, "lang": str}``. Picklable (plain fields and
    a :class:`KnowledgeTable` that re-opens its files), so loader workers collate.

    Only what the active objectives read is built: ``entity_masking`` (``mep_vocab`` or
    ``mep_contrastive``) masks entity slots; ``mention_knowledge`` (``mep_contrastive``) forces the
    masked mentions' words to ``<mask>`` and pairs them with knowledge texts (the ``mep_*`` keys);
    ``facts`` (``oe``) builds the ``oe_*`` keys. ``knowledge`` may be None when neither of the last two is on.
    With ``languages`` (the dataset's), ``text_language_ids`` gives each row's language, for metrics per language.
    """

    pad_token_id: int
    mask_token_id: int
    vocab_size: int
    special_token_ids: tuple[int, ...]
    knowledge: KnowledgeTable | None
    mlm_probability: float = 0.15
    entity_mask_probability: float = 0.15
    whole_mention_masking: bool = True
    knowledge_language: str = "any"
    max_entities: int = 32
    max_mention_length: int = 16
    knowledge_max_length: int = 32
    pad_to_multiple_of: int = 8
    entity_masking: bool = True
    mention_knowledge: bool = True
    facts: bool = True
    languages: tuple[str, ...] = ()

    def __post_init__(self):
        if self.knowledge_language not in ("any", "same"):
            raise ValueError(f"knowledge_language is {self.knowledge_language!r}, expected 'any' or 'same'")
        if (self.mention_knowledge or self.facts) and self.knowledge is None:
            raise ValueError("mep_contrastive and oe need the knowledge table: pass knowledge")

    def _knowledge_text(self, entity: int, lang: str | None, rng: np.random.Generator) -> np.ndarray | None:
        wanted = lang if self.knowledge_language == "same" else None
        text = self.knowledge.sample(entity, rng, wanted)
        return None if text is None else text[: self.knowledge_max_length]

    def __call__(self, texts: Sequence[dict], facts: Sequence[dict], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """The batch dict of docs/FORMATS.md; ``rng`` draws every mask and knowledge language."""
        specials = np.asarray(self.special_token_ids)
        rows, labels, entity_rows, entity_labels, slot_spans = [], [], [], [], []
        mep_positions, mep_knowledge, mep_entities = [], [], []
        for row, sample in enumerate(texts):
            ids, mentions = sample["input_ids"], np.asarray(sample["mentions"], dtype=np.int64).reshape(-1, 3)
            spans = [(int(start), int(end)) for start, end, _ in mentions]
            slots = mentions[: self.max_entities]
            slot_inputs, slot_labels = (mask_entities(slots[:, 2], rng, self.entity_mask_probability) if self.entity_masking
                                        else (slots[:, 2].copy(), np.full(len(slots), IGNORE_INDEX, dtype=np.int64)))
            forced = []
            for slot in np.flatnonzero(slot_labels != IGNORE_INDEX) if self.mention_knowledge else ():
                entity = int(slot_labels[slot])
                text = self._knowledge_text(entity, sample.get("lang"), rng)
                if text is not None:
                    forced.append(spans[slot])
                    mep_positions.append((row, spans[slot][0]))
                    mep_knowledge.append(text)
                    mep_entities.append(entity)
            masked_ids, row_labels = mask_tokens(ids, np.isin(ids, specials), spans, self.vocab_size, self.mask_token_id,
                                                 rng, self.mlm_probability, self.whole_mention_masking, forced)
            rows.append(masked_ids)
            labels.append(row_labels)
            entity_rows.append(slot_inputs)
            entity_labels.append(slot_labels)
            slot_spans.append([(start, min(end, start + self.max_mention_length)) for start, end in spans[: self.max_entities]])

        input_ids = _pad(rows, self.pad_token_id, self.pad_to_multiple_of)
        # At least one slot, even for rows without mentions (or no rows: a facts-only batch), so that
        # the entity embeddings stay in the graph: DDP expects every parameter to get a gradient.
        entity_ids = _pad(entity_rows, PAD_ID, self.pad_to_multiple_of, minimum=1)
        max_slots = entity_ids.shape[1]
        max_span = max([1, *(end - start for spans in slot_spans for start, end in spans)])
        positions = torch.full((len(texts), max_slots, max_span), -1, dtype=torch.long)
        for row, spans in enumerate(slot_spans):
            for slot, (start, end) in enumerate(spans):
                positions[row, slot, : end - start] = torch.arange(start, end)
        batch = {
            "input_ids": input_ids,
            "attention_mask": _attention(rows, input_ids.shape[1]),
            "mlm_labels": _pad(labels, IGNORE_INDEX, self.pad_to_multiple_of),
            "entity_ids": entity_ids,
            "entity_position_ids": positions,
            "entity_attention_mask": _pad([np.ones(len(r), dtype=np.int64) for r in entity_rows], 0, self.pad_to_multiple_of, minimum=1),
            "entity_labels": _pad(entity_labels, IGNORE_INDEX, self.pad_to_multiple_of, minimum=1),
        }
        batch["mlm_positions"], batch["mlm_targets"] = masked_positions(batch["mlm_labels"])
        batch["entity_mask_positions"], batch["entity_targets"] = masked_positions(batch["entity_labels"])
        if self.languages:
            batch["text_language_ids"] = torch.tensor([self.languages.index(s["lang"]) if s.get("lang") in self.languages else -1
                                                       for s in texts], dtype=torch.long)
        if self.mention_knowledge:
            batch["mep_mention_positions"] = torch.tensor(mep_positions, dtype=torch.long).reshape(-1, 2)
            batch["mep_entities"] = torch.tensor(mep_entities, dtype=torch.long)
            batch.update(self._texts("mep_knowledge", mep_knowledge))
        if self.facts:
            batch.update(self._facts(facts, rng))
        batch["counts"] = count_batch(batch)  # host ints, so the step never reads them back from the GPU
        return batch

    def _facts(self, facts: Sequence[dict], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """The ``oe_*`` keys: each fact's query and its object's knowledge text (facts whose object has none are left out)."""
        queries, objects, object_ids = [], [], []
        for fact in facts:
            text = self._knowledge_text(int(fact["object"]), fact.get("lang"), rng)
            if text is not None:
                queries.append(fact["query_ids"][: self.knowledge_max_length])
                objects.append(text)
                object_ids.append(int(fact["object"]))
        return {**self._texts("oe_query", queries), **self._texts("oe_object", objects),
                "oe_objects": torch.tensor(object_ids, dtype=torch.long)}

    def _texts(self, name: str, texts: list[np.ndarray]) -> dict[str, torch.Tensor]:
        # At least one column, so an empty group is (0, 8) rather than (0, 0).
        ids = _pad(texts, self.pad_token_id, self.pad_to_multiple_of, minimum=1)
        return {f"{name}_ids": ids, f"{name}_mask": _attention(texts, ids.shape[1])}

"""The model side of probing: prompts -> token ids, and scores for each query's candidates.

Both prompt kinds read the template with the subject's label in words *and* the subject's entity
token on those words, as every linked mention was read in pre-training (LUKE's input); they differ
only in how the object is asked for:
- entity-based (mLUKE): one word ``<mask>`` at ``[Y]`` and an entity ``[MASK]`` token on it; the
  ``mep_vocab`` head scores the candidates' entity embeddings;
- word-based (mLAMA): ``[Y]`` becomes as many ``<mask>`` tokens as the candidate's label has, and
  the candidate scores the *mean* log-probability of its label's tokens under the ``mlm`` head (mean
  rather than sum, so a long label is not penalised for its length).

The text before ``[Y]`` is tokenised with the label, as the training text was (in Japanese or
Chinese a label's first piece depends on the character before it); the text after ``[Y]`` is the
entity prompt's, the same for every candidate. Tokenising the whole filled sentence instead would
let a label swallow the full stop ("▁Africa.") for some candidates and not for others, so
candidates would be asked in different contexts and scored on different things.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice

import numpy as np
import torch
import torch.nn.functional as F

from lightning_kg.dataset.entity_vocab import MASK_ID
from lightning_kg.dataset.format import IGNORE_INDEX
from lightning_kg.model.pretraining import KnowledgePretrainingModel
from lightning_kg.probe.queries import ClozeQuery
from lightning_kg.probe.templates import fill

Scorer = Callable[[Sequence[ClozeQuery]], list[np.ndarray]]
"""Queries -> one (len(query.candidates),) float array of scores each, higher is better."""


def _overlapping(offsets: Sequence[tuple[int, int]], span: tuple[int, int]) -> list[int]:
    """Indices of the tokens whose characters overlap ``span`` (special tokens have none)."""
    return [i for i, (start, end) in enumerate(offsets) if end > start and start < span[1] and end > span[0]]


def entity_prompt(tokenizer, template: str, subject: str) -> tuple[list[int], list[int], int]:
    """``<s> prompt </s>`` with one ``<mask>`` at ``[Y]`` -> (token ids, subject token positions, mask position).

    A tokenizer whose ``<mask>`` does not swallow the space before it (XLM-R's and ours do) leaves a
    bare word-boundary piece ("▁") beside it; it is dropped, since masking in training replaced whole
    tokens ("▁Africa." -> "<mask>") and never left one.
    """
    prompt = fill(template, subject, tokenizer.mask_token)
    encoded = tokenizer(prompt.text, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), list(encoded["offset_mapping"])
    mask_id = tokenizer.mask_token_id
    pieces = tokenizer.convert_ids_to_tokens(ids)
    beside_mask = {j for i, token in enumerate(ids) if token == mask_id for j in (i - 1, i + 1)}
    keep = [i for i in range(len(ids)) if not (i in beside_mask and pieces[i].strip("▁ ") == "" and ids[i] not in tokenizer.all_special_ids)]
    ids, offsets = [ids[i] for i in keep], [offsets[i] for i in keep]
    return ids, _overlapping(offsets, prompt.subject_span), ids.index(mask_id)


def word_prompts(tokenizer, template: str, subject: str, labels: Sequence[str]) -> list[tuple[list[int], list[int], list[int]]]:
    """``<s> prompt </s>`` with each label at ``[Y]`` -> per label (token ids, subject token positions,
    label token positions).

    Tokens before the label's end come from tokenising the text up to it; the tokens after come
    from :func:`entity_prompt`, so every label is asked in the same closing context.
    """
    context, entity_subject, mask = entity_prompt(tokenizer, template, subject)
    tail = context[mask + 1 :]
    prompts = [fill(template, subject, label) for label in labels]
    encoded = tokenizer([p.text[: p.object_span[1]] for p in prompts], return_offsets_mapping=True,
                        return_special_tokens_mask=True)
    out = []
    for label, prompt, ids, offsets, special in zip(labels, prompts, encoded["input_ids"], encoded["offset_mapping"],
                                                    encoded["special_tokens_mask"]):
        # Drop the closing special tokens: the entity prompt's tail brings them.
        head = max((i for i, is_special in enumerate(special) if not is_special), default=-1) + 1
        slot = _overlapping(offsets[:head], prompt.object_span)
        if not slot:
            raise ValueError(f"label {label!r} has no token in the prompt {prompt.text!r}")
        if prompt.subject_span[0] < prompt.object_span[0]:
            subject_positions = _overlapping(offsets[:head], prompt.subject_span)
        else:  # the subject is in the tail
            subject_positions = [p + head - (mask + 1) for p in entity_subject if p > mask]
        out.append((list(ids[:head]) + tail, subject_positions, slot))
    return out


def _pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


def _entity_inputs(entities: Sequence[Sequence[tuple[int, list[int]]]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row, (entity index, word positions) pairs -> entity_ids (B, E), entity_position_ids (B, E, M), mask (B, E)."""
    slots = max(len(row) for row in entities)
    width = max(1, *(len(positions) for row in entities for _, positions in row))
    ids = torch.zeros(len(entities), slots, dtype=torch.long)
    positions = torch.full((len(entities), slots, width), -1, dtype=torch.long)
    mask = torch.zeros(len(entities), slots, dtype=torch.long)
    for r, row in enumerate(entities):
        for s, (entity, words) in enumerate(row):
            ids[r, s], mask[r, s] = entity, 1
            positions[r, s, : len(words)] = torch.as_tensor(words, dtype=torch.long)
    return ids, positions, mask


def _device(model: KnowledgePretrainingModel) -> torch.device:
    return next(model.parameters()).device


def _encode(model: KnowledgePretrainingModel, pad_id: int, rows: list[list[int]], entities: list[list[tuple[int, list[int]]]]):
    device = _device(model)
    ids = _pad(rows, pad_id).to(device)
    entity_ids, entity_positions, entity_mask = (t.to(device) for t in _entity_inputs(entities))
    return model.encoder(ids, ids.ne(pad_id).long(), entity_ids, entity_positions, entity_mask)


def entity_scorer(model: KnowledgePretrainingModel, tokenizer, batch_size: int = 64) -> Scorer:
    """Scores from the ``mep_vocab`` head at the entity ``[MASK]`` on ``[Y]`` (the model must have that head)."""
    if model.entity_head is None:
        raise ValueError("the model has no mep_vocab head (mep_vocab_weight 0): entity-based probing is not available")
    table, bias = model.encoder.entity_embeddings.table.weight, model.entity_head.bias

    @torch.no_grad()
    def score(queries: Sequence[ClozeQuery]) -> list[np.ndarray]:
        scores = []
        for start in range(0, len(queries), batch_size):
            chunk = queries[start : start + batch_size]
            rows, entities = [], []
            for query in chunk:
                ids, subject_positions, mask_position = entity_prompt(tokenizer, query.template, query.fact.subject_label)
                rows.append(ids)
                entities.append([(query.fact.subject, subject_positions), (MASK_ID, [mask_position])])
            states = model.entity_head(_encode(model, tokenizer.pad_token_id, rows, entities).entity_hidden[:, 1])
            for query, state in zip(chunk, states):
                candidates = torch.as_tensor(query.candidates, device=state.device)
                scores.append((table[candidates] @ state + bias[candidates]).float().cpu().numpy())
        return scores

    return score


def word_scorer(model: KnowledgePretrainingModel, tokenizer, batch_size: int = 64) -> Scorer:
    """Mean log-probability of each candidate's label tokens under the ``mlm`` head (the model must have it)."""
    if model.mlm_head is None:
        raise ValueError("the model has no mlm head (mlm_weight 0): word-based probing is not available")
    mask_id, pad_id = tokenizer.mask_token_id, tokenizer.pad_token_id

    def rows(queries: Sequence[ClozeQuery]):
        """One (masked ids, entities, targets) row per (query, candidate): the label fixes the number of masks."""
        for query in queries:
            for ids, subject_positions, slot in word_prompts(tokenizer, query.template, query.fact.subject_label,
                                                             query.candidate_labels):
                target = [IGNORE_INDEX] * len(ids)
                for position in slot:
                    target[position], ids[position] = ids[position], mask_id
                yield ids, [(query.fact.subject, subject_positions)], target

    @torch.no_grad()
    def score(queries: Sequence[ClozeQuery]) -> list[np.ndarray]:
        # Rows are made batch by batch: queries x candidates of a large dataset would not fit in memory.
        means, pending = [], rows(queries)
        while batch := list(islice(pending, batch_size)):
            ids, entities, targets = zip(*batch)
            hidden = _encode(model, pad_id, list(ids), list(entities)).word_hidden
            target = _pad(targets, IGNORE_INDEX).to(hidden.device)
            slot = target.ne(IGNORE_INDEX)
            log_probs = F.log_softmax(model.mlm_head(hidden[slot], model.encoder.embeddings.word.weight).float(), dim=-1)
            token_scores = log_probs.gather(1, target[slot][:, None]).squeeze(1)
            row_of_token = slot.nonzero()[:, 0]
            totals = torch.zeros(slot.shape[0], device=hidden.device).index_add_(0, row_of_token, token_scores)
            means.append((totals / slot.sum(1)).cpu())
        flat = torch.cat(means).numpy() if means else np.zeros(0)
        scores, at = [], 0
        for query in queries:
            scores.append(flat[at : at + len(query.candidates)])
            at += len(query.candidates)
        return scores

    return score


@torch.no_grad()
def label_embeddings(model: KnowledgePretrainingModel, tokenizer, labels: Sequence[str], batch_size: int = 256,
                     max_length: int = 32) -> torch.Tensor:
    """``<s> label </s>`` through the encoder, first-token state, L2-normalised: (len(labels), hidden) float32.
    The same reading of a text as the knowledge side of XLM-K's contrastive objectives."""
    states = []
    for start in range(0, len(labels), batch_size):
        encoded = tokenizer(list(labels[start : start + batch_size]), truncation=True, max_length=max_length,
                            padding=True, return_tensors="pt")
        ids, mask = encoded["input_ids"].to(_device(model)), encoded["attention_mask"].to(_device(model))
        states.append(F.normalize(model.encoder(ids, mask).word_hidden[:, 0].float(), dim=-1).cpu())
    return torch.cat(states) if states else torch.zeros(0, model.config.hidden_size)

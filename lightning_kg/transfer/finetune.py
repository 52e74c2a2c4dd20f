"""Fine-tuning one encoder + head on a train split, the epoch picked on a dev split, and prediction.

A plain loop, as LUKE's fine-tuning scripts have: AdamW (no decay on biases and LayerNorm
weights), a linear warmup over the first ``warmup_ratio`` of the steps then a linear decay to 0,
gradients clipped to ``max_grad_norm``. After every epoch the dev split is predicted and scored;
the weights of the best epoch (the earliest, on a tie) are the ones kept, so test data never
chooses anything.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lightning_kg.transfer.encoders import TransferEncoder
from lightning_kg.transfer.features import EncodedRow, TaskBatch, TaskEncoder, collate
from lightning_kg.transfer.heads import TaskHead, classification_loss, greedy_spans, span_candidates, word_tag_spans

LOST_PREDICTION = "<lost>"
"""The prediction for a relation or typing example whose span was lost to tokenization: always wrong."""


@dataclass
class FinetuneSettings:
    """The loop's knobs (``--finetune.epochs 3``). mLUKE fine-tunes base-size models with lr 1e-5
    for 5 epochs (CoNLL NER) and a 6% warmup; the demo's small tasks and tiny models learn nothing
    at that rate in few steps, so the defaults keep LUKE's schedule and weight decay with a higher rate."""

    epochs: int = 5
    """Passes over the train split (mLUKE's NER: 5); dev is scored after each."""
    learning_rate: float = 5e-5
    """Peak AdamW learning rate (mLUKE: 1e-5 at base size, on CoNLL's 14k sentences)."""
    batch_size: int = 16
    """Rows per step (a NER sentence with more than ``max_entities`` candidate spans is several rows)."""
    warmup_ratio: float = 0.06
    """Share of the steps spent warming the learning rate up from 0 (LUKE: 0.06)."""
    weight_decay: float = 0.01
    """AdamW weight decay, biases and LayerNorm weights excepted (LUKE: 0.01)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (LUKE's legacy scripts: 1.0)."""
    dropout: float = 0.1
    """Dropout before the head's linear layer."""
    max_seq_length: int = 128
    """Subwords per sentence, ``<s>`` and ``</s>`` included; words past it are lost (and counted)."""
    max_mention_length: int = 16
    """Subwords a candidate NER span (and an entity's position ids) may cover (LUKE: 16)."""
    max_entities: int = 128
    """Candidate spans per row; a sentence with more is split into rows (LUKE: 128)."""


class TaskModel(nn.Module):
    """An encoder and one head: a batch in, the head's logits out."""

    def __init__(self, encoder: TransferEncoder, head: TaskHead):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, batch: TaskBatch) -> torch.Tensor:
        inputs = batch.encoder_inputs()
        if not self.head.uses_entities:
            inputs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        word_hidden, entity_hidden = self.encoder(**inputs)
        return self.head(word_hidden, entity_hidden, batch.tensors)


@dataclass
class FitResult:
    chosen_epoch: int
    """1-based epoch whose weights were kept: the best dev score."""
    dev_scores: list[float] = field(default_factory=list)
    """The dev split's main metric after each epoch."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _loader(rows: list[EncodedRow], coder: TaskEncoder, pad_token_id: int, batch_size: int, generator=None) -> DataLoader:
    return DataLoader(rows, batch_size=batch_size, shuffle=generator is not None, generator=generator,
                      collate_fn=partial(collate, pad_token_id=pad_token_id, max_mention_length=coder.max_mention_length,
                                         label_kind=coder.label_kind))


def _optimizer(model: nn.Module, settings: FinetuneSettings) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for parameter in model.parameters():
        # LayerNorm weights are 1-D, as are biases: neither is decayed (LUKE, BERT).
        (no_decay if parameter.ndim == 1 else decay).append(parameter)
    return torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=settings.learning_rate)


def linear_warmup_decay(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """The learning-rate factor at a step: up from 0 over the warmup, then down to 0 at ``total_steps``."""
    warmup = max(1, int(total_steps * warmup_ratio))
    return lambda step: step / warmup if step < warmup else max(0.0, (total_steps - step) / max(1, total_steps - warmup))


def fine_tune(model: TaskModel, coder: TaskEncoder, pad_token_id: int, train_rows: list[EncodedRow],
              dev_rows: list[EncodedRow], dev_size: int, dev_score: Callable[[list], float],
              settings: FinetuneSettings, seed: int, progress: bool = True) -> FitResult:
    """Train ``model`` in place on ``train_rows``; after each epoch, ``dev_score`` of the predictions
    for the ``dev_size`` dev examples (see :func:`predict`). Leaves ``model`` with the best epoch's
    weights, in eval mode."""
    if not train_rows:
        raise ValueError("the train split gave no rows to fine-tune on (every example's span was lost?)")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    loader = _loader(train_rows, coder, pad_token_id, settings.batch_size, generator)
    total_steps = settings.epochs * len(loader)
    optimizer = _optimizer(model, settings)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_warmup_decay(total_steps, settings.warmup_ratio))
    result, best_state, best_score = FitResult(chosen_epoch=0), None, float("-inf")
    bar = tqdm(total=total_steps, desc=f"fine-tune seed {seed}", disable=not progress, leave=False)
    for epoch in range(1, settings.epochs + 1):
        model.train()
        for batch in loader:
            loss = classification_loss(model(batch.to(device)), batch.tensors["labels"].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            optimizer.step()
            schedule.step()
            bar.update()
        score = dev_score(predict(model, coder, pad_token_id, dev_rows, dev_size, settings.batch_size))
        result.dev_scores.append(score)
        bar.set_postfix(epoch=epoch, dev=f"{score:.3f}")
        if score > best_score:
            best_score, result.chosen_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
    bar.close()
    model.load_state_dict(best_state)
    return result


@torch.no_grad()
def predict(model: TaskModel, coder: TaskEncoder, pad_token_id: int, rows: list[EncodedRow], size: int,
            batch_size: int) -> list:
    """Predictions for ``size`` examples from their ``rows``: NER, a set of ``(start, end, label)``
    per example (no row: the empty set); the other tasks, a label per example (no row: its span was
    lost, :data:`LOST_PREDICTION`)."""
    model.eval()
    device = next(model.parameters()).device
    if coder.task == "ner":
        found: list = [[] for _ in range(size)] if coder.head == "entity" else [set() for _ in range(size)]
    else:
        found = [LOST_PREDICTION] * size
    for batch in _loader(rows, coder, pad_token_id, batch_size):
        logits = model(batch.to(device))
        if coder.task != "ner":
            for index, label in zip(batch.example_index, logits.argmax(-1).tolist()):
                found[index] = coder.classes[label]
        elif coder.head == "entity":
            for index, candidates in zip(batch.example_index, span_candidates(logits, batch.spans, coder.classes)):
                found[index].extend(candidates)  # a sentence split over rows gathers all its candidates first
        else:
            for index, spans in zip(batch.example_index, word_tag_spans(logits, batch.word_starts, coder.classes)):
                found[index] = spans
    if coder.task == "ner" and coder.head == "entity":
        return [greedy_spans(candidates) for candidates in found]
    return found

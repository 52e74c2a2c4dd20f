"""The scores each transfer task is judged by, computed the way its benchmark computes them.

NER: span precision, recall and F1 by exact match of (start, end, type), micro over all spans, as
seqeval (and conlleval) count them. Relations: F1 over the classes other than ``no_relation``, micro
as the TACRED scorer and macro as SemEval-2010 / KBP37 report it. Typing and sentence pairs: accuracy.
A ratio with nothing under it (no predicted span, no gold relation) is 0, as seqeval's default gives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from lightning_kg.dataset.task_examples import NO_RELATION, Example, PairExample, RelationExample, SpanExample, TypingExample

MAIN_METRIC = {"ner": "f1", "relation": "micro_f1", "typing": "accuracy", "pair": "accuracy"}
TASK_EXAMPLES = {"ner": SpanExample, "relation": RelationExample, "typing": TypingExample, "pair": PairExample}


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _same_length(gold: Sequence, predicted: Sequence) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold and {len(predicted)} predicted; expected one prediction per example")
    if not gold:
        raise ValueError("no examples to score; expected one or more")


def span_f1(gold: Sequence[set[tuple[int, int, str]]], predicted: Sequence[set[tuple[int, int, str]]]) -> dict[str, float]:
    """Precision, recall and F1 of the predicted spans of each sentence against its gold ones, exact
    match of (start, end, label), summed over all sentences before the ratios (micro)."""
    _same_length(gold, predicted)
    gold = [set(spans) for spans in gold]
    predicted = [{tuple(span) for span in spans} for spans in predicted]
    correct = sum(len(g & p) for g, p in zip(gold, predicted))
    precision = _ratio(correct, sum(map(len, predicted)))
    recall = _ratio(correct, sum(map(len, gold)))
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def relation_f1(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """Micro and macro F1 over the relation classes, ``no_relation`` left out: predicting it is no
    guess, and a gold ``no_relation`` is nothing to find. Macro averages the F1 of each class found in
    the gold or the predicted labels."""
    _same_length(gold, predicted)
    correct = Counter(g for g, p in zip(gold, predicted) if g == p and g != NO_RELATION)
    guessed = Counter(p for p in predicted if p != NO_RELATION)
    wanted = Counter(g for g in gold if g != NO_RELATION)
    micro_precision = _ratio(sum(correct.values()), sum(guessed.values()))
    micro_recall = _ratio(sum(correct.values()), sum(wanted.values()))
    classes = sorted(set(guessed) | set(wanted))
    per_class = [_f1(_ratio(correct[c], guessed[c]), _ratio(correct[c], wanted[c])) for c in classes]
    return {"micro_f1": _f1(micro_precision, micro_recall), "macro_f1": _ratio(sum(per_class), len(per_class))}


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Share of the predicted labels equal to the gold ones."""
    _same_length(gold, predicted)
    return sum(g == p for g, p in zip(gold, predicted)) / len(gold)


def score(task: str, gold_examples: Sequence[Example], predictions: Sequence) -> dict[str, float]:
    """The task's scores (``MAIN_METRIC[task]`` among them) of ``predictions``, for ner a set of
    ``(start, end, label)`` spans per example, else a label per example."""
    if task not in TASK_EXAMPLES:
        raise ValueError(f"task {task!r}: expected one of {', '.join(TASK_EXAMPLES)}")
    wrong = next((example for example in gold_examples if not isinstance(example, TASK_EXAMPLES[task])), None)
    if wrong is not None:
        raise ValueError(f"{wrong.source or wrong}: a {type(wrong).__name__} among the {task} examples; "
                         f"expected {TASK_EXAMPLES[task].__name__}s")
    if task == "ner":
        return span_f1([set(example.spans) for example in gold_examples], predictions)
    labels = [example.label for example in gold_examples]
    if task == "relation":
        return {**relation_f1(labels, predictions), "accuracy": accuracy(labels, predictions)}
    return {"accuracy": accuracy(labels, predictions)}

"""Each task's scores against numbers worked out by hand, seqeval's README example, and seqeval and
scikit-learn themselves on random labels."""

import random

import pytest

from lightning_kg.dataset.tags import spans_from_tags
from lightning_kg.dataset.task_examples import NO_RELATION, PairExample, RelationExample, SpanExample, TypingExample
from lightning_kg.transfer.metrics import MAIN_METRIC, accuracy, relation_f1, score, span_f1


def test_span_f1_is_exact_match_micro_over_all_sentences():
    gold = [{(0, 2, "PER"), (3, 4, "LOC")}, {(1, 2, "ORG")}]
    predicted = [{(0, 2, "PER"), (3, 4, "ORG")}, {(1, 2, "ORG"), (0, 1, "MISC")}]  # 2 right of 4 guessed, 3 gold
    assert span_f1(gold, predicted) == pytest.approx({"precision": 0.5, "recall": 2 / 3, "f1": 4 / 7})
    assert span_f1([{(0, 3, "LOC")}], [{(0, 2, "LOC")}]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}  # a boundary off
    assert span_f1([set()], [set()]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}  # seqeval's zero_division default


def test_span_f1_of_seqevals_readme_example():
    y_true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    scores = span_f1([set(spans_from_tags(t)) for t in y_true], [set(spans_from_tags(t)) for t in y_pred])
    assert scores["f1"] == 0.5  # seqeval.metrics.f1_score(y_true, y_pred) == 0.50


def test_relation_f1_leaves_no_relation_out():
    gold = ["A", "A", "B", NO_RELATION, NO_RELATION, "C"]
    predicted = ["A", "B", "B", "A", NO_RELATION, NO_RELATION]
    # correct A 1, B 1; guessed A 2, B 2; gold A 2, B 1, C 1: micro P = R = 2/4;
    # per class F1: A 1/2, B 2/3 (P 1/2, R 1), C 0 -> macro 7/18.
    assert relation_f1(gold, predicted) == pytest.approx({"micro_f1": 0.5, "macro_f1": 7 / 18})
    assert accuracy(gold, predicted) == 0.5
    # Always answering no_relation finds nothing, however many gold no_relation it matches.
    assert relation_f1(["A", NO_RELATION, NO_RELATION], [NO_RELATION] * 3) == {"micro_f1": 0.0, "macro_f1": 0.0}


def test_score_reads_the_gold_from_the_examples():
    spans = [SpanExample(("New", "York"), ((0, 2, "LOC"),), "en"), SpanExample(("Paris",), ((0, 1, "LOC"),), "en")]
    assert score("ner", spans, [{(0, 2, "LOC")}, {(0, 1, "PER")}]) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    relations = [RelationExample(("a", "b"), (0, 1), (1, 2), "P17", "de"), RelationExample(("a", "b"), (0, 1), (1, 2), NO_RELATION, "de")]
    assert score("relation", relations, ["P17", "P17"]) == pytest.approx({"micro_f1": 2 / 3, "macro_f1": 2 / 3, "accuracy": 0.5})
    typing = [TypingExample(("Lyon",), (0, 1), "city", "fr"), TypingExample(("franc",), (0, 1), "currency", "fr")]
    assert score("typing", typing, ["city", "city"]) == {"accuracy": 0.5}
    pairs = [PairExample("a", "b", "neutral", "en")]
    assert score("pair", pairs, ["neutral"]) == {"accuracy": 1.0}
    for task, examples in (("ner", spans), ("relation", relations), ("typing", typing), ("pair", pairs)):
        assert MAIN_METRIC[task] in score(task, examples, [set()] * len(examples) if task == "ner" else ["x"] * len(examples))


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match=r"^2 gold and 1 predicted; expected one prediction per example$"):
        accuracy(["a", "b"], ["a"])
    with pytest.raises(ValueError, match=r"^no examples to score"):
        span_f1([], [])
    with pytest.raises(ValueError, match=r"^en.test.tsv:2: a PairExample among the typing examples; expected TypingExamples$"):
        score("typing", [PairExample("a", "b", "neutral", "en", "en.test.tsv:2")], ["neutral"])
    with pytest.raises(ValueError, match=r"^task 'qa': expected one of ner, relation, typing, pair$"):
        score("qa", [], [])


def test_spans_and_span_f1_agree_with_seqeval_on_random_and_broken_tags():
    """seqeval is the reference the readers and span_f1 follow (dev extra only: the package never imports it)."""
    metrics = pytest.importorskip("seqeval.metrics")
    from seqeval.metrics.sequence_labeling import get_entities

    draw = random.Random(0)
    tags = ["O", "O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "I-ORG"]
    y_true = [[draw.choice(tags) for _ in range(draw.randint(1, 9))] for _ in range(400)]
    y_pred = [[draw.choice(tags) if draw.random() < 0.3 else tag for tag in sentence] for sentence in y_true]
    for sentence in y_true:
        assert spans_from_tags(sentence) == [(start, end + 1, kind) for kind, start, end in get_entities(sentence)], sentence
    ours = span_f1([set(spans_from_tags(t)) for t in y_true], [set(spans_from_tags(t)) for t in y_pred])
    assert ours == pytest.approx({"precision": metrics.precision_score(y_true, y_pred), "recall": metrics.recall_score(y_true, y_pred),
                                  "f1": metrics.f1_score(y_true, y_pred)})


def test_relation_f1_agrees_with_scikit_learn_over_the_classes_but_no_relation():
    metrics = pytest.importorskip("sklearn.metrics")  # installed with seqeval (dev extra)
    draw = random.Random(1)
    labels = ["P17", "P31", "P36(e2,e1)", NO_RELATION, NO_RELATION]
    gold = [draw.choice(labels) for _ in range(300)]
    predicted = [draw.choice(labels) if draw.random() < 0.5 else label for label in gold]
    classes = sorted((set(gold) | set(predicted)) - {NO_RELATION})
    assert relation_f1(gold, predicted) == pytest.approx({
        "micro_f1": metrics.f1_score(gold, predicted, labels=classes, average="micro"),
        "macro_f1": metrics.f1_score(gold, predicted, labels=classes, average="macro")})

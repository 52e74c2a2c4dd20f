"""Entity alignment split by whether the two labels are one string, ties, and NaN scores, on constructed cases."""

from collections import Counter

import numpy as np
import pytest
import torch

from lightning_kg.probe.metrics import LabelVectors, alignment_accuracy, answer_rank, summarise, top_candidate


def unit(*rows) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_alignment_over_labels_that_differ_leaves_out_what_spelling_finds(spelling_world):
    alignment = alignment_accuracy(spelling_world)
    english_to_german = alignment["en", "de"]
    assert english_to_german.acc1 == 0.75  # 10 and 11 by spelling, 12 by meaning; France finds Asia
    assert english_to_german.acc1_distinct == 0.5
    assert english_to_german.same_label == 0.5
    rows = summarise([], Counter(), alignment)
    assert [row["key"] for row in rows] == ["de", "en", "mean"]  # a language with labels has a row, asked or not
    english, mean = rows[1], rows[-1]
    assert (english["alignment_acc1"], english["alignment_acc1_distinct"]) == (0.75, 0.5)
    assert mean["alignment_same_label"] == 0.5


def test_alignment_of_labels_that_are_all_the_same_string_has_no_distinct_figure():
    vectors = unit([1, 0], [0, 1])
    alignment = alignment_accuracy({"en": LabelVectors([5, 6], ["Europa", "Asia"], vectors),
                                    "nl": LabelVectors([5, 6], ["Europa", "Asia"], vectors)})
    assert alignment["en", "nl"].acc1 == 1.0 and alignment["en", "nl"].acc1_distinct is None
    assert summarise([], Counter(), alignment)[0]["alignment_acc1_distinct"] is None


def test_two_entities_with_one_label_tie_and_neither_is_found():
    """Two places called "Springfield" are one vector: a retrieval that picks the first row would be
    right for one of them by luck."""
    vectors = unit([1, 0], [1, 0], [0, 1])
    labels = ["Springfield", "Springfield", "Boston"]
    alignment = alignment_accuracy({"en": LabelVectors([5, 6, 7], labels, vectors), "de": LabelVectors([5, 6, 7], labels, vectors)})
    assert alignment["en", "de"].acc1 == pytest.approx(1 / 3)


def test_a_tie_for_first_is_no_top_prediction_and_nan_ranks_last():
    assert top_candidate(np.array([0.2, 0.9, 0.9]), [5, 6, 7]) is None
    assert top_candidate(np.array([0.2, 0.9, np.nan]), [5, 6, 7]) == 6
    assert answer_rank(np.array([0.2, np.nan, 0.1]), 1) == 2
    assert answer_rank(np.array([np.nan, np.nan]), 0) == 1


def test_the_majority_baseline_answers_each_relations_most_frequent_object():
    """LAMA's frequency baseline per relation over all languages, macro-averaged like the other
    columns: P30 asks objects 7, 7, 8 in English and 8, 8 in German, so 8 is its answer everywhere
    (1 of 3 in English, 2 of 2 in German); P17 asks 9 and 10 once each, a tie given to the smaller
    index, 9."""
    from lightning_kg.probe.metrics import QueryResult
    from lightning_kg.probe.queries import Fact

    def result(lang, relation, subject, obj):
        return QueryResult(Fact(subject, relation, obj, lang, "s", "o"), 4, {"entity": 0}, {"entity": obj})

    results = [result("en", "P30", 1, 7), result("en", "P30", 2, 7), result("en", "P30", 3, 8),
               result("de", "P30", 4, 8), result("de", "P30", 5, 8), result("en", "P17", 6, 9), result("en", "P17", 7, 10)]
    rows = {row["key"]: row for row in summarise(results, Counter(), {})}
    assert rows["en"]["majority_p1"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert rows["de"]["majority_p1"] == 1.0
    assert rows["P30"]["majority_p1"] == pytest.approx((1 / 3 + 1) / 2)
    assert rows["mean"]["majority_p1"] == pytest.approx(((1 / 3 + 1 / 2) / 2 + 1) / 2)
    assert rows["mean"]["entity_p1"] == 1.0 and rows["mean"]["chance_p1"] == 0.25

"""The fine-tuning heads and their inputs: span enumeration, features' shapes, decoding."""

import pytest
import torch

from lightning_kg.dataset.task_examples import RelationExample, SpanExample, TypingExample
from lightning_kg.dataset.tokenizer import load_tokenizer
from lightning_kg.model.config import EncoderConfig
from lightning_kg.model.encoder import KnowledgeEncoder
from lightning_kg.transfer.features import LostSpans, TaskEncoder, align_words, candidate_spans, collate
from lightning_kg.transfer.heads import TaskHead, classification_loss, greedy_spans, iob2_spans, span_candidates
from tests.demo import DEMO

WORDS = ("Tokyo", "is", "the", "capital", "of", "Japan", ".")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(f"{DEMO}/tokenizer")


def encoder(tokenizer):
    torch.manual_seed(0)
    return KnowledgeEncoder(EncoderConfig.preset("tiny", len(tokenizer), 4, dropout=0.0, attention_dropout=0.0)).eval()


def test_every_span_up_to_the_maximum_is_a_candidate(tokenizer):
    # One subword per word here, so the count is n*L - L*(L-1)/2 for n words and spans of at most L.
    words = ("a",) * 10
    alignment = align_words(tokenizer, words, 128)
    assert list(alignment.first) == list(range(1, 11))
    assert len(candidate_spans(alignment, 4)) == 10 * 4 - 4 * 3 // 2
    assert len(candidate_spans(alignment, 16)) == 10 * 11 // 2


def test_spans_are_counted_in_subwords_and_lost_words_never_end_one(tokenizer):
    alignment = align_words(tokenizer, ("Tokyo", "", "Japan"), 128)
    assert alignment.first[1] is None
    spans = candidate_spans(alignment, 16)
    assert (0, 2) not in spans and (1, 2) not in spans and (0, 3) in spans


def test_lost_gold_spans_are_counted_by_reason(tokenizer):
    example = SpanExample(("Tokyo", "", "in", "Japan", "and", "Kyoto"), ((1, 2, "LOC"), (0, 4, "LOC"), (5, 6, "LOC")), "en")
    lost = LostSpans()
    ner = TaskEncoder("ner", "entity", tokenizer, ["LOC"], max_seq_length=6, max_mention_length=2, mask_id=2)
    rows = ner.encode([example], lost, training=True)
    assert lost.as_dict() == {"lost_to_tokenization": 1, "truncated": 1, "longer_than_max_mention": 1}
    assert all(label == 0 for row in rows for label in row.labels)


def test_span_ner_features_and_logits_have_one_row_per_candidate(tokenizer):
    example = SpanExample(WORDS, ((0, 1, "LOC"), (5, 6, "LOC")), "en")
    ner = TaskEncoder("ner", "entity", tokenizer, ["LOC"], max_mention_length=16, max_entities=10, mask_id=2)
    rows = ner.encode([example], LostSpans(), training=True)
    spans = sum(len(row.spans) for row in rows)
    assert spans == len(candidate_spans(align_words(tokenizer, WORDS, 128), 16)) and len(rows) == -(-spans // 10)
    batch = collate(rows, tokenizer.pad_token_id, 16, ner.label_kind)
    words, entities, _ = encoder(tokenizer)(**batch.encoder_inputs())
    head = TaskHead("ner", "entity", 64, 2)
    assert head.features(words, entities, batch.tensors).shape == (len(rows), 10, 3 * 64)
    logits = head(words, entities, batch.tensors)
    assert logits.shape == (len(rows), 10, 2)
    assert int(batch.tensors["labels"].eq(1).sum()) == 2
    loss = classification_loss(logits, batch.tensors["labels"])
    assert torch.isfinite(loss) and loss > 0


def test_relation_uses_mask_and_mask2_over_the_two_spans(tokenizer):
    example = RelationExample(WORDS, (0, 1), (5, 6), "capital_of", "en")
    relation = TaskEncoder("relation", "entity", tokenizer, ["capital_of", "no_relation"], mask_id=2, mask2_id=3)
    (row,) = relation.encode([example], LostSpans(), training=True)
    alignment = align_words(tokenizer, WORDS, 128)
    assert row.entity_ids == [2, 3]
    assert row.entity_positions == [list(range(alignment.first[0], alignment.last[0] + 1)),
                                    list(range(alignment.first[5], alignment.last[5] + 1))]
    batch = collate([row, row], tokenizer.pad_token_id, 16, relation.label_kind)
    assert batch.tensors["labels"].tolist() == [0, 0] and batch.tensors["entity_position_ids"].shape == (2, 2, 16)
    words, entities, _ = encoder(tokenizer)(**batch.encoder_inputs())
    assert TaskHead("relation", "entity", 64, 2)(words, entities, batch.tensors).shape == (2, 2)
    assert TaskHead("relation", "word", 64, 2).features(words, None, batch.tensors).shape == (2, 128)


def test_typing_with_a_lost_span_gives_no_row_and_a_count(tokenizer):
    lost = LostSpans()
    typing = TaskEncoder("typing", "word", tokenizer, ["LOC"])
    assert typing.encode([TypingExample(("", "is", "big"), (0, 1), "LOC", "en")], lost, training=True) == []
    assert lost.lost_to_tokenization == 1


def test_greedy_decoding_keeps_the_best_non_overlapping_spans():
    scored = [(-0.1, 0, 2, "ORG"), (-0.5, 1, 3, "LOC"), (-0.2, 3, 4, "PER"), (-0.9, 0, 1, "LOC")]
    assert greedy_spans(scored) == {(0, 2, "ORG"), (3, 4, "PER")}


def test_span_candidates_skip_non_entities_and_padding():
    logits = torch.tensor([[[5.0, 0.0], [0.0, 5.0], [0.0, 9.0]]])  # the third column is padding
    (row,) = span_candidates(logits, [[(0, 1), (1, 2)]], ["O", "LOC"])
    assert [(start, end, label) for _, start, end, label in row] == [(1, 2, "LOC")]


def test_iob2_chunks_as_seqeval_reads_them():
    assert iob2_spans(["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG"]) == {
        (0, 2, "PER"), (3, 5, "LOC"), (5, 6, "LOC"), (6, 7, "ORG")}

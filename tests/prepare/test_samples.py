import numpy as np
import pytest

from lightning_kg.prepare.samples import TextSequence, char_spans_to_token_spans, join_sequences, knowledge_text, pack_document
from lightning_kg.prepare.tokenizer_training import train_tokenizer

TEXT = "Japan is a country in Asia. Its capital is Tokyo. The yen is its currency."


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer([TEXT, "Tokyo is a city. Asia is big."] * 20, vocab_size=60)


def anchors(sequence, tokenizer):
    return [(tokenizer.decode(sequence.input_ids[s:e]).strip(), ent) for s, e, ent in sequence.mentions.tolist()]


def test_mentions_map_to_their_tokens_and_sequences_end_with_special_tokens(tokenizer):
    paragraphs = [(TEXT, [(0, 5, 7), (22, 26, 8), (43, 48, 9), (54, 57, -1)])]
    (sequence,) = pack_document(paragraphs, tokenizer, max_seq_length=256)
    assert sequence.input_ids[0] == tokenizer.bos_token_id and sequence.input_ids[-1] == tokenizer.eos_token_id
    assert sequence.input_ids.dtype.name == "int32" and sequence.mentions.dtype.name == "int32"
    # The mention with entity -1 (outside the vocabulary) is left out.
    assert anchors(sequence, tokenizer) == [("Japan", 7), ("Asia", 8), ("Tokyo", 9)]


def test_packing_breaks_on_sentences_and_never_cuts_a_mention(tokenizer):
    paragraphs = [(TEXT, [(0, 5, 7), (22, 26, 8), (43, 48, 9)]), ("Tokyo is a city.", [(0, 5, 9)])]
    length = 30
    sequences = list(pack_document(paragraphs, tokenizer, max_seq_length=length))
    assert len(sequences) > 1
    assert all(len(s.input_ids) <= length for s in sequences)
    decoded = [tokenizer.decode(s.input_ids[1:-1]).strip() for s in sequences]
    # Each sequence starts at a sentence start (sentences here are shorter than a sequence).
    assert all(text[0].isupper() for text in decoded), decoded
    found = [a for s in sequences for a in anchors(s, tokenizer)]
    assert found == [("Japan", 7), ("Asia", 8), ("Tokyo", 9), ("Tokyo", 9)]


def test_a_unit_longer_than_a_sequence_is_cut_and_crossing_mentions_dropped(tokenizer):
    text = "Japan Japan Japan Japan Japan Japan Japan Japan"
    spans = [(i * 6, i * 6 + 5, 3 + i) for i in range(8)]
    sequences = list(pack_document([(text, spans)], tokenizer, max_seq_length=8))
    assert all(len(s.input_ids) <= 8 for s in sequences)
    for sequence in sequences:
        for anchor, _ in anchors(sequence, tokenizer):
            assert anchor == "Japan"


def test_char_spans_without_a_token_give_none():
    offsets = [(0, 5), (5, 6), (6, 8)]
    assert char_spans_to_token_spans(offsets, [(0, 5), (6, 8), (20, 22)]) == [(0, 1), (2, 3), None]


def test_knowledge_text_composes_a_description_from_facts_when_missing():
    assert knowledge_text("Japan", "island country in East Asia", [("capital", "Tokyo")]) == ("Japan", "island country in East Asia", False)
    assert knowledge_text("Japan", None, [("capital", "Tokyo"), ("currency", "yen")]) == ("Japan", "capital: Tokyo; currency: yen", True)


def test_joined_sequences_keep_one_separator_and_shift_mentions():
    first = TextSequence(np.array([0, 10, 11, 2], np.int32), np.array([[1, 3, 5]], np.int32))
    second = TextSequence(np.array([0, 20, 2], np.int32), np.array([[1, 2, 6]], np.int32))
    joined = join_sequences(first, second)
    assert joined.input_ids.tolist() == [0, 10, 11, 2, 20, 2]
    assert joined.mentions.tolist() == [[1, 3, 5], [4, 5, 6]]


def test_knowledge_text_puts_aliases_after_the_label_once():
    assert knowledge_text("Japan", "island country", [], ["Nippon", "Japan", "Nippon", "JP"]) == \
        ("Japan (Nippon, JP)", "island country", False)
    assert knowledge_text("Tokyo", None, [("country", "Japan")], []) == ("Tokyo", "country: Japan", True)

"""Tags read as seqeval's default mode reads them, whatever the scheme; what a scheme forbids is found apart."""

import pytest

from lightning_kg.dataset.tags import SCHEMES, guess_scheme, scheme_breaks, spans_from_tags, split_tag, tags_from_spans


def test_iob1_opens_entities_with_i_and_separates_same_type_neighbours_with_b():
    # "Peter Blackburn" then "Hans Meier" right after it, then "EU": IOB1 as CoNLL-2003 was released.
    tags = ["I-PER", "I-PER", "B-PER", "I-PER", "O", "I-ORG"]
    assert spans_from_tags(tags) == [(0, 2, "PER"), (2, 4, "PER"), (5, 6, "ORG")]
    assert guess_scheme([tags]) == "IOB1"
    assert scheme_breaks(tags, "IOB1") == []


def test_iob2_and_iobes_give_the_same_spans_as_iob1():
    spans = [(0, 2, "PER"), (2, 4, "PER"), (5, 6, "ORG"), (6, 9, "LOC")]
    written = {scheme: tags_from_spans(spans, 10, scheme) for scheme in SCHEMES}
    assert written["IOB2"] == ["B-PER", "I-PER", "B-PER", "I-PER", "O", "B-ORG", "B-LOC", "I-LOC", "I-LOC", "O"]
    assert written["IOBES"] == ["B-PER", "E-PER", "B-PER", "E-PER", "O", "S-ORG", "B-LOC", "I-LOC", "E-LOC", "O"]
    assert written["IOB1"] == ["I-PER", "I-PER", "B-PER", "I-PER", "O", "I-ORG", "I-LOC", "I-LOC", "I-LOC", "O"]
    for scheme, tags in written.items():
        assert spans_from_tags(tags) == spans, scheme
        assert guess_scheme([tags]) == scheme
        assert scheme_breaks(tags, scheme) == [], scheme


def test_a_broken_iob2_sequence_is_repaired_as_seqeval_does_and_its_breaks_found():
    # seqeval: get_entities(["B-LOC", "I-PER", "O", "I-ORG", "I-ORG"]) == [("LOC", 0, 0), ("PER", 1, 1), ("ORG", 3, 4)]
    tags = ["B-LOC", "I-PER", "O", "I-ORG", "I-ORG", "B-MISC"]
    assert spans_from_tags(tags) == [(0, 1, "LOC"), (1, 2, "PER"), (3, 5, "ORG"), (5, 6, "MISC")]
    assert guess_scheme([tags]) == "IOB2"  # three entities open with B-, two with I-
    assert scheme_breaks(tags, "IOB2") == [1, 3]


def test_iobes_breaks_include_an_entity_left_open_and_an_end_with_no_start():
    tags = ["B-PER", "O", "E-LOC", "S-ORG", "B-LOC"]
    assert spans_from_tags(tags) == [(0, 1, "PER"), (2, 3, "LOC"), (3, 4, "ORG"), (4, 5, "LOC")]
    assert scheme_breaks(tags, "IOBES") == [1, 2, 4]


def test_bad_tags_and_spans_are_refused_with_what_was_expected():
    assert split_tag("B-LOC-X") == ("B", "LOC-X")
    for tag in ("PER", "X-PER", "B-", "o"):
        with pytest.raises(ValueError, match=rf"the tag '{tag}': expected O or one of B-, I-, E-, S- followed by a type"):
            split_tag(tag)
    with pytest.raises(ValueError, match=r"span \(1, 3, 'PER'\) overlaps the one before it"):
        tags_from_spans([(0, 2, "LOC"), (1, 3, "PER")], 4)
    with pytest.raises(ValueError, match=r"expected 0 <= start < end <= 4"):
        tags_from_spans([(3, 5, "LOC")], 4)

from collections import Counter

import pytest

from lightning_kg.dataset.entity_vocab import MASK_ID, UNK_ID, EntityVocab


def test_build_keeps_frequent_entities_in_a_fixed_order():
    counts = Counter({"Q17": 5, "Q1490": 5, "en:Foo": 1, "Q183": 9})
    titles = {"Q17": {"en": "Japan", "bg": "Япония"}}
    vocab = EntityVocab.build(counts, titles, min_count=2, max_size=5)
    assert vocab.entities == ["[PAD]", "[UNK]", "[MASK]", "Q183", "Q1490"]
    vocab = EntityVocab.build(counts, titles, min_count=2)
    assert vocab.entities[3:] == ["Q183", "Q1490", "Q17"]
    assert vocab.index("Q17") == 5 and vocab.titles[5] == {"bg": "Япония", "en": "Japan"}
    assert vocab.index("en:Foo") == UNK_ID and MASK_ID == 2


def test_save_and_load_round_trip(tmp_path):
    vocab = EntityVocab.build(Counter({"Q17": 3, "bg:Япония": 2}), {"Q17": {"en": "Japan"}, "bg:Япония": {"bg": "Япония"}})
    vocab.save(tmp_path / "entity_vocab.jsonl")
    lines = (tmp_path / "entity_vocab.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines[3] == '{"id": 3, "entity": "Q17", "count": 3, "titles": {"en": "Japan"}}'
    assert "Япония" in lines[4]
    loaded = EntityVocab.load(tmp_path / "entity_vocab.jsonl")
    assert loaded.entities == vocab.entities and loaded.counts == vocab.counts and loaded.titles == vocab.titles


def test_load_names_the_bad_line(tmp_path):
    path = tmp_path / "entity_vocab.jsonl"
    path.write_text('{"id": 0, "entity": "[PAD]", "count": 0}\n{"id": 7, "entity": "x", "count": 0}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"entity_vocab.jsonl:2: .*id 7 on line 2, expected 1"):
        EntityVocab.load(path)

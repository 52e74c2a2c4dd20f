import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_kg.data.masking import Collator, mask_entities, mask_tokens
from lightning_kg.dataset.format import IGNORE_INDEX

MASK, VOCAB = 99, 100


def sequence(length=256):
    ids = (np.arange(length, dtype=np.int32) % 90) + 4
    special = np.zeros(length, bool)
    special[[0, -1]] = True
    return ids, special


def test_masking_rate_and_80_10_10_split_and_never_special_tokens():
    rng = np.random.default_rng(0)
    ids, special = sequence()
    predicted = masked = kept = 0
    for _ in range(400):
        out, labels = mask_tokens(ids, special, [], VOCAB, MASK, rng)
        chosen = labels != IGNORE_INDEX
        assert not chosen[special].any() and (out[special] == ids[special]).all()
        assert (labels[chosen] == ids[chosen]).all() and (out[~chosen] == ids[~chosen]).all()
        predicted += chosen.sum()
        masked += (out[chosen] == MASK).sum()
        kept += (out[chosen] == ids[chosen]).sum()
    assert abs(predicted / (400 * (~special).sum()) - 0.15) < 0.005
    assert abs(masked / predicted - 0.8) < 0.02
    assert abs(kept / predicted - 0.1) < 0.02  # 10% kept, plus random draws that hit the same id (1%)


def test_mentions_are_masked_whole_within_the_budget():
    rng = np.random.default_rng(1)
    ids, special = sequence(64)
    spans = [(2, 6), (10, 13), (20, 24), (30, 31), (40, 43)]
    mention_hits, predicted = 0, 0
    for _ in range(500):
        _, labels = mask_tokens(ids, special, spans, VOCAB, MASK, rng)
        chosen = labels != IGNORE_INDEX
        for start, end in spans:
            assert chosen[start:end].all() or not chosen[start:end].any()
            mention_hits += chosen[start]
        predicted += chosen.sum()
    assert predicted == 500 * round(0.15 * 62)  # exactly the budget every time
    assert mention_hits > 0
    # Without whole_mention, spans are split.
    split = [mask_tokens(ids, special, spans, VOCAB, MASK, rng, whole_mention=False)[1][2:6] != IGNORE_INDEX for _ in range(300)]
    assert any(0 < s.sum() < 4 for s in split)


def test_forced_spans_become_mask_and_count_towards_the_budget():
    rng = np.random.default_rng(2)
    ids, special = sequence(40)
    for _ in range(100):
        out, labels = mask_tokens(ids, special, [(10, 13)], VOCAB, MASK, rng, forced_spans=[(10, 13)])
        assert (out[10:13] == MASK).all() and (labels[10:13] == ids[10:13]).all()
        assert (labels != IGNORE_INDEX).sum() == round(0.15 * 38)


def test_entity_masking_takes_about_15_percent_at_least_one_and_never_unk():
    rng = np.random.default_rng(3)
    inputs, labels = mask_entities(np.array([5, 1, 1]), rng)
    assert inputs.tolist() == [2, 1, 1] and labels.tolist() == [5, IGNORE_INDEX, IGNORE_INDEX]
    inputs, labels = mask_entities(np.array([1, 1]), rng)
    assert inputs.tolist() == [1, 1] and (labels == IGNORE_INDEX).all()
    assert mask_entities(np.zeros(0, np.int64), rng)[0].shape == (0,)
    entities = np.arange(3, 103)
    counts = [(mask_entities(entities, rng)[1] != IGNORE_INDEX).sum() for _ in range(50)]
    assert set(counts) == {15}
    masked = np.zeros(100)
    for _ in range(2000):
        masked += mask_entities(entities, rng)[1] != IGNORE_INDEX
    assert masked.min() > 0  # every slot gets its turn


class FakeKnowledge:
    """Entity e has the text [0, 50 + e, 2] in English only; entity 4 has none."""

    def sample(self, entity, rng, lang=None):
        return None if entity == 4 else np.array([0, 50 + entity, 2], dtype=np.int32)


def collator(**overrides):
    values = dict(pad_token_id=1, mask_token_id=MASK, vocab_size=VOCAB, special_token_ids=(0, 1, 2, 3, MASK),
                  knowledge=FakeKnowledge(), entity_mask_probability=1.0)
    return Collator(**values | overrides)


def text(length, mentions, lang="en"):
    ids = np.concatenate([[0], np.arange(10, 10 + length - 2), [2]]).astype(np.int32)
    return {"input_ids": ids, "mentions": np.array(mentions, dtype=np.int64).reshape(-1, 3), "lang": lang}


def test_batch_layout_follows_the_format():
    texts = [text(11, [(1, 3, 5), (4, 5, 4)]), text(5, [])]
    facts = [{"query_ids": np.array([0, 20, 21, 2]), "object": 6, "lang": "en"},
             {"query_ids": np.array([0, 22, 2]), "object": 4, "lang": "en"}]
    batch = collator()(texts, facts, np.random.default_rng(0))
    counts = batch.pop("counts")  # host ints, so that the step reads none back from the device
    assert all(isinstance(t, torch.Tensor) and t.dtype == torch.int64 for t in batch.values())
    assert counts["samples"] == 2 + batch["oe_objects"].shape[0] and counts["masked_words"] == int(batch["mlm_labels"].ne(IGNORE_INDEX).sum())
    assert counts["tokens"] == 16 + sum(int(batch[key].sum()) for key in ("mep_knowledge_mask", "oe_query_mask", "oe_object_mask"))
    assert counts["text_padding"] == 2 * 16 - 16 + int(batch["entity_attention_mask"].eq(0).sum())
    assert batch["input_ids"].shape == (2, 16) and batch["input_ids"][1, 5:].eq(1).all()
    assert batch["attention_mask"].sum(1).tolist() == [11, 5]
    assert batch["mlm_labels"][:, 11:].eq(IGNORE_INDEX).all() and batch["mlm_labels"][1, 5:].eq(IGNORE_INDEX).all()
    # The entity axis is padded to a multiple of 8 as the word axis is.
    assert batch["entity_ids"].tolist() == [[2, 2] + [0] * 6, [0] * 8]  # probability 1: both masked
    assert batch["entity_labels"].tolist() == [[5, 4] + [IGNORE_INDEX] * 6, [IGNORE_INDEX] * 8]
    assert batch["entity_position_ids"].tolist() == [[[1, 2], [4, -1]] + [[-1, -1]] * 6, [[-1, -1]] * 8]
    assert batch["entity_attention_mask"].tolist() == [[1, 1] + [0] * 6, [0] * 8]
    # Entity 4 has no knowledge text: only entity 5's mention is a contrastive pair, and its tokens are masked.
    assert batch["mep_mention_positions"].tolist() == [[0, 1]] and batch["mep_entities"].tolist() == [5]
    assert batch["input_ids"][0, 1:3].tolist() == [MASK, MASK] and batch["mlm_labels"][0, 1:3].tolist() == [10, 11]
    assert batch["mep_knowledge_ids"].tolist() == [[0, 55, 2, 1, 1, 1, 1, 1]]
    assert batch["mep_knowledge_mask"].tolist() == [[1, 1, 1, 0, 0, 0, 0, 0]]
    assert batch["oe_objects"].tolist() == [6] and batch["oe_query_ids"].tolist() == [[0, 20, 21, 2, 1, 1, 1, 1]]
    assert batch["oe_query_mask"].sum().item() == 4
    assert batch["oe_object_ids"][0, :3].tolist() == [0, 56, 2] and batch["oe_object_mask"].sum().item() == 3


def test_caps_on_entities_mention_length_and_knowledge_length():
    class LongKnowledge:
        def sample(self, entity, rng, lang=None):
            return np.arange(100, dtype=np.int32)

    mentions = [(1, 21, 5), *((22 + i, 23 + i, 6) for i in range(5))]
    batch = collator(knowledge=LongKnowledge(), max_entities=3, max_mention_length=4, knowledge_max_length=12)(
        [text(40, mentions)], [{"query_ids": np.arange(20), "object": 7, "lang": "en"}], np.random.default_rng(0))
    assert batch["entity_attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0, 0, 0]]  # 3 slots, padded to 8
    assert batch["entity_position_ids"][0, 0].tolist() == [1, 2, 3, 4]
    assert batch["mep_knowledge_ids"].shape == (3, 16) and batch["mep_knowledge_mask"].sum(1).tolist() == [12] * 3
    assert batch["oe_query_mask"].sum().item() == 12 and batch["oe_object_mask"].sum().item() == 12
    # The whole 20-token mention is masked for mep_contrastive, not only the 4 positions kept.
    assert (batch["input_ids"][0, 1:21] == MASK).all()


def test_no_facts_and_no_mentions_still_give_well_formed_tensors():
    batch = collator()([text(6, [])], [], np.random.default_rng(0))
    assert batch["mep_knowledge_ids"].shape == (0, 8) and batch["mep_knowledge_mask"].shape == (0, 8)
    assert batch["oe_query_ids"].shape == (0, 8) and batch["oe_object_ids"].shape == (0, 8)
    assert batch["oe_objects"].shape == (0,) and batch["mep_entities"].shape == (0,)
    assert batch["mep_mention_positions"].shape == (0, 2)
    # One padded entity slot group all the same, so that the entity embeddings stay in the graph (DDP).
    assert batch["entity_ids"].tolist() == [[0] * 8] and batch["entity_attention_mask"].tolist() == [[0] * 8]
    assert batch["entity_position_ids"].shape == (1, 8, 1) and (batch["entity_position_ids"] == -1).all()
    assert (batch["entity_labels"] == IGNORE_INDEX).all()


def test_inactive_objectives_build_nothing():
    texts = [text(11, [(1, 3, 5), (4, 5, 6)])]
    facts = [{"query_ids": np.array([0, 20, 21, 2]), "object": 6, "lang": "en"}]
    words = ["input_ids", "attention_mask", "mlm_labels", "mlm_positions", "mlm_targets", "counts"]
    entities = ["entity_ids", "entity_position_ids", "entity_attention_mask", "entity_labels", "entity_mask_positions", "entity_targets"]
    # MLM only: no knowledge table at all, no entity masks, no mep_* or oe_* tensors.
    mlm = collator(knowledge=None, entity_masking=False, mention_knowledge=False, facts=False)(texts, facts, np.random.default_rng(0))
    assert sorted(mlm) == sorted(words + entities)
    assert mlm["entity_ids"][0, :2].tolist() == [5, 6] and (mlm["entity_labels"] == IGNORE_INDEX).all()
    # mep_vocab without mep_contrastive: both entities masked, but their words are not forced to <mask>.
    seeds = range(20)
    vocab_only = [collator(mention_knowledge=False, facts=False)(texts, [], np.random.default_rng(seed)) for seed in seeds]
    assert all(sorted(b) == sorted(words + entities) and b["entity_ids"][0, :2].tolist() == [2, 2] for b in vocab_only)
    assert any(b["input_ids"][0, 1:3].tolist() != [MASK, MASK] for b in vocab_only)
    with_contrastive = [collator(facts=False)(texts, [], np.random.default_rng(seed)) for seed in seeds]
    assert all(b["input_ids"][0, 1:3].tolist() == [MASK, MASK] for b in with_contrastive)
    with pytest.raises(ValueError, match="need the knowledge table"):
        collator(knowledge=None)


def test_knowledge_language_same_asks_for_the_samples_language():
    asked = []

    class Recording(FakeKnowledge):
        def sample(self, entity, rng, lang=None):
            asked.append(lang)
            return super().sample(entity, rng, lang)

    collator(knowledge=Recording(), knowledge_language="same")([text(8, [(1, 2, 5)], lang="fr")], [], np.random.default_rng(0))
    collator(knowledge=Recording())([text(8, [(1, 2, 5)], lang="fr")], [], np.random.default_rng(0))
    assert asked == ["fr", None]
    with pytest.raises(ValueError, match="expected 'any' or 'same'"):
        collator(knowledge_language="de")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(3, 60), st.lists(st.tuples(st.integers(1, 58), st.integers(1, 4), st.sampled_from([1, 3, 4, 5, 6, 7])), max_size=6)),
                min_size=1, max_size=4),
       st.integers(0, 2**32 - 1))
def test_collate_on_random_input_keeps_its_invariants(rows, seed):
    texts = []
    for length, mentions in rows:
        spans = [(s, min(s + w, length - 1), e) for s, w, e in mentions if s < min(s + w, length - 1)]
        texts.append(text(length, spans))
    batch = collator(entity_mask_probability=0.5)(texts, [], np.random.default_rng(seed))
    assert batch["input_ids"].shape[1] % 8 == 0 and batch["entity_ids"].shape[1] % 8 == 0
    labels, ids = batch["mlm_labels"], batch["input_ids"]
    assert ((labels == IGNORE_INDEX) | (labels >= 4)).all()  # never a special token
    assert (ids[batch["attention_mask"] == 0] == 1).all()
    for (row, position), entity in zip(batch["mep_mention_positions"].tolist(), batch["mep_entities"].tolist()):
        assert ids[row, position] == MASK and entity in batch["entity_labels"][row].tolist()
    masked_slots = batch["entity_ids"] == 2
    assert (batch["entity_labels"][masked_slots] > 1).all()
    assert (batch["entity_labels"][~masked_slots] == IGNORE_INDEX).all()
    for row, sample in enumerate(texts):  # at least one entity masked in every row that has a known one
        if (sample["mentions"][:, 2] > 1).any():
            assert masked_slots[row].any()

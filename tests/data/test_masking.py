import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_kg.data.masking import IGNORE, Collator, choose_masked_entities, mask_tokens

MASK, VOCAB = 99, 100


def test_masking_rate_and_80_10_10_split():
    rng = np.random.default_rng(0)
    ids = np.arange(4, 260, dtype=np.int32) % 90 + 4
    special = np.zeros(len(ids), bool)
    special[[0, -1]] = True
    predicted = masked = kept = 0
    for _ in range(400):
        out, labels = mask_tokens(ids, special, [], [], VOCAB, MASK, rng)
        chosen = labels != IGNORE
        assert not chosen[special].any()
        predicted += chosen.sum()
        masked += (out[chosen] == MASK).sum()
        kept += (out[chosen] == ids[chosen]).sum()
    candidates = 400 * (~special).sum()
    assert abs(predicted / candidates - 0.15) < 0.005
    assert abs(masked / predicted - 0.8) < 0.02
    # 10% kept plus the random draws that hit the same id.
    assert abs(kept / predicted - 0.1) < 0.02


def test_mentions_are_masked_whole_and_forced_spans_always():
    rng = np.random.default_rng(1)
    ids = np.full(40, 7, dtype=np.int32)
    special = np.zeros(40, bool)
    spans = [(2, 6), (10, 13), (20, 24)]
    for _ in range(200):
        _, labels = mask_tokens(ids, special, spans, [(10, 13)], VOCAB, MASK, rng, probability=0.2)
        for start, end in spans:
            chosen = labels[start:end] != IGNORE
            assert chosen.all() or not chosen.any()
        assert (labels[10:13] == 7).all()
    out, _ = mask_tokens(ids, special, spans, [(10, 13)], VOCAB, MASK, rng)
    assert (out[10:13] == MASK).all()


def test_entity_masking_takes_at_least_one_and_never_unk():
    rng = np.random.default_rng(2)
    assert len(choose_masked_entities(np.array([5, 1, 1]), rng, 0.15)) == 1
    assert choose_masked_entities(np.array([5, 1, 1]), rng, 0.15).tolist() == [0]
    assert len(choose_masked_entities(np.array([1, 1]), rng, 0.15)) == 0
    assert len(choose_masked_entities(np.arange(3, 103), rng, 0.15)) == 15


class FakeKnowledge:
    def sample(self, entity, rng, lang=None):
        return None if entity == 4 else np.array([0, 50 + entity, 2], dtype=np.int32)


def collator(**overrides):
    values = dict(pad_token_id=1, mask_token_id=MASK, vocab_size=VOCAB, special_token_ids=(0, 1, 2, 3, MASK),
                  knowledge=FakeKnowledge(), entity_mask_probability=1.0)
    values.update(overrides)
    return Collator(**values)


def text(length, mentions):
    ids = np.concatenate([[0], np.arange(10, 10 + length - 2), [2]]).astype(np.int32)
    return {"input_ids": ids, "mentions": np.array(mentions, dtype=np.int32).reshape(-1, 3), "lang": "en"}


def test_batch_layout_follows_the_format():
    texts = [text(11, [(1, 3, 5), (4, 5, 4)]), text(5, [])]
    facts = [{"query_ids": np.array([0, 20, 21, 2], np.int32), "object": 6, "lang": "en"},
             {"query_ids": np.array([0, 22, 2], np.int32), "object": 4, "lang": "en"}]
    batch = collator()(texts, facts, np.random.default_rng(0))
    assert batch["input_ids"].shape == (2, 16) and batch["input_ids"][1, 5:].eq(1).all()
    assert batch["attention_mask"].sum(1).tolist() == [11, 5]
    assert batch["entity_ids"].tolist() == [[2, 2], [0, 0]]  # probability 1: both masked
    assert batch["entity_labels"].tolist() == [[5, 4], [IGNORE, IGNORE]]
    assert batch["entity_position_ids"].tolist() == [[[1, 2], [4, -1]], [[-1, -1], [-1, -1]]]
    assert batch["entity_attention_mask"].tolist() == [[1, 1], [0, 0]]
    # Entity 4 has no knowledge text: only entity 5's mention is a contrastive pair, and its tokens are masked.
    assert batch["mep_mention_positions"].tolist() == [[0, 1]] and batch["mep_entities"].tolist() == [5]
    assert batch["input_ids"][0, 1:3].tolist() == [MASK, MASK]
    assert batch["mep_knowledge_ids"][0, :3].tolist() == [0, 55, 2] and batch["mep_knowledge_ids"].shape[1] == 8
    assert batch["oe_objects"].tolist() == [6] and batch["oe_query_ids"][0, :4].tolist() == [0, 20, 21, 2]
    assert batch["oe_object_mask"].sum().item() == 3


def test_no_facts_and_no_mentions_still_give_well_formed_tensors():
    batch = collator()([text(6, [])], [], np.random.default_rng(0))
    assert batch["mep_knowledge_ids"].shape == (0, 8) and batch["oe_query_ids"].shape == (0, 8)
    assert batch["entity_ids"].shape == (1, 0) and batch["entity_position_ids"].shape == (1, 0, 1)


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
    assert batch["input_ids"].shape[1] % 8 == 0
    labels, ids = batch["mlm_labels"], batch["input_ids"]
    assert ((labels == IGNORE) | (labels >= 0)).all()
    assert (ids[batch["attention_mask"] == 0] == 1).all()
    for (row, position), entity in zip(batch["mep_mention_positions"].tolist(), batch["mep_entities"].tolist()):
        assert ids[row, position] == MASK and entity in batch["entity_labels"][row].tolist()
    masked_slots = batch["entity_ids"] == 2
    assert (batch["entity_labels"][masked_slots] > 1).all()
    assert (batch["entity_labels"][~masked_slots] == IGNORE).all()

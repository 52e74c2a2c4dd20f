"""The real scorers (``entity_scorer``, ``word_scorer``) through a real model, on constructed facts whose
answers are known (tests/probe/fact_factory.py): a model made to know the answer scores P@1 = 1, an
untrained one scores chance. Reading the wrong hidden state or adding the label's token scores up
the wrong way makes these fail."""

from collections import defaultdict

import numpy as np
import pytest
import torch

from lightning_kg.dataset.entity_vocab import MASK_ID, EntityVocab
from lightning_kg.dataset.tokenizer import load_tokenizer
from lightning_kg.model.config import EncoderConfig, ObjectiveSettings
from lightning_kg.model.pretraining import KnowledgePretrainingModel
from lightning_kg.probe.metrics import evaluate, summarise
from lightning_kg.probe.queries import build_queries, read_facts
from lightning_kg.probe.scoring import entity_prompt, entity_scorer, word_prompts, word_scorer
from tests.probe.fact_factory import FIRST_SUBJECT, LABELS, P2_OBJECTS, SUBJECTS, TEMPLATES, make_fact_dataset


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(tokenizer, queries of the training facts: 24 subjects x P1, P2 x en, fr; German skipped)."""
    data = make_fact_dataset(tmp_path_factory.mktemp("facts"))
    tokenizer = load_tokenizer(data / "tokenizer")
    facts = read_facts([str(data / "facts-train-000000.tar")])
    query_set = build_queries(facts, [], TEMPLATES, EntityVocab.load(data / "entity_vocab.jsonl").titles)
    assert len(query_set.queries) == 96 and sum(query_set.skipped.values()) == 48
    return tokenizer, query_set.queries


def tiny_model(tokenizer, seed: int = 0, **overrides) -> KnowledgePretrainingModel:
    torch.manual_seed(seed)
    config = EncoderConfig(vocab_size=len(tokenizer), entity_vocab_size=FIRST_SUBJECT + SUBJECTS, dropout=0.0, attention_dropout=0.0, **overrides)
    return KnowledgePretrainingModel(config, ObjectiveSettings(mep_contrastive_weight=0.0, oe_weight=0.0)).eval()


def p1(queries, scorer) -> float:
    return float(np.mean([result.ranks[kind] == 0 for result in evaluate(queries, {"x": scorer}) for kind in result.ranks]))


def by_answer(queries) -> dict[int, list]:
    groups = defaultdict(list)
    for query in queries:
        groups[query.fact.object].append(query)
    return groups


def test_entity_scorer_finds_the_entity_whose_bias_is_raised(world):
    tokenizer, queries = world
    model = tiny_model(tokenizer)
    for obj, asked in by_answer(queries).items():
        with torch.no_grad():
            model.entity_head.bias.zero_()
            model.entity_head.bias[obj] = 10.0
            model.entity_head.bias[MASK_ID] = 50.0  # not a candidate: must not be ranked
        assert p1(asked, entity_scorer(model, tokenizer)) == 1.0, obj
        others = [q for q in queries if q.fact.object != obj and obj in q.candidates]
        assert p1(others, entity_scorer(model, tokenizer)) == 0.0, obj


def test_word_scorer_ranks_by_the_mean_log_probability_of_the_label_tokens(world):
    """The MLM head's output bias is raised on the answer label's tokens. For the three-token answer a
    one-token label is raised a little less: its single token scores below each of the answer's three
    (so the mean prefers the answer) but above their sum (so a sum would prefer it)."""
    tokenizer, queries = world
    model = tiny_model(tokenizer)
    asked = [q for q in queries if q.fact.relation == "P2"]
    raised = [8.0, 9.0, 7.0]  # unequal, so that the mean differs from the first, the last, the max and the min
    three, one = P2_OBJECTS[2], P2_OBJECTS[0]
    assert [len(LABELS[e]["en"].split()) for e in (one, three)] == [1, 3]

    def tokens(entity: int) -> list[int]:
        return tokenizer(LABELS[entity]["en"], add_special_tokens=False)["input_ids"]

    groups = by_answer(asked)
    for obj in (one, P2_OBJECTS[1], three):
        with torch.no_grad():
            model.mlm_head.bias.zero_()
            model.mlm_head.bias[tokens(obj)] = torch.tensor(raised[: len(tokens(obj))])
            if obj == three:
                model.mlm_head.bias[tokens(one)] = 6.5
        assert p1(groups[obj], word_scorer(model, tokenizer)) == 1.0, obj
    # The scores themselves: an untrained model's own logits are small, so they are nearly the bias's.
    scores = word_scorer(model, tokenizer)(groups[three][:1])[0]
    log_probabilities = torch.log_softmax(model.mlm_head.bias.detach(), 0)
    expected = [float(log_probabilities[tokens(e)].mean()) for e in P2_OBJECTS]
    assert scores == pytest.approx(expected, abs=0.3)
    assert expected[0] > 3 * expected[2]  # the sum of the answer's three would lose to the one-token label


def memorise(model: KnowledgePretrainingModel, tokenizer, queries, steps: int = 120) -> None:
    """Train ``model`` with its own training forward (mlm and mep_vocab losses) on each query's prompts:
    the entity [MASK] on ``[Y]`` labelled with the object, the object's label tokens masked and labelled
    with themselves. Every other state is taught something else, so that reading the wrong one shows:
    the subject's entity token predicts the subject, and every other word its own token."""
    rows = []
    for query in queries:
        ids, subject, mask = entity_prompt(tokenizer, query.template, query.fact.subject_label)
        rows.append((ids, list(ids), [(query.fact.subject, subject, query.fact.subject), (MASK_ID, [mask], query.fact.object)]))
        [(ids, subject, slot)] = word_prompts(tokenizer, query.template, query.fact.subject_label, [query.fact.object_label])
        assert tokenizer.decode([ids[i] for i in slot]) == query.fact.object_label
        masked = [tokenizer.mask_token_id if i in slot else token for i, token in enumerate(ids)]
        rows.append((masked, list(ids), [(query.fact.subject, subject, query.fact.subject)]))
    length, width = max(len(ids) for ids, _, _ in rows), max(len(p) for *_, entities in rows for _, p, _ in entities)
    batch = {"input_ids": torch.full((len(rows), length), tokenizer.pad_token_id), "mlm_labels": torch.full((len(rows), length), -100),
             "entity_ids": torch.zeros(len(rows), 2, dtype=torch.long), "entity_position_ids": torch.full((len(rows), 2, width), -1),
             "entity_attention_mask": torch.zeros(len(rows), 2, dtype=torch.long), "entity_labels": torch.full((len(rows), 2), -100)}
    for r, (ids, labels, entities) in enumerate(rows):
        batch["input_ids"][r, : len(ids)] = torch.tensor(ids)
        batch["mlm_labels"][r, : len(labels)] = torch.tensor(labels)
        for e, (entity, positions, label) in enumerate(entities):
            batch["entity_ids"][r, e], batch["entity_attention_mask"][r, e], batch["entity_labels"][r, e] = entity, 1, label
            batch["entity_position_ids"][r, e, : len(positions)] = torch.tensor(positions)
    batch["attention_mask"] = batch["input_ids"].ne(tokenizer.pad_token_id).long()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(batch).loss.backward()
        optimizer.step()
    model.eval()


@pytest.fixture
def one_thread():
    # A tiny model trains ~20x faster on one thread than on two contended ones.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_model_trained_on_the_facts_scores_p1_of_one_with_both_prompts(world, one_thread):
    """The answer depends on the subject (four objects, a quarter of the subjects each, labels of two
    tokens whose second is shared), so only the states at the object's slot, having read the subject,
    can find it: the subject's entity token (taught to predict the subject) or a neighbouring word's
    state (taught to predict its own word) cannot."""
    tokenizer, queries = world
    asked = [q for q in queries if q.fact.relation == "P1"]
    model = tiny_model(tokenizer, num_layers=1)
    before = summarise(evaluate(asked, {"entity": entity_scorer(model, tokenizer), "word": word_scorer(model, tokenizer)}), {}, {})
    memorise(model, tokenizer, asked)
    after = summarise(evaluate(asked, {"entity": entity_scorer(model, tokenizer), "word": word_scorer(model, tokenizer)}), {}, {})
    for row in after:
        assert row["entity_p1"] == row["word_p1"] == 1.0, row
    assert before[-1]["entity_p1"] < 0.5 and before[-1]["word_p1"] < 0.5, before[-1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_random_model_scores_near_chance(world, seed):
    """Every object answers an equal share of its relation's facts, so a model that knows nothing is at
    chance on average; the real scorers must not leak the answer. Weights drawn from N(0, 1), not the
    small initialisation, so that the model's top-1 changes with the subject (it is not one guess)."""
    tokenizer, queries = world
    model = tiny_model(tokenizer, seed=seed)
    with torch.no_grad():
        for weight in (p for p in model.parameters() if p.dim() > 1):
            weight.normal_()
    results = evaluate(queries, {"entity": entity_scorer(model, tokenizer), "word": word_scorer(model, tokenizer)})
    mean = summarise(results, {}, {})[-1]
    assert mean["queries"] == 96 and mean["chance_p1"] == pytest.approx((1 / 4 + 1 / 3) / 2)
    for kind in ("entity", "word"):
        assert len({result.top[kind] for result in results if result.fact.relation == "P1"}) > 1
        assert abs(mean[f"{kind}_p1"] - mean["chance_p1"]) < 0.12, (kind, mean)


def test_a_diverged_model_scores_zero_not_one(world):
    """NaN scores everywhere tie: no candidate beats another, so none is ranked first."""
    tokenizer, queries = world
    model = tiny_model(tokenizer)
    with torch.no_grad():
        model.entity_head.bias.fill_(float("nan"))
        model.mlm_head.bias.fill_(float("nan"))
    mean = summarise(evaluate(queries, {"entity": entity_scorer(model, tokenizer), "word": word_scorer(model, tokenizer)}), {}, {})[-1]
    assert mean["entity_p1"] == mean["word_p1"] == 0.0
    assert mean["entity_consistency"] == mean["word_consistency"] == 0.0

"""Cloze probing: metrics on cases whose answer is known, skipping that is reported, prompts on the
demo tokenizer, and the ``probe`` verb end to end on the shipped demo shards with an untrained tiny model."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_kg.cli import main
from lightning_kg.dataset.entity_vocab import EntityVocab
from lightning_kg.dataset.tokenizer import load_tokenizer
from lightning_kg.probe.metrics import COLUMNS, LabelVectors, alignment_accuracy, answer_rank, evaluate, summarise
from lightning_kg.probe.queries import NO_TEMPLATE, ONE_CANDIDATE, Fact, build_queries, read_facts
from lightning_kg.probe.report import format_table
from lightning_kg.probe.scoring import entity_prompt, word_prompts
from lightning_kg.probe.templates import fill, load_templates
from tests.probe.checkpoint_factory import write_checkpoint
from tests.probe.fact_factory import TEMPLATES as FACT_TEMPLATES
from tests.probe.fact_factory import make_fact_dataset

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "shards" / "demo"
TEMPLATES = ROOT / "conf" / "probe" / "templates.yaml"


def demo_facts(split: str) -> list[Fact]:
    manifest = json.loads((DEMO / "manifest.json").read_text())
    return read_facts(str(DEMO / shard["name"]) for shard in manifest["shards"][split] if shard["samples"])


@pytest.fixture(scope="module")
def demo_queries():
    """The demo's training facts as cloze queries (2546 asked, 6 relations, 14 languages)."""
    probed = demo_facts("facts-train")
    known = demo_facts("facts-heldout") + demo_facts("facts-val")
    titles = EntityVocab.load(DEMO / "entity_vocab.jsonl").titles
    return build_queries(probed, known, load_templates(TEMPLATES), titles)


def knowing(queries):
    """A scorer made to rank the right entity first."""
    return [np.where(np.arange(len(q.candidates)) == q.answer, 1.0, 0.0) for q in queries]


def test_a_scorer_that_knows_the_answer_gets_p1_of_one_everywhere(demo_queries):
    rows = summarise(evaluate(demo_queries.queries, {"entity": knowing, "word": knowing}), demo_queries.skipped, {})
    assert {row["key"] for row in rows if row["scope"] == "language"} == {"bg", "de", "en", "es", "fr", "it", "ja", "nl",
                                                                           "pl", "pt", "ru", "sv", "tr", "zh"}
    for row in rows:
        if row["queries"]:
            for kind in ("entity", "word"):
                assert row[f"{kind}_p1"] == row[f"{kind}_p10"] == row[f"{kind}_mrr"] == 1.0, row
                assert row[f"{kind}_consistency"] == 1.0


def test_a_random_scorer_scores_near_chance(demo_queries):
    rng = np.random.default_rng(0)
    results = evaluate(demo_queries.queries, {"word": lambda queries: [rng.random(len(q.candidates)) for q in queries]})
    mean = next(row for row in summarise(results, demo_queries.skipped, {}) if row["scope"] == "all")
    assert mean["queries"] == len(demo_queries.queries) > 400
    assert abs(mean["word_p1"] - mean["chance_p1"]) < 0.06, mean
    assert mean["entity_p1"] is None  # not scored: reported as not available, not as 0


def test_ties_count_against_the_model():
    assert answer_rank(np.array([0.5, 0.5, 0.5]), 1) == 2
    assert answer_rank(np.array([0.1, 0.9, 0.5]), 1) == 0
    assert answer_rank(np.array([0.1, 0.4, 0.5]), 1) == 1


def test_facts_without_template_or_with_one_candidate_are_skipped_and_counted(demo_queries):
    probed = demo_facts("facts-heldout")
    titles = EntityVocab.load(DEMO / "entity_vocab.jsonl").titles
    only_english = {"P361": {"en": "[X] is part of [Y]."}, "P282": {"en": "[X] is written in the [Y] script."}}
    query_set = build_queries(probed, demo_facts("facts-train"), only_english, titles)
    assert [q.fact.lang for q in query_set.queries] == ["en"] * 7  # P361 and P282 in English
    assert query_set.skipped[("de", "P361", NO_TEMPLATE)] == 2
    # The demo's P282 facts have several objects now; asked with nothing else known, those whose object
    # is Latin have one candidate.
    latin = [f for f in probed if f.relation == "P282" and f.lang == "en" and f.object_label == "Latin"]
    assert build_queries(latin, [], only_english, titles).skipped[("en", "P282", ONE_CANDIDATE)] == 2
    assert sum(query_set.skipped.values()) + len(query_set.queries) == len(probed)
    rows = summarise(evaluate(query_set.queries, {"word": knowing}), query_set.skipped, {})
    german = next(row for row in rows if row["key"] == "de")
    assert german["queries"] == 0 and german["skipped"] == 16 and german["word_p1"] is None
    table = format_table(rows, query_set.skipped, "test")
    assert "P361: no template (53 facts: bg 5, de 2," in table
    assert "P282: no template (22 facts" in table


def test_template_file_errors_name_relation_and_language(tmp_path):
    bad = tmp_path / "templates.yaml"
    bad.write_text('P17:\n  en: "[X] is a city."\n')
    with pytest.raises(ValueError, match=r"P17\.en"):
        load_templates(bad)
    assert fill("[Y] ist [X].", "Ostafrika", "Afrika").text == "Afrika ist Ostafrika."


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_prompts_put_the_label_and_the_mask_where_the_template_says(lang):
    tokenizer = load_tokenizer(DEMO / "tokenizer")
    template = load_templates(TEMPLATES)["P361"][lang]
    subject, obj = {"en": ("Eastern Africa", "Africa"), "ja": ("東アフリカ", "アフリカ")}[lang]
    [(ids, subject_positions, slot)] = word_prompts(tokenizer, template, subject, [obj])
    assert obj in tokenizer.decode([ids[i] for i in slot])
    assert subject in tokenizer.decode([ids[i] for i in subject_positions])
    ids, subject_positions, mask = entity_prompt(tokenizer, template, subject)
    assert ids.count(tokenizer.mask_token_id) == 1 and ids[mask] == tokenizer.mask_token_id
    pieces = tokenizer.convert_ids_to_tokens(ids)
    assert pieces[mask - 1] != "▁" and pieces[mask + 1] != "▁", pieces


def test_every_candidate_is_asked_in_the_entity_prompts_context():
    """Tokenising "Caribbean is part of Africa." whole gives "▁Africa." (the full stop inside the label's
    token) but "▁Asia", "." for Asia: candidates would be scored in different contexts. The label's
    tokens end where the label ends, and what follows is the entity prompt's, for every candidate."""
    tokenizer = load_tokenizer(DEMO / "tokenizer")
    template = load_templates(TEMPLATES)["P361"]["en"]
    entity_ids, _, mask = entity_prompt(tokenizer, template, "Caribbean")
    labels = ["Africa", "Asia", "Northern America"]
    prompts = word_prompts(tokenizer, template, "Caribbean", labels)
    for label, (ids, subject_positions, slot) in zip(labels, prompts):
        pieces = tokenizer.convert_ids_to_tokens(ids)
        assert tokenizer.decode([ids[i] for i in slot]).strip() == label
        assert ids[slot[-1] + 1 :] == entity_ids[mask + 1 :] and pieces[slot[-1] + 1] == "."
        assert ids[: slot[0]] == entity_ids[:mask]
        assert tokenizer.decode([ids[i] for i in subject_positions]).strip() == "Caribbean"
    assert tokenizer.convert_ids_to_tokens([prompts[0][0][i] for i in prompts[0][2]]) == ["▁Africa"]


def test_a_subject_after_the_object_is_found_in_the_word_prompt(tmp_path):
    """French template of the constructed facts: "w4 [Y] w5 [X] w6"; the subject's positions move with
    the number of masks the label needs."""
    tokenizer = load_tokenizer(make_fact_dataset(tmp_path) / "tokenizer")
    template = FACT_TEMPLATES["P1"]["fr"]
    for label in ("w54", "w55 w56", "w57 w58 w59"):
        [(ids, subject_positions, slot)] = word_prompts(tokenizer, template, "w10 w30", [label])
        assert tokenizer.decode([ids[i] for i in slot]) == label
        assert tokenizer.decode([ids[i] for i in subject_positions]) == "w10 w30"
        assert tokenizer.decode(ids) == f"<s> w4 {label} w5 w10 w30 w6 </s>"


def test_alignment_finds_an_entity_whose_labels_match_and_misses_one_that_does_not():
    vectors = torch.nn.functional.normalize(torch.eye(4)[:3], dim=-1)
    swapped = vectors[[0, 2, 1]]
    accuracy = alignment_accuracy({"en": LabelVectors([5, 6, 7], ["a", "b", "c"], vectors),
                                   "de": LabelVectors([5, 6, 7], ["a", "x", "y"], swapped),
                                   "fr": LabelVectors([5, 6], ["p", "q"], vectors[:2])})
    assert accuracy["en", "de"].acc1 == pytest.approx(1 / 3)
    assert accuracy["en", "fr"].acc1 == 1.0  # entity 7 has no French label: not asked
    assert accuracy["fr", "en"].acc1 == 1.0


@pytest.mark.slow  # the probe verb on the demo's held-out facts: 296 queries, both scorers, the chart
@pytest.mark.parametrize("weights", [{}, {"mep_vocab_weight": 0.0, "mep_contrastive_weight": 0.0, "oe_weight": 0.0}],
                         ids=["all-objectives", "mlm-only"])
def test_the_probe_verb_writes_table_csv_and_chart_into_the_run_directory(tmp_path, capsys, weights):
    ckpt = write_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", **weights)
    main(["probe", "--ckpt_path", str(ckpt), "--templates", str(TEMPLATES), "--alignment_entities", "40"])
    out = tmp_path / "run" / "probe"
    rows = list(csv.DictReader(open(out / "probe.csv", encoding="utf-8")))
    assert tuple(rows[0]) == COLUMNS
    assert [r["key"] for r in rows if r["scope"] != "language"] == ["P17", "P30", "P37", "P38", "P282", "P361", "mean"]
    mean = rows[-1]
    assert int(mean["queries"]) == 296 and int(mean["skipped"]) == 0  # 148 facts, each in 2 languages
    assert 0.0 <= float(mean["word_p1"]) <= 1.0 and 0.0 <= float(mean["alignment_acc1"]) <= 1.0
    assert (mean["entity_p1"] == "") == ("mep_vocab_weight" in weights)  # no mep_vocab head: not available
    assert (out / "probe.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "P38" in printed and "probe.csv" in printed

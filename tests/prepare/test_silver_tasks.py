"""The silver transfer tasks: types from P31/P279, sentences and anchors, the entity and language
split, the no_relation cap, and the files a prepare run writes (read back with dataset.task_files)."""

import bz2
import json
import logging

from lightning_kg.dataset.task_examples import NO_RELATION, RelationExample, SpanExample, TypingExample
from lightning_kg.dataset.task_files import read_examples
from lightning_kg.prepare.entity_types import entity_type, type_entities
from lightning_kg.prepare.pipeline import prepare
from lightning_kg.prepare.silver_tasks import (
    AnchoredSentence,
    anchored_sentences,
    build_tasks,
    is_heldout,
    split_of,
    with_own_mentions,
)
from tests.factories import ENTITIES, item, wikidata_dump, write_dumps
from tests.factories import config as prepare_config

# Tokyo is an instance of "big city", a subclass of "city", a subclass of "human settlement": only
# the last is in the table, two P279 levels above Tokyo's class. Japan's class maps directly.
CLASSES = [item("Q1549591", {"en": "big city"}, claims=[("P279", "Q515")]),
           item("Q515", {"en": "city"}, claims=[("P279", "Q486972")]),
           item("Q486972", {"en": "human settlement"}),
           item("Q6256", {"en": "country"}),
           item("Q5107", {"en": "continent"})]
TABLE = {"Q486972": "LOC", "Q6256": "GPE", "Q5107": "LOC"}
INSTANCE_OF = {"Q17": "Q6256", "Q1490": "Q1549591", "Q48": "Q5107"}


def typed_dumps(source):
    """The factories' dumps, with P31 claims on the items and the class items after them."""
    write_dumps(source)
    entities = []
    for entity in ENTITIES:
        entity = json.loads(json.dumps(entity))
        if entity["id"] in INSTANCE_OF:
            entity["claims"]["P31"] = item("x", {}, claims=[("P31", INSTANCE_OF[entity["id"]])])["claims"]["P31"]
        entities.append(entity)
    (source / "wikidata.json.bz2").write_bytes(bz2.compress(wikidata_dump(entities + CLASSES).encode("utf-8")))
    return source


def test_a_class_two_levels_up_types_the_entity(tmp_path):
    dumps = typed_dumps(tmp_path / "dumps")
    facts = {e: [("P31", c)] for e, c in INSTANCE_OF.items()} | {"Q99": [("P17", "Q17")]}
    paths = [str(dumps / "wikidata.json.bz2")]
    assert type_entities(["Q17", "Q1490", "Q48", "Q99"], facts, paths, TABLE, depth=2) == {"Q17": "GPE", "Q1490": "LOC", "Q48": "LOC"}
    assert type_entities(["Q1490"], facts, paths, TABLE, depth=1) == {}  # "human settlement" is two levels up


def test_the_nearest_class_decides_and_a_tie_types_nothing():
    parents = {"A": ["B"], "B": ["C"]}
    assert entity_type(["A"], parents, {"B": "ORG", "C": "LOC"}, depth=3) == "ORG"
    assert entity_type(["A", "D"], parents, {"A": "PER", "D": "ORG"}, depth=3) is None
    assert entity_type(["A"], parents, {"C": "LOC"}, depth=0) is None


def test_sentences_cut_outside_anchors_and_words_split_at_anchor_edges():
    text = "Tokyo is in Japan. It is big.x See St. Kitts!"
    spans = [(0, 5, "Q1490"), (12, 17, "Q17"), (35, 44, "Q763")]  # "St. Kitts" holds a sentence end: no cut there
    found = list(anchored_sentences(text, spans, "en", "enwiki:Tokyo"))
    assert [s.words for s in found] == [("Tokyo", "is", "in", "Japan", "."), ("It", "is", "big", ".", "x", "See", "St", ".", "Kitts", "!")]
    assert found[0].anchors == ((0, 1, "Q1490"), (3, 4, "Q17")) and found[1].anchors == ((6, 9, "Q763"),)
    [chinese] = anchored_sentences("东京在日本。", [(0, 2, "Q1490")], "zh", "zhwiki:东京")
    assert chinese.words == ("东", "京", "在", "日", "本", "。") and chinese.anchors == ((0, 2, "Q1490"),)


def test_an_article_s_own_title_is_an_anchor_of_its_entity():
    [sentence] = anchored_sentences("Georgia is in the Caucasus; georgia borders Russia.", [(18, 26, "Q1"), (44, 50, "Q159")], "en", "")
    own = with_own_mentions(sentence, "Georgia (country)", "Q230")
    assert own.words[:2] == ("Georgia", "is")
    assert own.anchors == ((0, 1, "Q230"), (4, 5, "Q1"), (6, 7, "Q230"), (8, 9, "Q159"))  # case aside; the title's bracket left out
    assert with_own_mentions(sentence, "Caucasus", "Q2") == sentence  # already an anchor: kept as linked


def entity_sentences(count: int, language: str) -> list[AnchoredSentence]:
    """Sentences "E<i> is in E<i+1> ." with both anchored; E<i> is a part of (P361) E<i+1>
    where i is even, so half the pairs are related."""
    return [AnchoredSentence((f"E{i}", "is", "in", f"E{i + 1}", "."), ((0, 1, f"Q{i}"), (3, 4, f"Q{i + 1}")), language, f"s{i}")
            for i in range(count)]


def test_splits_are_disjoint_by_entity_and_language(caplog):
    entities = [f"Q{i}" for i in range(201)]
    types = {e: ("PER" if int(e[1:]) % 2 else "LOC") for e in entities}
    relations = {(f"Q{i}", f"Q{i + 1}"): "P361" for i in range(0, 200, 2)}
    sentences = entity_sentences(200, "en") + entity_sentences(200, "de") + entity_sentences(200, "fr")
    with caplog.at_level(logging.INFO, logger="lightning_kg.prepare"):
        tasks = build_tasks(sentences, types, relations, "en", heldout_fraction=0.5, no_relation_ratio=10.0)
    assert set(tasks["ner"]) == {("en", "train"), ("en", "dev"), ("de", "test"), ("fr", "test")}
    def entities_of(found, split):
        return {e for (_, s), examples in found.items() if s == split for example in examples for e in mentioned(example)}

    for task, found in tasks.items():
        train, dev, test = (entities_of(found, split) for split in ("train", "dev", "test"))
        assert train and dev and test and not train & (dev | test), task
        assert all(not is_heldout(e, 0.5) for e in train) and all(is_heldout(e, 0.5) for e in dev | test)
    # A sentence's two entities are split alike about half the time: the rest are dropped, and said so.
    kept = sum(len(v) for v in tasks["ner"].values())
    assert 0.3 * 600 < kept < 0.7 * 600
    assert f"transfer task ner: kept {len(tasks['ner'][('en', 'train')])} train, {len(tasks['ner'][('en', 'dev')])} dev (en)" in caplog.text
    assert f"dropped {600 - kept} crossing the entity split" in caplog.text
    assert split_of("en", frozenset(["Q1"]), "en", 0.0) == "train" and split_of("de", frozenset(["Q1"]), "en", 0.0) is None


def mentioned(example):
    words = example.words
    if isinstance(example, SpanExample):
        spans = [(s, e) for s, e, _ in example.spans]
    elif isinstance(example, RelationExample):
        spans = [example.head, example.tail]
    else:
        spans = [example.span]
    return {f"Q{words[s][1:]}" for s, _ in spans}


def test_relations_are_labelled_by_facts_and_no_relation_is_capped():
    relations = {(f"Q{i}", f"Q{i + 1}"): "P361" for i in range(0, 100, 4)}  # a quarter of the pairs related
    sentences = entity_sentences(100, "en")
    types = {f"Q{i}": "LOC" for i in range(101)}
    for ratio in (0.5, 1.0, 10.0):
        tasks = build_tasks(sentences, types, relations, "en", heldout_fraction=0.0, no_relation_ratio=ratio)
        [examples] = tasks["relation"].values()
        related = [e for e in examples if e.label != NO_RELATION]
        negative = len(examples) - len(related)
        assert len(related) == 25 and all(e.label == "P361" and (e.head, e.tail) == ((0, 1), (3, 4)) for e in related)
        assert negative == min(75, int(ratio * 25))  # 12, 25, then all 75 pairs without a fact
    # A fact from the second anchor to the first gives that order; none either way, one no_relation.
    [sentence] = entity_sentences(1, "en")
    tasks = build_tasks([sentence], types, {("Q1", "Q0"): "P17"}, "en", 0.0, 1.0)
    assert [(e.head, e.tail, e.label) for e in tasks["relation"][("en", "train")]] == [((3, 4), (0, 1), "P17")]
    # Untyped entities (no Wikidata class, so no facts read) pair up with nothing; nothing is typed either.
    assert build_tasks(sentences, {}, relations, "en", 0.0, 1.0) == {"typing": {}, "ner": {}, "relation": {}}


def test_prepare_writes_the_tasks_that_read_back(tmp_path, caplog):
    dumps = typed_dumps(tmp_path / "dumps")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="lightning_kg.prepare"):
        prepare(prepare_config(dumps, out, transfer_tasks=True, type_classes=TABLE, type_depth=2, transfer_heldout_fraction=0.0,
                               no_relation_ratio=1.0))
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    # Held-out share 0: every English example is train, no other language has a test split.
    assert manifest["tasks"]["typing"] == {"en.train.relx": 11} and set(manifest["tasks"]["relation"]) == {"en.train.relx"}
    assert sorted(p.name for p in (out / "tasks").rglob("*") if p.is_file()) == ["en.train.conll", "en.train.relx", "en.train.relx"]
    typing = read_examples(out / "tasks/typing/en.train.relx", "typing")
    # "[[Nippon]]" redirects to Japan, "[[tokyo|capital]]" links Tokyo: the entity's type, whatever the anchor text.
    assert {(" ".join(e.words[e.span[0]:e.span[1]]), e.label) for e in typing} == {
        ("Asia", "LOC"), ("Tokyo", "LOC"), ("Japan", "GPE"), ("Nippon", "GPE"), ("capital", "LOC")}
    assert all(isinstance(e, TypingExample) and e.language == "en" for e in typing)
    relation = read_examples(out / "tasks/relation/en.train.relx", "relation")
    labelled = {(" ".join(e.words[slice(*e.head)]), " ".join(e.words[slice(*e.tail)]), e.label) for e in relation}
    # "Japan is ... in [[Asia]]": the article's own title pairs with its anchors. Mongolia (no P31) pairs with nothing.
    assert labelled == {("Tokyo", "Japan", "P17"), ("Japan", "Tokyo", "P36"), ("Japan", "Asia", "P30")} and len(relation) == 4
    ner = read_examples(out / "tasks/ner/en.train.conll", "ner")
    # Sentences whose anchors are all typed ("Mongolia" has no P31: its sentence is left out).
    assert len(ner) == 7 and ner[0].words == ("Japan", "is", "an", "island", "country", "in", "Asia", ".")
    assert ner[0].spans == ((0, 1, "GPE"), (6, 7, "LOC")) and ner[4].spans == ((0, 1, "LOC"), (5, 6, "GPE"))
    assert "transfer task typing: kept 11 train, 0 dev (en), 0 test (0 languages)" in caplog.text
    # With every entity held out, English is dev and Bulgarian test.
    prepare(prepare_config(dumps, out, transfer_tasks=True, type_classes=TABLE, type_depth=2, transfer_heldout_fraction=1.0))
    assert sorted(p.name for p in (out / "tasks/typing").iterdir()) == ["bg.test.relx", "en.dev.relx"]
    assert {e.language for e in read_examples(out / "tasks/typing/bg.test.relx", "typing")} == {"bg"}
    assert not (out / "tasks/typing/en.train.relx").exists()  # the earlier run's file is removed

"""Fact shards to cloze queries: labels that are missing or blank, on constructed facts."""

import json

import pytest

from lightning_kg.probe.queries import ONE_CANDIDATE, Fact, build_queries, read_facts
from lightning_kg.recipes.synthetic_shards import write_shard


def test_a_candidate_without_a_label_in_a_language_is_left_out_there_only():
    """Three objects of P30 in English; in French the second has only its entity title and the third a
    blank one, so French queries rank two candidates and English ones three."""
    english = [Fact(10 + i, "P30", obj, "en", f"S{i}", label) for i, (obj, label) in enumerate([(3, "Africa"), (4, "Asia"), (5, "Europe")])]
    french = [Fact(10, "P30", 3, "fr", "S0", "Afrique")]
    titles = [{}, {}, {}, {}, {"fr": "Asie"}, {"fr": "  "}]
    templates = {"P30": {"en": "[X] is in [Y].", "fr": "[X] : [Y]."}}
    query_set = build_queries(english + french, [], templates, titles)
    by_language = {query.fact.lang: query for query in query_set.queries}
    assert by_language["en"].candidate_labels == ("Africa", "Asia", "Europe")
    assert by_language["fr"].candidates == (3, 4) and by_language["fr"].candidate_labels == ("Afrique", "Asie")
    assert by_language["fr"].answer == 0

    alone = build_queries(french, [], templates, [{}, {}, {}, {}, {}, {}])
    assert alone.queries == [] and alone.skipped == {("fr", "P30", ONE_CANDIDATE): 1}


@pytest.mark.parametrize("field", ["subject_label", "object_label"])
def test_a_fact_with_a_blank_label_is_an_error_naming_its_shard_key_and_field(tmp_path, field):
    meta = {"query_ids": [0, 2], "lang": "en", "subject": 10, "relation": "P30", "object": 3,
            "subject_label": "Kenya", "relation_label": "continent", "object_label": "Africa"}
    meta[field] = " "
    shard = tmp_path / "facts-heldout-000000.tar"
    write_shard(shard, [{"__key__": "10-P30-3-en", "json": json.dumps(meta).encode()}])
    with pytest.raises(ValueError, match=rf"facts-heldout-000000.tar: sample 10-P30-3-en: {field} is ' '; a fact sample's labels are non-empty"):
        read_facts([str(shard)])

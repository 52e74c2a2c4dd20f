"""The merge's memory follows the vocabulary: the first Wikidata pass keeps the properties and the
sitelinks of the items the wikis link to, the second the texts and facts of the vocabulary's items,
the third the labels of the objects of those facts."""

import bz2

from lightning_kg.prepare.knowledge_base import KnowledgeBase
from tests.factories import ENTITIES, item, wikidata_dump

SITES = {"enwiki": "en", "bgwiki": "bg"}
# Q999: linked from no wiki, object of nothing kept; Q2000: not linked, but the object of a Japan fact.
EXTRA = [item("Q999", {"en": "Unlinked"}, [("enwiki", "Unlinked")], claims=[("P36", "Q17")]),
         item("Q2000", {"en": "Sea of Japan", "bg": "Японско море"}, [("enwiki", "Sea of Japan")])]


def write_dump(tmp_path):
    entities = list(ENTITIES)
    entities[0] = item("Q17", {"en": "Japan", "bg": "Япония"}, [("enwiki", "Japan"), ("bgwiki", "Япония")],
                       {"en": "island country in East Asia"}, [("P36", "Q1490"), ("P30", "Q48"), ("P206", "Q2000")])
    path = tmp_path / "wikidata.json.bz2"
    path.write_bytes(bz2.compress(wikidata_dump([*EXTRA[:1], *entities, EXTRA[1]]).encode("utf-8")))
    return str(path)


def test_passes_keep_the_linked_sitelinks_then_the_vocabulary_then_its_objects_labels(tmp_path):
    path, bad = write_dump(tmp_path), []
    linked = {("enwiki", "Japan"), ("enwiki", "Tokyo"), ("bgwiki", "Токио")}
    kb = KnowledgeBase.from_dumps([path], {"en", "bg"}, SITES, on_error=bad.append, linked=linked)
    assert kb.decoded == {"P36", "P30", "P17"} and set(kb.labels) == {"P36", "P30", "P17"} and not kb.facts
    assert set(kb.titles) == {"Q17", "Q1490"} and kb.sitelinks[("bgwiki", "Токио")] == "Q1490"  # the vocabulary is counted on these
    assert [record.location for record in bad] == ["line 4"]  # the broken line is reported by the first pass
    kb.add_items([path], {"Q17"}, {"en", "bg"})
    assert set(kb.facts) == {"Q17"} and kb.descriptions["Q17"] == {"en": "island country in East Asia"}
    missing = kb.keep_only({"Q17"})
    assert missing == {"Q1490", "Q48", "Q2000"}
    kb.add_labels([path], missing, {"en", "bg"})
    assert kb.labels["Q2000"] == {"en": "Sea of Japan", "bg": "Японско море"} and kb.labels["Q48"] == {"en": "Asia", "bg": "Азия"}
    assert "Q2000" not in kb.descriptions and "Q999" not in kb.labels and "Q1490" not in kb.facts
    assert [record.location for record in bad] == ["line 4"]  # the later passes report nothing again


def test_without_linked_every_entity_is_kept(tmp_path):
    path = write_dump(tmp_path)
    kb = KnowledgeBase.from_dumps([path], {"en", "bg"}, SITES, on_error=lambda record: None)
    assert {"Q999", "Q2000", "Q48"} <= set(kb.labels) and "Q999" in kb.facts

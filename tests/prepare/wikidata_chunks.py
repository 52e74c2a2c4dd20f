"""A Wikidata dump long enough for several chunks, and the sites and links that select from it:
shared by the chunk pool's and the chunk journal's tests."""

from lightning_kg.recipes.dump_files import write_dump
from tests.factories import ENTITIES, item, wikidata_dump

SITES = {"enwiki": "en", "bgwiki": "bg"}
LINKED = {("enwiki", "Japan"), ("bgwiki", "Токио"), ("enwiki", "Item 7")}


def many_entities(count: int) -> list[dict]:
    """ENTITIES and ``count`` more items (a few with sitelinks that are not as Wikidata writes them),
    enough lines for several chunks."""
    extra = [item(f"Q{1000 + n}", {"en": f"Item {n}"}, [("enwiki", f"Item {n}")], claims=[("P17", "Q17")]) for n in range(count)]
    extra[3]["sitelinks"] = {"enwiki": 5}
    extra[5]["sitelinks"] = [1]
    return [*ENTITIES, *extra]


def write_gz(path, entities, broken_line=True):
    return write_dump(path, wikidata_dump(entities, broken_line))

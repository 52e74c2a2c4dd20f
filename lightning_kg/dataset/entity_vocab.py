"""The multilingual entity vocabulary (mLUKE): one index per entity, merged across languages.

An entity's key is its Wikidata Q-id when a Wikidata dump resolved it, else ``lang:Title``.
Saved as JSON lines (``id``, ``entity``, ``count``, per-language ``titles``) so a person can read
it and training, probing and export load the same file.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field

from lightning_kg.dataset.files import atomic_file

PAD, UNK, MASK = "[PAD]", "[UNK]", "[MASK]"
PAD_ID, UNK_ID, MASK_ID = 0, 1, 2
RESERVED = (PAD, UNK, MASK)
"""The first three entries of every entity vocabulary, at ids 0, 1, 2."""


@dataclass
class EntityVocab:
    entities: list[str]
    counts: list[int]
    titles: list[dict[str, str]]
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if tuple(self.entities[:len(RESERVED)]) != RESERVED:
            raise ValueError(f"entity vocabulary must start with {PAD}, {UNK}, {MASK}; got {self.entities[:3]}")
        self._index = {entity: i for i, entity in enumerate(self.entities)}

    @classmethod
    def build(
        cls,
        counts: Counter,
        titles: dict[str, dict[str, str]],
        min_count: int = 1,
        max_size: int | None = None,
    ) -> EntityVocab:
        """Keep entities mentioned at least ``min_count`` times, most frequent first.

        Ties are broken by key so the same counts always give the same vocabulary.
        ``max_size`` counts the three reserved entries.
        """
        kept = sorted((e for e, c in counts.items() if c >= min_count), key=lambda e: (-counts[e], e))
        if max_size is not None:
            kept = kept[: max(0, max_size - 3)]
        return cls(
            entities=[PAD, UNK, MASK, *kept],
            counts=[0, 0, 0, *(counts[e] for e in kept)],
            titles=[{}, {}, {}, *(dict(sorted(titles.get(e, {}).items())) for e in kept)],
        )

    def __len__(self) -> int:
        return len(self.entities)

    def __contains__(self, entity: str) -> bool:
        return entity in self._index

    def index(self, entity: str) -> int:
        """Index of ``entity``, or ``UNK_ID`` when it is not in the vocabulary."""
        return self._index.get(entity, UNK_ID)

    def names(self) -> list[tuple[str, dict[str, str]]]:
        """(key, titles by language) of every index: what matching another vocabulary by name reads."""
        return list(zip(self.entities, self.titles))

    def save(self, path: str | os.PathLike) -> None:
        with atomic_file(path, "w", encoding="utf-8") as out:
            for i, (entity, count, titles) in enumerate(zip(self.entities, self.counts, self.titles)):
                record = {"id": i, "entity": entity, "count": count, "titles": titles}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> EntityVocab:
        entities, counts, titles = [], [], []
        with open(path, encoding="utf-8") as lines:
            for line_number, line in enumerate(lines, 1):
                try:
                    record = json.loads(line)
                    if record["id"] != line_number - 1:
                        raise ValueError(f"id {record['id']} on line {line_number}, expected {line_number - 1}")
                    entities.append(record["entity"])
                    counts.append(int(record["count"]))
                    titles.append(dict(record.get("titles", {})))
                except (ValueError, KeyError, TypeError) as error:
                    raise ValueError(f"{path}:{line_number}: bad entity vocabulary line ({error!r})") from None
        if not entities:
            raise ValueError(f"{path}: empty entity vocabulary")
        return cls(entities, counts, titles)

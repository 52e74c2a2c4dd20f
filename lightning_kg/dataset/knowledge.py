"""The knowledge-text table: every entity's texts, stored once and memory-mapped.

Samples point into it by entity index instead of carrying texts, so a 1M-entity vocabulary in a
dozen languages costs one file on disk and only the pages a worker touches in memory.
Layout (docs/FORMATS.md): ``knowledge/{tokens,index,entity_rows,composed}.npy`` and ``langs.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from lightning_kg.dataset.files import atomic_file, write_text

FILES = ("tokens.npy", "index.npy", "entity_rows.npy", "composed.npy", "langs.json")


def _save_atomic(path: Path, array: np.ndarray) -> None:
    # A crash mid-write leaves a .tmp file, never a truncated table that loads.
    with atomic_file(path) as stream:
        np.save(stream, array, allow_pickle=False)


class KnowledgeTable:
    """Read access to ``<dataset>/knowledge/``; build one with :meth:`write`, open it with :meth:`load`."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._arrays: dict[str, np.ndarray] | None = None
        self.langs: list[str] = json.loads((self.directory / "knowledge" / "langs.json").read_text(encoding="utf-8"))
        self._lang_index = {lang: i for i, lang in enumerate(self.langs)}

    @staticmethod
    def write(directory: str | os.PathLike, rows: Iterable[tuple[int, str, Sequence[int], bool]],
              num_entities: int, langs: list[str]) -> None:
        """Write the table under ``directory/knowledge/``.

        ``rows`` are (entity index, language code, token ids, composed) in any order; they are
        sorted by entity, then by the language's position in ``langs`` (stable for equal keys).
        Tokens are gathered into one int32 array as they come, so memory stays near the table's size.
        """
        target = Path(directory) / "knowledge"
        target.mkdir(parents=True, exist_ok=True)
        lang_index = {lang: i for i, lang in enumerate(langs)}
        chunks: list[np.ndarray] = []
        entities: list[int] = []
        lang_ids: list[int] = []
        composed: list[bool] = []
        for entity, lang, token_ids, is_composed in rows:
            if lang not in lang_index:
                raise ValueError(f"knowledge row of entity {entity}: language {lang!r} is not in langs {langs}")
            if not 0 <= entity < num_entities:
                raise ValueError(f"knowledge row: entity index {entity} outside the vocabulary of {num_entities}")
            chunks.append(np.asarray(token_ids, dtype=np.int32))
            entities.append(int(entity))
            lang_ids.append(lang_index[lang])
            composed.append(bool(is_composed))
        entity_array = np.asarray(entities, dtype=np.int64)
        lang_array = np.asarray(lang_ids, dtype=np.int64)
        order = np.lexsort((lang_array, entity_array))  # lexsort is stable
        lengths = np.asarray([len(chunks[i]) for i in order], dtype=np.int64)
        starts = np.zeros(len(order), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        tokens = np.concatenate([chunks[i] for i in order]) if chunks else np.zeros(0, np.int32)
        index = np.stack([entity_array[order], lang_array[order], starts, lengths], axis=1) if len(order) \
            else np.zeros((0, 4), np.int64)
        entity_rows = np.searchsorted(entity_array[order], np.arange(num_entities + 1), side="left").astype(np.int64)
        _save_atomic(target / "tokens.npy", tokens)
        _save_atomic(target / "index.npy", index)
        _save_atomic(target / "entity_rows.npy", entity_rows)
        _save_atomic(target / "composed.npy", np.asarray(composed, dtype=bool)[order])
        write_text(target / "langs.json", json.dumps(langs))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> KnowledgeTable:
        """Open the table of the dataset in ``directory`` (the one holding ``knowledge/``)."""
        missing = [name for name in FILES if not (Path(directory) / "knowledge" / name).exists()]
        if missing:
            raise FileNotFoundError(f"{directory}/knowledge/ lacks {', '.join(missing)}: not a prepared dataset?")
        return cls(directory)

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        # Opened lazily, so a pickled table re-opens its memory maps inside each loader worker.
        if self._arrays is None:
            base = self.directory / "knowledge"
            self._arrays = {name: np.load(base / f"{name}.npy", mmap_mode="r")
                            for name in ("tokens", "index", "entity_rows", "composed")}
        return self._arrays

    def __getstate__(self) -> dict:
        # Pickling sends the path only: a worker maps the files itself rather than receiving copies.
        return {**self.__dict__, "_arrays": None}

    def __len__(self) -> int:
        """Number of texts (rows) in the table."""
        return len(self.arrays["index"])

    def _rows(self, entity: int) -> np.ndarray:
        rows = self.arrays["entity_rows"]
        if not 0 <= entity < len(rows) - 1:
            return self.arrays["index"][0:0]
        return self.arrays["index"][rows[entity] : rows[entity + 1]]

    def has(self, entity: int) -> bool:
        """Whether the entity has a text in any language."""
        return len(self._rows(entity)) > 0

    def languages(self, entity: int) -> list[str]:
        """Language codes of the entity's texts, in ``langs`` order."""
        return [self.langs[int(lang)] for lang in self._rows(entity)[:, 1]]

    def _tokens(self, row: np.ndarray) -> np.ndarray:
        start, length = int(row[2]), int(row[3])
        return np.asarray(self.arrays["tokens"][start : start + length])

    def text(self, entity: int, lang: str) -> np.ndarray | None:
        """Token ids (L,) int32 of the entity's text in ``lang``, or None."""
        lang_id = self._lang_index.get(lang)
        for row in self._rows(entity):
            if row[1] == lang_id:
                return self._tokens(row)
        return None

    def sample(self, entity: int, rng: np.random.Generator, lang: str | None = None) -> np.ndarray | None:
        """Token ids (L,) int32: the text in ``lang`` when there is one, else one in a random
        available language; None when the entity has no text."""
        if lang is not None and (text := self.text(entity, lang)) is not None:
            return text
        rows = self._rows(entity)
        if not len(rows):
            return None
        return self._tokens(rows[rng.integers(len(rows))])

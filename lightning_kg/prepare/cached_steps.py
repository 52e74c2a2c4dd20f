"""What an earlier run finished, and reusing it: every stage and Wikidata pass keeps a record in
``.work/`` under the hash of the settings and inputs it ran with (``digest``).

Nothing is reused on trust: a record counts only for the same hash and while what it lists is still
there as it was made (each shard at its size, each other output at its sha256), so a changed
setting redoes what it affects and a stale dataset is never mixed into a new one.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from lightning_kg.dataset.files import file_sha256, write_json
from lightning_kg.dataset.manifest import directory_sha256
from lightning_kg.prepare.chunk_journal import remove_journals

log = logging.getLogger("lightning_kg.prepare")
Value = TypeVar("Value")


def recorded(path: Path, digest: str) -> dict | None:
    """What an earlier run recorded in ``path`` if it ran with these settings and inputs; None if
    it did not, or nothing is there."""
    record = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return record if record.get("fingerprint") == digest else None


def required(path: Path, digest: str, remedy: str) -> dict:
    """What an earlier stage recorded in ``path``; an error saying ``remedy`` where it did not run
    with these settings and inputs."""
    if (record := recorded(path, digest)) is None:
        raise FileNotFoundError(f"{path} {'is of other settings' if path.exists() else 'not found'}: {remedy}")
    return record


def output_hash(out: Path, name: str) -> str | None:
    path = out / name
    return directory_sha256(path) if path.is_dir() else file_sha256(path) if path.is_file() else None


def finished(path: Path, digest: str, out: Path) -> dict | None:
    """The record in ``path`` if it is of these settings and inputs and everything it lists under
    ``shards`` and ``outputs`` (name -> sha256) in ``out`` is still as it was made."""
    if (record := recorded(path, digest)) is None:
        return None
    shards = [info for infos in record.get("shards", {}).values() for info in infos]
    intact = (all((out / s["name"]).is_file() and (out / s["name"]).stat().st_size == s["bytes"] for s in shards)
              and all(output_hash(out, name) == value for name, value in record.get("outputs", {}).items()))
    return record if intact else None


def keep(path: Path, record: dict) -> None:
    # A staging name per process: slices may record at once.
    write_json(path, record, staging=path.with_name(f"{path.name}.{os.getpid()}.tmp"))


def cached_step(path: Path, digest: str, reused_says: str, compute: Callable[[], Value], out: Path | None = None,
                save: Callable[[Value], dict] = lambda value: value, load: Callable[[dict], Value] = lambda record: record,
                journals: Iterable[str] = ()) -> tuple[Value, bool]:
    """``(value, reused)``: an earlier run's value where it finished this step (``load`` of its record,
    logged as ``reused_says``), else ``compute()``'s, whose record (``save`` of it) is kept in ``path``.
    Then the step's chunk ``journals`` go (left by a kill between the record and their removal)."""
    if (record := finished(path, digest, out or path.parent)) is not None:
        value, reused = load(record), True
        log.info(reused_says)
    else:
        value, reused = compute(), False
        keep(path, {"fingerprint": digest} | save(value))
    for name in journals:
        remove_journals(path.parent, name)
    return value, reused

"""Which dataset a run belongs to: the manifest's hashes of its tokenizer, entity vocabulary and
knowledge table. Token and entity ids mean nothing apart from these files, so a tokenizer or
vocabulary swapped under the shards, or a checkpoint resumed on other data, would train on
garbage without an error; these checks refuse it at start-up, showing both hashes. The shards the
manifest lists are checked there too (each exists, of the size recorded): a training stream
resamples its shards, so a deleted one would otherwise be found only when first drawn, steps in."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

from lightning_kg.dataset.files import file_sha256

PARTS = {"tokenizer": "tokenizer", "entity_vocab": "entity_vocab.jsonl", "knowledge": "knowledge"}
OVERRIDE = "pass --data.allow_mismatch true to use them anyway"


class DatasetMismatchError(ValueError):
    """Files, shards or a checkpoint that do not belong together."""


def directory_sha256(directory: Path) -> str:
    """One hash over a directory's files (names and contents), for the manifest."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0" + file_sha256(path).encode())
    return digest.hexdigest()


def current_hashes(data_dir: Path) -> dict[str, str]:
    """The hashes of the files as they are now, in the manifest's terms."""
    paths = {part: Path(data_dir) / name for part, name in PARTS.items()}
    return {part: directory_sha256(path) if path.is_dir() else file_sha256(path) for part, path in paths.items()}


def _refuse_or_warn(problems: list[str], allow: bool) -> None:
    if not problems:
        return
    message = "; ".join(problems)
    if allow:
        warnings.warn(f"data.allow_mismatch: going on although {message}", stacklevel=3)
        return
    raise DatasetMismatchError(f"{message}; {OVERRIDE}")


def check_files(data_dir: Path, manifest: dict, allow: bool = False) -> None:
    """The tokenizer, entity vocabulary and knowledge table must be those the shards were written with."""
    recorded = manifest.get("hashes", {})
    now = current_hashes(data_dir)
    _refuse_or_warn([f"{Path(data_dir) / PARTS[part]} does not belong to the shards of {data_dir}: manifest.json "
                     f"records sha256 {recorded[part]}, the files hash to {now[part]}"
                     for part in PARTS if part in recorded and recorded[part] != now[part]], allow)


def check_shards(data_dir: Path, manifest: dict, splits: list[str]) -> None:
    """Every shard ``manifest.json`` lists for ``splits`` exists and has the size it records (a
    stat each, no read): a :class:`DatasetMismatchError` naming the first that does not."""
    for split in splits:
        for shard in manifest.get("shards", {}).get(split, []):
            if not shard["samples"]:
                continue  # never read (KnowledgeDataModule passes over empty shards)
            path = Path(data_dir) / shard["name"]
            if not path.is_file():
                raise DatasetMismatchError(f"{path}: not found; manifest.json lists it among the {split} shards "
                                           f"({shard['samples']} samples). Restore it, or prepare the dataset again")
            size = path.stat().st_size
            if "bytes" in shard and size != shard["bytes"]:
                raise DatasetMismatchError(f"{path}: {size} bytes, manifest.json records {shard['bytes']} for this {split} "
                                           "shard (a copy or a write cut short, or another dataset's shard?)")


def check_checkpoint(saved: dict, manifest: dict, data_dir: Path, allow: bool = False) -> None:
    """A checkpoint's dataset hashes (``saved``) must match the dataset it continues on."""
    recorded = manifest.get("hashes", {})
    _refuse_or_warn([f"the checkpoint was trained with a {part} of sha256 {saved[part]}, {data_dir} has "
                     f"{recorded[part]}" for part in PARTS if part in saved and part in recorded
                     and saved[part] != recorded[part]], allow)

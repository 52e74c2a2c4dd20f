"""Write WebDataset shards that a crash cannot corrupt and a restart does not redo.

Samples are encoded here (npy, json) so a shard's boundaries depend only on the sample stream,
not on whether it is being written: a restarted run regenerates the same stream, skips the shards
its journal lists as finished, and writes the rest. Each shard is written under a temporary name
and renamed when complete, so a final name always holds a whole shard.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import webdataset as wds

from lightning_kg.dataset.files import atomic_file, file_sha256, write_text

TAR_BLOCK = 512


def stable_fraction(text: str) -> float:
    """A number in [0, 1) fixed by ``text``: splits by hash are the same on every machine and run."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass
class ShardInfo:
    name: str
    samples: int
    bytes: int
    sha256: str
    languages: dict[str, int] | None = None
    """Samples per language (the ``lang`` of each sample's json), for the loader's language
    sampling; None in journals written before they were counted."""


def encode_sample(sample: dict) -> dict:
    """Encode a sample's values to bytes by file extension: ``.npy`` arrays, ``json`` objects."""
    encoded = {"__key__": sample["__key__"]}
    for name, value in sample.items():
        if name == "__key__":
            continue
        if name.endswith("npy"):
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(value), allow_pickle=False)
            encoded[name] = buffer.getvalue()
        elif name.endswith("json"):
            encoded[name] = json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")
        else:
            raise ValueError(f"sample {sample['__key__']}: no encoding for {name!r} (expected *.npy or *json)")
    return encoded


def _tar_size(encoded: dict) -> int:
    return sum(TAR_BLOCK + -(-len(v) // TAR_BLOCK) * TAR_BLOCK for k, v in encoded.items() if k != "__key__")


class ShardJournal:
    """Shards already finished, one JSON line each, appended as each shard is renamed into place.

    Each line carries the ``fingerprint`` of the settings and inputs the shard was written with
    (prepare.fingerprint); lines of another fingerprint are not finished work for this run, so a
    changed setting can never leave an old shard in place. A last line cut short (the process was
    killed while appending it) is ignored: its shard is written again.
    """

    def __init__(self, path: str | os.PathLike, fingerprint: str = ""):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.finished: dict[str, ShardInfo] = {}
        if not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                made_with = record.pop("fingerprint", "")
                info = ShardInfo(**record)
            except (ValueError, TypeError, AttributeError) as error:
                if number == len(lines):
                    # Torn by a kill mid-append: drop it, or the next append would extend the torn line.
                    write_text(self.path, "".join(f"{kept}\n" for kept in lines[:-1]))
                    break
                raise ValueError(f"{self.path}:{number}: not a shard journal line ({error}); expected "
                                 "{\"name\", \"samples\", \"bytes\", \"sha256\", \"fingerprint\"}") from None
            if made_with == fingerprint:
                self.finished[info.name] = info

    def is_finished(self, directory: Path, name: str) -> bool:
        info = self.finished.get(name)
        path = directory / name
        return info is not None and path.exists() and path.stat().st_size == info.bytes

    def add(self, info: ShardInfo) -> None:
        self.finished[info.name] = info
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(info) | {"fingerprint": self.fingerprint}) + "\n")
            out.flush()
            os.fsync(out.fileno())


class ShardSink:
    """Collects samples into shards ``{prefix}-%06d.tar`` of at most ``max_samples`` samples and
    ``max_bytes`` bytes, writing only those the journal does not list as finished."""

    def __init__(self, directory: str | os.PathLike, prefix: str, journal: ShardJournal, max_samples: int, max_bytes: int,
                 first_index: int = 0):
        self.directory = Path(directory)
        self.prefix = prefix
        self.journal = journal
        self.max_samples = max_samples
        self.max_bytes = max_bytes
        self.first_index = first_index
        self.shards: list[ShardInfo] = []
        self._pending: list[dict] = []
        self._pending_bytes = 0
        self._pending_languages: Counter = Counter()

    def write(self, sample: dict) -> None:
        encoded = encode_sample(sample)
        size = _tar_size(encoded)
        if self._pending and (len(self._pending) >= self.max_samples or self._pending_bytes + size > self.max_bytes):
            self._flush()
        self._pending.append(encoded)
        self._pending_bytes += size
        if "lang" in sample.get("json", {}):
            self._pending_languages[sample["json"]["lang"]] += 1

    def close(self) -> list[ShardInfo]:
        if self._pending:
            self._flush()
        return self.shards

    def _flush(self) -> None:
        name = f"{self.prefix}-{self.first_index + len(self.shards):06d}.tar"
        if self.journal.is_finished(self.directory, name):
            info = self.journal.finished[name]
        else:
            info = self._write_shard(name, self._pending)
            info.languages = dict(sorted(self._pending_languages.items()))
            self.journal.add(info)
        self.shards.append(info)
        self._pending, self._pending_bytes, self._pending_languages = [], 0, Counter()

    def _write_shard(self, name: str, samples: list[dict]) -> ShardInfo:
        final = self.directory / name
        partial = final.with_name(name + ".partial")
        with atomic_file(final, staging=partial) as stream:
            # Fixed owner and mtime: the same samples give byte-identical shards.
            writer = wds.TarWriter(stream, encoder=False, mtime=0, user="lightning_kg", group="lightning_kg")
            for sample in samples:
                writer.write(sample)
            writer.close()
        return ShardInfo(name=name, samples=len(samples), bytes=final.stat().st_size, sha256=file_sha256(final))

"""Files written whole or not at all, the one way every writer of the package writes them.

:func:`atomic_file` writes to a temporary name beside the target, flushes it to disk (fsync),
renames it over the target and flushes the folder's entry, so a reader sees the old file or the new
one and a crash at any moment never leaves a half file that reads as finished (a stage's record, a
shard, a checkpoint). A write that fails (a full disk, an exception) removes its temporary file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's data, or a directory's entries (a rename in it), to disk, not only the page cache."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", staging: str | os.PathLike | None = None,
                encoding: str | None = None) -> Iterator[IO]:
    """Open ``staging`` (default ``<path>.tmp``) for writing; when the block ends without an error,
    fsync it, rename it over ``path`` and fsync the folder. On an error it is removed, and ``path``
    keeps what it held."""
    path = Path(path)
    staging = Path(staging) if staging is not None else path.with_name(path.name + ".tmp")
    try:
        with open(staging, mode, encoding=encoding if "b" not in mode else None) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def write_text(path: str | os.PathLike, text: str, staging: str | os.PathLike | None = None) -> None:
    """``text`` as UTF-8 into ``path``, atomically."""
    with atomic_file(path, "w", staging=staging, encoding="utf-8") as out:
        out.write(text)


def write_json(path: str | os.PathLike, value, indent: int | None = None, sort_keys: bool = False,
               staging: str | os.PathLike | None = None) -> None:
    """``value`` as one JSON document into ``path``, atomically."""
    write_text(path, json.dumps(value, indent=indent, ensure_ascii=False, sort_keys=sort_keys) + "\n", staging)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""Opening dump files and naming the records that could not be read."""

from __future__ import annotations

import bz2
import glob
import gzip
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class BadRecord:
    """One input record that was skipped, with where it was and why."""

    path: str
    location: str  # "line 12", "byte 4096", "page 'Foo' (line 88)"
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.location}: {self.reason}"


class DumpError(ValueError):
    """A malformed record where the caller asked to stop (``--strict``) rather than skip."""


def raise_on_error(record: BadRecord) -> None:
    raise DumpError(str(record))


def open_dump(path: str | os.PathLike) -> BinaryIO:
    """A binary stream of the dump's bytes: ``.bz2`` (multistream too), ``.gz`` or plain."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dump file not found: {path}")
    if path.suffix == ".bz2":
        return bz2.open(path, "rb")  # reads concatenated streams, so multistream dumps work
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def expand_inputs(patterns: str | Sequence[str]) -> list[str]:
    """Paths and globs -> sorted, deduplicated existing files; a pattern matching nothing is an error."""
    if isinstance(patterns, str):
        patterns = [patterns]
    files: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matches:
            raise FileNotFoundError(f"no input file matches {pattern!r}")
        files.extend(m for m in matches if m not in files)
    return files

"""A Wikidata pass's finished chunks kept on disk, so that a pass killed hours in resumes there.

At full scale one pass over the dump is some 25 minutes of a 64-core node; saving the knowledge
base as it grows costs too much (2 minutes for each 3.5 GB save), but each chunk's result is small
(the kept entities of 4 MiB of JSON) and the chunks come in the same order every run. So each
result is appended here as it is handed back; a rerun replays the recorded ones, reads past their
chunks (decompressing only: a sixth of a pass's cost) and decodes the rest.

File: a pickled header ``{"key": ...}`` then one frame per chunk, an 8-byte little-endian length
and the pickled result, and an empty frame once the dump was read to its end. A frame cut short by the kill is dropped; a header of another key (other
settings or inputs, another chunk size) starts the file over.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_LENGTH = struct.Struct("<Q")


def _frames(file: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """(payload, offset after it) of each whole frame from ``file``'s position on."""
    while len(head := file.read(_LENGTH.size)) == _LENGTH.size:
        (length,) = _LENGTH.unpack(head)
        payload = file.read(length)
        if len(payload) < length:
            return
        yield payload, file.tell()


class ChunkJournal:
    """The results of one dump's chunks for one pass, in chunk order (``key`` says which pass, of
    which settings and inputs). :meth:`replay` first, then :meth:`append` each new result."""

    def __init__(self, path: Path, key: str):
        self.path, self.key = Path(path), key
        self.replayed = 0
        self.complete = False  # the journal holds every chunk of the dump: nothing is left to read
        self._file: BinaryIO | None = None
        self._end = 0  # where the next frame goes

    def replay(self) -> Iterator:
        """The results recorded under this key, oldest first (nothing for a missing file or another key)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as file:
            try:
                header = next(_frames(file), None)
                if header is None or pickle.loads(header[0]) != {"key": self.key}:
                    return
            except (pickle.UnpicklingError, EOFError, ValueError):
                return
            self._end = header[1]
            for payload, end in _frames(file):
                self._end = end
                if not payload:
                    self.complete = True
                    return
                result = pickle.loads(payload)
                self.replayed += 1
                yield result

    def append(self, result) -> None:
        """Record the next chunk's result (flushed, so a killed process leaves it whole in the file)."""
        self._open()
        self._write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        self._file.flush()

    def _open(self) -> None:
        if self._file is None:
            self._file = open(self.path, "r+b" if self._end else "wb")  # noqa: SIM115 (open across appends; close() or the pass ends it)
            self._file.truncate(self._end)  # a frame the kill cut short, or a file of another key
            self._file.seek(self._end)
            if not self._end:
                self._write(pickle.dumps({"key": self.key}))

    def finish(self) -> None:
        """Mark the dump read to its end (an empty frame), so a rerun need not read it again."""
        self._open()
        self._write(b"")
        self._file.flush()

    def _write(self, payload: bytes) -> None:
        self._file.write(_LENGTH.pack(len(payload)) + payload)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def journal_path(directory: Path, name: str, dump: str | os.PathLike) -> Path:
    """Where pass ``name`` journals the chunks of ``dump``: one file per dump (a pass may read several)."""
    return Path(directory) / f"{name}-{hashlib.sha1(os.path.abspath(dump).encode()).hexdigest()[:12]}.journal"


def remove_journals(directory: Path, name: str) -> None:
    """Remove pass ``name``'s journals, once the pass's own record holds what they did."""
    for path in Path(directory).glob(f"{name}-*.journal"):
        path.unlink()

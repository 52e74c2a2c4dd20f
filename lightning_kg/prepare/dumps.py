"""Opening dump files and naming the records that could not be read."""

from __future__ import annotations

import bz2
import glob
import gzip
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class BadRecord:
    """One input record that was skipped, with where it was and why."""

    path: str
    location: str  # "line 12", "byte 4096", "page 'Foo' (line 88)"
    reason: str
    truncated: bool = False  # the file ends here: its remaining records are lost, not one

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


class BlockReader:
    """The blocks of a stream, read by a thread ``ahead`` blocks in advance of the caller.

    bz2 and zlib release the GIL while they decompress, so a dump is decompressed on one core while
    its XML is parsed on another, instead of one after the other. A read error reaches the caller
    where the block it spoiled would have. Use as a context manager: leaving it stops the thread.
    """

    def __init__(self, stream: BinaryIO, size: int, ahead: int = 4):
        self._blocks: queue.Queue = queue.Queue(ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(stream, size), daemon=True)
        self._thread.start()

    def _read(self, stream: BinaryIO, size: int) -> None:
        # read1: what one decompression step gives, so the bytes before a cut reach the caller
        # (read() gathering a whole block would lose them with the error).
        read = getattr(stream, "read1", stream.read)
        try:
            while not self._stop.is_set():
                block = read(size)
                self._blocks.put(block)
                if not block:
                    return
        except Exception as error:  # handed to the caller, which knows the file and line
            self._blocks.put(error)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            block = self._blocks.get()
            if isinstance(block, Exception):
                raise block
            if not block:
                return
            yield block

    def __enter__(self) -> BlockReader:
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        while self._thread.is_alive():  # empty the queue so a put waiting on it returns
            try:
                self._blocks.get_nowait()
            except queue.Empty:
                self._thread.join(0.01)


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

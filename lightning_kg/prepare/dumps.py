"""Opening dump files and naming the records that could not be read."""

from __future__ import annotations

import bz2
import glob
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from isal import igzip

log = logging.getLogger("lightning_kg.prepare")
CHUNK_BYTES = 1 << 22


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


class BadRecords:
    """Counts skipped input records, logs each with where it was, or raises under ``strict``. A file
    cut short (truncated, or broken XML) is also listed in ``truncated``: all its later records are lost."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.records: list[str] = []
        self.truncated: list[str] = []

    def __call__(self, record: BadRecord) -> None:
        if self.strict:
            raise DumpError(f"{'input cut short' if record.truncated else 'malformed record'} (--strict stops here): {record}")
        if record.truncated:
            log.warning("input cut short, kept what was read before: %s", record)
            self.truncated.append(str(record))
        else:
            log.warning("skipped %s", record)
        self.records.append(str(record))


def raise_on_error(record: BadRecord) -> None:
    raise DumpError(str(record))


def open_dump(path: str | os.PathLike, file: BinaryIO | None = None) -> BinaryIO:
    """A binary stream of the dump's bytes: ``.bz2`` (multistream too), ``.gz`` or plain. ``file``:
    the dump already open, whose position then says how far the reading got."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dump file not found: {path}")
    source = path if file is None else file  # a file they were given, bz2 and igzip leave open
    if path.suffix == ".bz2":
        return bz2.open(source, "rb")  # reads concatenated streams, so multistream dumps work
    if path.suffix == ".gz":
        # ISA-L decompresses several times faster than zlib (docs/PREPARE.md) and, as gzip does, raises
        # EOFError on a file cut short.
        return igzip.open(source, "rb")
    return open(path, "rb") if file is None else file


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


@dataclass(frozen=True)
class LineChunk:
    """Whole lines of a dump: ``head + block[:cut]``. The process that reads the dump only finds the
    last line end of each block it decompresses; the worker that decodes the lines joins them.
    ``block`` is the bytes, or the number of the shared-memory slot they were read into
    (:class:`~lightning_kg.prepare.chunk_pool.ChunkPool`), which ``slots`` resolves."""

    head: bytes  # the line the previous block ended in the middle of
    block: bytes | int
    cut: int

    def lines(self, slots: list[memoryview] | None = None) -> list[bytes | memoryview]:
        """The chunk split at line ends (the last piece is empty where it ends in one): views of the
        block but for the first line, which the head begins: joining the head to the block and
        splitting that would copy the 4 MiB twice (docs/PREPARE.md, "At full scale")."""
        block = (memoryview(self.block) if isinstance(self.block, bytes) else slots[self.block])[: self.cut]
        ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10).tolist()
        if not ends:
            return [self.head + bytes(block)]
        return [self.head + bytes(block[: ends[0]]), *(block[start + 1 : end] for start, end in zip(ends, ends[1:])),
                block[ends[-1] + 1 :]]


def line_chunks(path: str | os.PathLike, size: int | None = None, progress: Callable[[int], None] | None = None) -> Iterator[LineChunk]:
    """The dump in chunks of whole lines, about ``size`` bytes each (``CHUNK_BYTES``), read ahead of
    the caller (:class:`BlockReader`). A large chunk split in a worker costs less than reading a line
    at a time, and far less than splitting it in the one process that reads the dump. ``progress``
    is told the file's bytes read (compressed) after each block."""
    size = size or CHUNK_BYTES
    head = b""
    with open(path, "rb") as file, open_dump(path, file) as stream, BlockReader(stream, size) as blocks:
        for block in blocks:
            if progress:
                progress(file.tell())
            cut = block.rfind(b"\n") + 1
            if not cut:  # no line ends in this block
                head += block
                continue
            yield LineChunk(head, block, cut)
            head = block[cut:]
    if head:
        yield LineChunk(b"", head, len(head))


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

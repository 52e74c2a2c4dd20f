"""Chunks of one big dump decoded in worker processes, taken back in dump order.

Wikidata is one file, so the merge cannot spread it by file as the parse does: this process
decompresses it while the workers decode its chunks of lines (and decodes some itself when they are
all busy), and the results come back
in submission order, so the output does not depend on which worker was faster. The chunks are
decompressed straight into shared memory that the workers read: sent through the pool's pipe,
4 MiB at a time, they moved at some 500 MB/s on this project's machine, no faster than one process
decodes them. A set that decides which lines a worker decodes whole (the
wikis' link targets: tens of millions of titles at full scale) would be copied into every worker;
:meth:`ChunkPool.shared_keys` gives them instead a file of 64-bit hashes that they all map from the
page cache, and the caller checks the few lines it lets through against the set itself.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator
from pathlib import Path

import numpy as np

from lightning_kg.prepare import dumps
from lightning_kg.prepare.dumps import LineChunk, line_chunks, open_dump

IN_FLIGHT_PER_WORKER = 4
SLOTS: list[memoryview] = []
"""In a worker, the shared-memory slots its pool reads chunks into (empty elsewhere)."""


def _share_slots(arrays: list) -> None:
    """Pool initializer: the slots, shared with the parent from the start (spawned processes can
    only inherit shared arrays, not be sent them later)."""
    SLOTS[:] = [memoryview(array).cast("B") for array in arrays]


def key_hash(key: Hashable) -> int:
    """A hash of ``key`` (a str, or a tuple of str) that is the same in every process, as Python's
    salted ``hash`` is not."""
    text = "\0".join(key) if isinstance(key, tuple) else key
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


class KeyFilter:
    """``key in filter`` for worker processes: True for every key of the set it was made from, and
    for about one other key in 2**64 / len(set) (a hash collision), which the caller's exact check
    then turns away. It pickles as its file's path; the sorted hashes are mapped on first use."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._hashes = None

    @classmethod
    def write(cls, keys: Iterable[Hashable], path: Path) -> KeyFilter:
        np.save(path, np.unique(np.fromiter((key_hash(k) for k in keys), dtype=np.uint64)))
        return cls(path)

    def __contains__(self, key: Hashable) -> bool:
        return self.any_of([[key]])[0]

    def __getstate__(self) -> dict:
        return {"path": self.path, "_hashes": None}

    def any_of(self, key_lists: list[list[Hashable]]) -> list[bool]:
        """``any(key in self for key in keys)`` for each list, in one search of the hashes: a key at
        a time, numpy's call overhead made this filter 25 times slower than a set (2.8 against 0.11 us)."""
        if self._hashes is None:
            self._hashes = np.load(self.path, mmap_mode="r")
        values = np.fromiter((key_hash(key) for keys in key_lists for key in keys), dtype=np.uint64)
        owner = np.repeat(np.arange(len(key_lists)), [len(keys) for keys in key_lists])
        hit = np.zeros(len(key_lists), dtype=bool)
        if len(self._hashes) and len(values):
            index = np.minimum(np.searchsorted(self._hashes, values), len(self._hashes) - 1)
            hit[owner[self._hashes[index] == values]] = True
        return hit.tolist()


def any_of(keys: Collection[Hashable], key_lists: list[list[Hashable]]) -> list[bool]:
    """``any(key in keys for key in each)`` of each list, the filter's way when ``keys`` is one."""
    if isinstance(keys, KeyFilter):
        return keys.any_of(key_lists)
    return [any(key in keys for key in each) for each in key_lists]


class ChunkPool:
    """``workers`` processes decode the chunks: this one and ``workers - 1`` spawned ones (none for
    one worker: the chunks are decoded here, by the same functions, while a thread reads ahead). This
    process reads the dump and hands the chunks out; when every slot is in flight it decodes the next
    chunk itself rather than wait (with 2 spawned workers on 2 cores, three processes shared them and
    the passes ran 1.15x faster than one process; with 1 spawned and this one, 1.29-1.36x). Use as a
    context manager: leaving it stops the processes and removes the key files."""

    def __init__(self, workers: int = 1, scratch: Path | None = None):
        self.workers = workers
        self._pool = self._scratch = None
        self._shared: dict[int, tuple[Collection, KeyFilter]] = {}  # id(keys) -> (keys, their filter): one file per set
        self.chunks = {"here": 0, "workers": 0}  # where the chunks were decoded, for a bench to tell the reading's own cost
        if workers > 1:
            context = multiprocessing.get_context("spawn")
            spawned = workers - 1  # this process is the other one: it decodes chunks while the workers are busy
            self._arrays = [context.RawArray("B", dumps.CHUNK_BYTES) for _ in range(IN_FLIGHT_PER_WORKER * spawned + 1)]
            self._slots = [memoryview(array).cast("B") for array in self._arrays]
            self._pool = context.Pool(spawned, _share_slots, (self._arrays,))
            self._scratch = Path(tempfile.mkdtemp(prefix="keys-", dir=scratch))

    def pids(self) -> list[int]:
        """The worker processes' ids (none without workers), for a bench to read their CPU time."""
        return [process.pid for process in self._pool._pool] if self._pool else []

    def shared_keys(self, keys: Collection[Hashable]) -> Collection[Hashable]:
        """What workers test membership in ``keys`` with: the set itself when there are none, else a
        :class:`KeyFilter`, which may let a few other keys through."""
        if self._pool is None:
            return keys
        if id(keys) not in self._shared:
            self._shared[id(keys)] = keys, KeyFilter.write(keys, self._scratch / f"{len(self._shared)}.npy")
        return self._shared[id(keys)][1]

    def map_lines(self, function: Callable, path: str | os.PathLike, *args, progress: Callable[[int], None] | None = None) -> Iterator:
        """``function(chunk, *args)`` for each :class:`LineChunk` of the dump at ``path``, in order.
        Each slot holds a chunk until its result is taken back, so at most ``IN_FLIGHT_PER_WORKER``
        chunks per worker wait and memory stays bounded when the reading outpaces the workers; the
        chunks decoded here are as many as the slots at most ahead of the oldest one still out.
        ``progress`` is told the file's bytes read (compressed) after each chunk."""
        if self._pool is None:
            for chunk in line_chunks(path, progress=progress):
                yield function(chunk, *args)
            return
        free, waiting, head = deque(range(len(self._slots))), deque(), b""
        own = memoryview(bytearray(dumps.CHUNK_BYTES))  # the block of a chunk this process decodes itself
        with open(path, "rb") as file, open_dump(path, file) as stream:
            while True:
                if progress:
                    progress(file.tell())
                ready = bool(waiting) and waiting[0][1].ready()
                decoded_here = sum(slot is None for slot, _ in waiting)
                if (not free and (ready or decoded_here >= len(self._slots))) or (ready and waiting[0][0] is None):
                    slot, result = waiting.popleft()  # the oldest is back, or this process has done its share ahead
                    yield result.get()
                    if slot is not None:
                        free.append(slot)
                    continue
                # A free slot goes to the workers; with none, this process decodes the next chunk itself.
                slot = free[0] if free else None
                buffer = own if slot is None else self._slots[slot]
                size = _fill(stream, buffer)
                if not size:
                    break
                cut = _last_line_end(buffer, size)
                if not cut:  # no line ends in this block
                    head += bytes(buffer[:size])
                    continue
                self.chunks["here" if slot is None else "workers"] += 1
                if slot is None:
                    waiting.append((None, _Done(function(LineChunk(head, bytes(buffer[:cut]), cut), *args))))
                else:
                    free.popleft()
                    waiting.append((slot, self._pool.apply_async(function, (LineChunk(head, slot, cut), *args))))
                head = bytes(buffer[cut:size])
        if head:
            waiting.append((None, _Done(function(LineChunk(b"", head, len(head)), *args))))
        while waiting:
            yield waiting.popleft()[1].get()

    def __enter__(self) -> ChunkPool:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            shutil.rmtree(self._scratch, ignore_errors=True)


class _Done:
    """A chunk's result worked out in this process, queued in order beside the workers' results."""

    def __init__(self, value):
        self.value = value

    def ready(self) -> bool:
        return True

    def get(self):
        return self.value


def _fill(stream, buffer: memoryview) -> int:
    """Decompress into ``buffer`` until it is full or the stream ends; the bytes read."""
    filled = 0
    while filled < len(buffer) and (count := stream.readinto(buffer[filled:])):
        filled += count
    return filled


def _last_line_end(buffer: memoryview, size: int) -> int:
    """One past the last ``\\n`` in ``buffer[:size]``, 0 if there is none; a line of Wikidata is some
    kilobytes, so the search looks at the end first."""
    start = size
    while start > 0:
        start = max(0, start - 65536)
        if (found := bytes(buffer[start:size]).rfind(b"\n")) >= 0:
            return start + found + 1
    return 0

"""Chunks of one big dump decoded in worker processes, taken back in dump order: the Wikidata
dump's lines in the merge, a Wikipedia dump's wikitext in the parse (:meth:`ChunkPool.ordered`).

Wikidata is one file, so the merge cannot spread it by file as the parse does: a thread of this
process decompresses it (ISA-L releases the GIL) while the workers decode its chunks of lines, and
this process decodes one itself when they are all busy; the results come back in submission order,
so the output does not depend on which process was faster. The chunks reach the workers through
shared memory: sent through the pool's pipe, 4 MiB at a time, they moved no faster than one
process decodes them (docs/PREPARE.md, "At full scale"). A set that decides which lines a
worker decodes whole (the wikis' link targets: tens of millions of titles at full scale) would be
copied into every worker; :meth:`ChunkPool.shared_keys` gives them instead a file of 64-bit hashes
that they all map from the page cache, and the caller checks the few lines it lets through against
the set itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import multiprocessing
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator
from pathlib import Path

import numpy as np

from lightning_kg.prepare import dumps
from lightning_kg.prepare.chunk_journal import ChunkJournal, journal_path
from lightning_kg.prepare.dumps import LineChunk, line_chunks

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
        a time, numpy's call overhead made this filter many times slower than a set (docs/PREPARE.md)."""
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
    chunk itself rather than wait (two spawned workers beside it shared 2 cores three ways; figures:
    docs/PREPARE.md, "At full scale"). Use as a context manager: leaving it stops the processes and
    removes the key files."""

    def __init__(self, workers: int = 1, scratch: Path | None = None, shared_chunks: bool = True):
        self.workers = workers
        self._pool = self._scratch = None
        self._filters = 0  # key files written, for their names
        # Where the chunks were decoded (for a bench to tell the reading's own cost), or that a journal had them.
        self.chunks = {"here": 0, "workers": 0, "journal": 0}
        self._journal: tuple[Path, str, str] | None = None
        if workers > 1:
            context = multiprocessing.get_context("spawn")
            spawned = workers - 1  # this process is the other one: it decodes chunks while the workers are busy
            # Places for the tasks in flight; without ``shared_chunks`` (tasks that are not dump
            # chunks: :meth:`ordered`) they are only counted, no shared memory is set aside.
            places = IN_FLIGHT_PER_WORKER * spawned + 1
            self._arrays = [context.RawArray("B", dumps.CHUNK_BYTES) for _ in range(places)] if shared_chunks else []
            self._slots = [memoryview(array).cast("B") for array in self._arrays] or [None] * places
            self._pool = context.Pool(spawned, _share_slots, (self._arrays,))
            self._scratch = Path(tempfile.mkdtemp(prefix="keys-", dir=scratch))

    def shared_keys(self, keys: Collection[Hashable]) -> Collection[Hashable]:
        """What workers test membership in ``keys`` with: the set itself when there are none, else a
        :class:`KeyFilter`, which may let a few other keys through."""
        if self._pool is None:
            return keys
        # A file per call, the set not kept: a cache keyed by the set would hold it (98 bytes per link
        # target for the first pass's) through the later passes; hashing it again for each Wikidata
        # file of a pass costs some 0.5 us a key.
        self._filters += 1
        return KeyFilter.write(keys, self._scratch / f"{self._filters}.npy")

    def map_lines(self, function: Callable, path: str | os.PathLike, *args, progress: Callable[[int], None] | None = None) -> Iterator:
        """``function(chunk, *args)`` for each :class:`LineChunk` of the dump at ``path``, in order.
        Within :meth:`journaled`, the results an earlier run recorded for this pass come first, from
        its journal, and their chunks are only read past. ``progress`` is told the file's bytes read
        (compressed) after each chunk."""
        chunks = line_chunks(path, progress=progress)
        if self._journal is None:
            yield from self._in_order(function, ((chunk, *args) for chunk in chunks), in_slots=True)
            return
        directory, name, key = self._journal
        journal = ChunkJournal(journal_path(directory, name, path), f"{key}|{function.__name__}|{dumps.CHUNK_BYTES}")
        try:
            yield from journal.replay()
            self.chunks["journal"] += journal.replayed
            if journal.complete:
                return
            for result in self._in_order(function, ((chunk, *args) for chunk in itertools.islice(chunks, journal.replayed, None)), True):
                journal.append(result)
                yield result
            journal.finish()
        finally:
            journal.close()

    @contextlib.contextmanager
    def journaled(self, directory: Path, name: str, key: str) -> Iterator[None]:
        """Within, each dump's chunk results are journaled (:mod:`chunk_journal`) as
        ``name-*.journal`` in ``directory`` under ``key`` (the run's settings and inputs), and a
        journal of that name and key that a killed run left is replayed. The caller removes them
        (:func:`~lightning_kg.prepare.chunk_journal.remove_journals`) once it has recorded the pass."""
        self._journal = (Path(directory), name, key)
        try:
            yield
        finally:
            self._journal = None

    def ordered(self, function: Callable, tasks: Iterable[tuple]) -> Iterator:
        """``function(*task)`` of each task in order, by the workers and this process, the tasks
        pickled to the workers (for dump chunks :meth:`map_lines` passes them in shared memory)."""
        return self._in_order(function, tasks, in_slots=False)

    def _in_order(self, function: Callable, tasks: Iterable[tuple], in_slots: bool) -> Iterator:
        """``function(*task)`` of each task in order, by the workers and this process. Each place
        (``in_slots``: a slot holding the task's chunk, its first argument) is taken until the
        task's result is taken back, so at most ``IN_FLIGHT_PER_WORKER`` tasks per worker wait and
        memory stays bounded when the reading outpaces the workers; the tasks done here are as many
        as the places at most ahead of the oldest one still out."""
        if self._pool is None:
            for task in tasks:
                self.chunks["here"] += 1
                yield function(*task)
            return
        free, waiting = deque(range(len(self._slots))), deque()
        for task in tasks:
            while True:
                while waiting and waiting[0][1].ready():  # hand back what is done, oldest first
                    yield self._take_back(waiting, free)
                if free or sum(slot is None for slot, _ in waiting) < len(self._slots):
                    break
                yield self._take_back(waiting, free)  # as far ahead as allowed: wait for the oldest
            if free and not (in_slots and task[0].cut > len(self._slots[0])):
                slot = free.popleft()
                if in_slots:
                    chunk = task[0]
                    self._slots[slot][: chunk.cut] = memoryview(chunk.block)[: chunk.cut]
                    task = (LineChunk(chunk.head, slot, chunk.cut), *task[1:])
                waiting.append((slot, self._pool.apply_async(function, task)))
                self.chunks["workers"] += 1
            else:  # every place is taken (or the chunk is one line longer than a slot): do it here
                waiting.append((None, _Done(function(*task))))
                self.chunks["here"] += 1
        while waiting:
            yield self._take_back(waiting, free)

    @staticmethod
    def _take_back(waiting: deque, free: deque):
        """The oldest chunk's result, waiting for it; its slot is free again."""
        slot, result = waiting.popleft()
        if slot is not None:
            free.append(slot)
        return result.get()

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

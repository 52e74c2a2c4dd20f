"""Loader workers leave the stop signals to the main process.

A signal sent to a whole process group (``kill -TERM -- -PGID``: systemd's stop of a control
group, Kubernetes, SLURM's ``--signal`` without ``B:``) reaches the DataLoader's workers as well.
Their default action ends them, and the main process then fails with "DataLoader worker (pid N) is
killed by signal" before it can save. The main process handles SIGTERM, SIGINT and the requeue
signal (``train/preemption.py``); workers ignore them. The signals stay blocked in the main process
while it starts workers, and a worker ignores them before unblocking, so none can reach a worker in
the moment between its start and its ``worker_init_fn``.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from torch.utils.data import DataLoader


def stop_signals(requeue_signal: int | None = None) -> tuple[int, ...]:
    """SIGTERM, SIGINT and, under SLURM, the requeue signal, as numbers (a worker receives them pickled)."""
    return tuple(int(s) for s in dict.fromkeys([signal.SIGTERM, signal.SIGINT, *([requeue_signal] if requeue_signal else [])]))


def ignore_in_worker(signals: tuple[int, ...], worker_id: int) -> None:
    """``worker_init_fn``: ignore ``signals`` in this worker, then unblock them (blocked at its start)."""
    for number in signals:
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)


@contextmanager
def blocked(signals: tuple[int, ...]) -> Iterator[None]:
    """Hold ``signals`` back in this thread (a signal that arrives meanwhile is delivered at the end)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class MainProcessSignalsLoader(DataLoader):
    """A DataLoader whose workers ignore ``signals`` (see the module docstring)."""

    def __init__(self, dataset, signals: tuple[int, ...] = (), **options):
        self.signals = tuple(signals) if options.get("num_workers") else ()
        if self.signals:
            options["worker_init_fn"] = partial(ignore_in_worker, self.signals)
        super().__init__(dataset, **options)

    def __iter__(self):
        # Workers start when the iterator is made; they inherit this thread's signal mask.
        with blocked(self.signals):
            return super().__iter__()

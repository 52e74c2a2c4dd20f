"""Loader workers ignore the signals the main process handles, so a signal to the whole process
group stops neither them nor the run (a fit with workers: tests/train/test_preemption.py)."""

from __future__ import annotations

import os
import signal

import pytest
from torch.utils.data import IterableDataset

from lightning_kg.data.loader_signals import MainProcessSignalsLoader, stop_signals


class WhereAmI(IterableDataset):
    """Endless (pid, SIGTERM's handler is SIG_IGN, SIGUSR1 blocked) of the process reading it."""

    def __iter__(self):
        while True:
            yield os.getpid(), signal.getsignal(signal.SIGTERM) == signal.SIG_IGN, signal.SIGUSR1 in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_the_stop_signals_are_sigterm_sigint_and_the_requeue_signal():
    assert stop_signals() == (signal.SIGTERM, signal.SIGINT)
    assert stop_signals(signal.SIGUSR1) == (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
    assert stop_signals(signal.SIGTERM) == (signal.SIGTERM, signal.SIGINT)


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1])
def test_workers_ignore_the_stop_signals_and_go_on(sent):
    loader = MainProcessSignalsLoader(WhereAmI(), signals=stop_signals(signal.SIGUSR1), batch_size=None, num_workers=2)
    batches = iter(loader)
    workers = {next(batches)[0] for _ in range(4)}
    assert len(workers) == 2 and os.getpid() not in workers
    for pid in workers:
        os.kill(pid, sent)  # SIGTERM or SIGUSR1 end a plain DataLoader's worker, and the main process then fails
    after = [next(batches) for _ in range(4)]
    assert {pid for pid, _, _ in after} == workers
    assert all(ignored and not blocked for _, ignored, blocked in after)  # ignored, no longer held back
    assert signal.SIGUSR1 not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the main thread's mask is as before
    del batches

"""Draw batches from a datamodule and compare two runs' batches key by key: the check that a resumed,
resampled or filtered stream gives the batches a straight one gives."""

import torch


def batches(dm, count, loader=None) -> list[dict]:
    """The first ``count`` batches of ``loader`` (``dm``'s training loader by default)."""
    iterator = iter(loader or dm.train_dataloader())
    return [next(iterator) for _ in range(count)]


def assert_same(expected: list[dict], got: list[dict], ignore=()) -> None:
    """Same number of batches, same keys (less ``ignore``), equal tensors; ``counts`` holds host ints."""
    assert len(expected) == len(got)
    for a, b in zip(expected, got):
        assert a.keys() - set(ignore) == b.keys() - set(ignore)
        for key in a.keys() - set(ignore):
            assert (a[key] == b[key]) if isinstance(a[key], dict) else torch.equal(a[key], b[key]), key

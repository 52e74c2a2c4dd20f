"""Checks of shards and samples against docs/FORMATS.md, and what a training stream does with bad ones.

Every error starts with the shard URL, then names the sample key (for samples) and what was
expected, so that one line in the log of a days-long run is enough to find the fault.
- A *shard* is bad when it cannot be read as a tar to its end (missing, empty, not a tar, cut off
  inside a member) or ends before the number of samples the manifest lists for it: tarfile reads a
  tar cut inside a header block, or with garbage after a member, as a shorter valid tar, so the
  manifest's count is the only way to see those truncations.
- A *sample* is bad when :func:`decode_sample` rejects it.

Validation always fails on the first bad shard or sample. Training follows the ``bad_samples``
policy (:class:`BadDataTally`): fail likewise, or skip, count and warn, until more than
``max_bad_fraction`` of the samples read were bad.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import tarfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import webdataset as wds
from webdataset.gopen import Pipe

from lightning_kg.dataset.entity_vocab import MASK_ID, PAD_ID

# The share of bad samples is measured over at least this many samples, so that two bad ones among
# the first few (a wrong vocabulary makes every sample bad) stop a run at once.
MIN_SAMPLES = 100
# Bad samples warned about by each loader worker; the rest are only counted (at 1%, a long run has millions).
WARNINGS_SHOWN = 10


@dataclass(frozen=True)
class SampleLimits:
    """What a valid sample must respect, read from the dataset directory."""

    vocab_size: int
    entity_vocab_size: int
    bos_token_id: int
    eos_token_id: int
    max_seq_length: int | None = None


class BadDataError(ValueError):
    """Shards or samples that break docs/FORMATS.md; the message starts with the shard URL."""


class BadSampleError(BadDataError):
    """A shard sample that breaks docs/FORMATS.md; the message names the shard, the key and the rule."""


class BadShardError(BadDataError):
    """A shard that cannot be read to its end; the message names the shard and what was expected."""


def decode_sample(raw: dict, kind: str, limits: SampleLimits) -> dict:
    """Raw tar members of a ``"text"`` or ``"fact"`` sample -> checked arrays (the only place
    samples are checked, so a skip policy can wrap it).

    Returns ``{"input_ids": (S,) int32, "mentions": (N, 3) int64, "lang"}`` for text,
    ``{"query_ids": (Lq,) int64, "object": int, "lang"}`` for facts; raises :class:`BadSampleError`.
    """
    def bad(message: str) -> BadSampleError:
        return BadSampleError(f"{raw.get('__url__', '?')}: sample {raw.get('__key__', '?')}: {message}")

    if "json" not in raw:
        raise bad(f"no 'json' member (members: {sorted(k for k in raw if not k.startswith('__'))})")
    try:
        meta = json.loads(raw["json"])
    except ValueError as error:
        raise bad(f"json member is not JSON ({error})") from None
    if not isinstance(meta, dict):
        raise bad("json member is not an object")
    if kind == "fact":
        query = meta.get("query_ids")
        if not isinstance(query, list) or not query or not all(isinstance(t, int) and 0 <= t < limits.vocab_size for t in query):
            raise bad(f"json \"query_ids\" must be a non-empty list of token ids below {limits.vocab_size}")
        for field in ("subject", "object"):
            value = meta.get(field)
            if not isinstance(value, int) or not 3 <= value < limits.entity_vocab_size:
                raise bad(f"json \"{field}\" is {value!r}, expected an entity index in 3..{limits.entity_vocab_size - 1}")
        return {"query_ids": np.asarray(query, dtype=np.int64), "object": meta["object"], "lang": meta.get("lang")}

    if "input_ids.npy" not in raw:
        raise bad("no 'input_ids.npy' member (expected input_ids.npy and json)")
    try:
        ids = np.load(io.BytesIO(raw["input_ids.npy"]), allow_pickle=False)
    except ValueError as error:
        raise bad(f"input_ids.npy is not a .npy array ({error})") from None
    longest = limits.max_seq_length or np.iinfo(np.int64).max
    if ids.dtype != np.int32 or ids.ndim != 1 or not 2 <= len(ids) <= longest:
        raise bad(f"input_ids is {ids.dtype} {ids.shape}, expected int32 (S,) with 2 <= S <= {limits.max_seq_length}")
    if ids[0] != limits.bos_token_id or ids[-1] != limits.eos_token_id:
        raise bad(f"input_ids must start with <s> ({limits.bos_token_id}) and end with </s> ({limits.eos_token_id})")
    if ids.min() < 0 or ids.max() >= limits.vocab_size:
        raise bad(f"token id {int(ids.max())} outside the tokenizer's {limits.vocab_size} ids")
    mentions = meta.get("mentions")
    if not isinstance(mentions, list) or not all(isinstance(m, list) and len(m) == 3 for m in mentions):
        raise bad("json \"mentions\" must be a list of [token_start, token_end_exclusive, entity_index]")
    mentions = np.asarray(mentions, dtype=np.int64).reshape(-1, 3)
    if len(mentions):
        starts, ends, entities = mentions.T
        if (starts < 1).any() or (ends > len(ids) - 1).any() or (starts >= ends).any():
            raise bad(f"a mention span lies outside the tokens 1..{len(ids) - 1}")
        if (entities <= PAD_ID).any() or (entities == MASK_ID).any() or (entities >= limits.entity_vocab_size).any():
            wrong = int(entities[(entities <= PAD_ID) | (entities == MASK_ID) | (entities >= limits.entity_vocab_size)][0])
            raise bad(f"entity index {wrong} in mentions, expected [UNK] (1) or 3..{limits.entity_vocab_size - 1} "
                      "(do the shards belong to this entity_vocab.jsonl?)")
    return {"input_ids": ids, "mentions": mentions, "lang": meta.get("lang")}


_EXPECTED = "expected a tar of samples as docs/FORMATS.md describes"
_CUT_SHORT = "expected the whole tar (was a copy or a write cut short?)"


def _shard_fault(error: Exception, samples: int) -> str:
    """What went wrong reading a shard, from the exception WebDataset or tarfile raised."""
    # WebDataset appends the stream and the URL to the error's arguments on the way out, and
    # tarfile's message may get " @ <stream>": the URL comes first in our message, so keep the text only.
    text = str(error.args[0]).split(" @ ")[0] if error.args else type(error).__name__
    if isinstance(error, tarfile.ReadError):
        if text == "empty file":
            return f"the shard is empty; {_EXPECTED}"
        if text == "unexpected end of data":
            return f"the shard is truncated: its tar ends inside a member after {samples} sample(s); {_CUT_SHORT}"
        return f"the shard is not a tar file ({text}); {_EXPECTED}"
    if isinstance(error, OSError):
        return f"cannot read the shard ({error.strerror or text}); {_EXPECTED}"
    return f"cannot read the shard as a tar ({type(error).__name__}: {text}); {_EXPECTED}"


# Exit statuses that are not a command's own failure: none (not a pipe:, or still running), success,
# and SIGPIPE (direct, or as a shell reports it), which our closing the pipe after a read error causes.
_NOT_FAILED = (None, 0, -signal.SIGPIPE, 128 + signal.SIGPIPE)


def _command_exit_status(source: dict, timeout: float = 30.0) -> int | None:
    """For a ``pipe:`` URL, close the pipe and wait for its command: the exit status, or None when
    the URL is no command or the command is still running after ``timeout`` seconds."""
    pipe = source.get("stream")
    if not isinstance(pipe, Pipe):
        return None
    pipe.stream.close()
    try:
        return pipe.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def _command_failed(status: int) -> str:
    return f"cannot read the shard: the command exited with status {status} (see its stderr); {_EXPECTED}"


def read_shard(url: str, expected_samples: int | None = None) -> Iterator[dict]:
    """Raw samples of one shard, in order (tar members as bytes, ``__key__``, ``__url__``).

    Raises :class:`BadShardError` where the shard cannot be read to its end, or at its end when it
    held fewer samples than ``expected_samples`` (the manifest's count, where the manifest lists it).
    """
    samples = 0
    source = {"url": url}  # webdataset's opener adds the open stream to it
    try:
        # One shard at a time rather than a handler= on a multi-shard pipeline: the handler is not
        # told which shard failed, and reading on in a broken tar stream only fails again.
        for raw in wds.tarfile_samples([source]):
            yield raw
            samples += 1
    except Exception as error:
        # The command's failure first: webdataset's pipe only polls its child on each read, so a
        # command that dies before writing may show as "empty" before its exit status is known.
        status = _command_exit_status(source)
        fault = _command_failed(status) if status not in _NOT_FAILED else _shard_fault(error, samples)
        raise BadShardError(f"{url}: {fault}") from error
    status = _command_exit_status(source)
    if status not in _NOT_FAILED:  # a whole tar (or one cut at a header) from a command that then failed
        raise BadShardError(f"{url}: {_command_failed(status)}")
    if expected_samples is not None and samples < expected_samples:
        raise BadShardError(f"{url}: the shard ends after {samples} sample(s), manifest.json lists {expected_samples}; {_CUT_SHORT}")


def shard_samples(shards: Iterable[dict], shard_sizes: dict[str, int], skip: bool) -> Iterator[dict]:
    """A WebDataset stage: the raw samples of each shard (``{"url": ...}`` items, as ``ResampledShards``
    yields them). With ``skip``, a bad shard is not raised but gives an item
    ``{"__url__", "__bad__": BadShardError, "__lost__": samples}`` after the samples read from it, so that
    it flows through the shuffle buffer like a sample and a replay meets it at the same place.
    ``__lost__`` is the manifest's count less the samples read (at least 1)."""
    for shard in shards:
        url, read = shard["url"], 0
        try:
            for raw in read_shard(url, shard_sizes.get(url)):
                read += 1
                yield raw
        except BadShardError as error:
            if not skip:
                raise
            yield {"__url__": url, "__bad__": error, "__lost__": max(1, shard_sizes.get(url, 0) - read)}


class BadDataTally:
    """The ``bad_samples`` policy of one training loader worker: decodes samples, and with ``skip``
    leaves out the bad ones (and bad-shard items of :func:`shard_samples`), warning about the first
    :data:`WARNINGS_SHOWN`, and raises :class:`BadDataError` once more than ``max_bad_fraction`` of
    the samples read (counted as at least :data:`MIN_SAMPLES`) were bad. Counting happens in the
    replay of a resumed run too, so the run fails, or not, where an uninterrupted one would."""

    def __init__(self, skip: bool, max_bad_fraction: float, limits: SampleLimits):
        self.skip, self.max_bad_fraction, self.limits = skip, max_bad_fraction, limits
        self.read = self.bad = self.since_last_batch = self.warned = 0

    def take(self, items: Iterator[dict], kind: str, count: int, *, replay: bool = False) -> list[dict]:
        """The next ``count`` good samples of ``items``, decoded. In a ``replay`` nothing is warned
        (the run before the resume did), and with ``fail`` nothing is decoded: a bad sample would
        have stopped that run, so the raw items are returned as they are."""
        rows: list[dict] = []
        while len(rows) < count:
            raw = next(items)
            if "__bad__" in raw:
                self._count_bad(raw["__bad__"], raw["__lost__"], warn=not replay)
                continue
            if replay and not self.skip:
                rows.append(raw)
                continue
            try:
                rows.append(decode_sample(raw, kind, self.limits))
            except BadSampleError as error:
                if not self.skip:
                    raise
                self._count_bad(error, 1, warn=not replay)
                continue
            self.read += 1
        return rows

    def pop_batch_count(self) -> int:
        """Bad samples counted since the previous call (the previous batch of this worker)."""
        count, self.since_last_batch = self.since_last_batch, 0
        return count

    def _count_bad(self, error: BadDataError, samples: int, warn: bool) -> None:
        self.read += samples
        self.bad += samples
        self.since_last_batch += samples
        summary = f"{self.bad} of {self.read} samples read by this loader worker were bad"
        if self.bad > self.max_bad_fraction * max(self.read, MIN_SAMPLES):
            raise BadDataError(f"{error}\n{summary}: more than data.max_bad_fraction={self.max_bad_fraction} "
                               f"(of at least {MIN_SAMPLES}), so training stops") from error
        if warn and self.warned < WARNINGS_SHOWN:
            self.warned += 1
            rest = "; further ones are counted in train/bad_samples, not shown" if self.warned == WARNINGS_SHOWN else ""
            warnings.warn(f"{error}\nskipped ({summary}{rest})", stacklevel=2)

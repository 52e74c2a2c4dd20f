"""The training and evaluation streams behind KnowledgeDataModule: which samples each rank and
loader worker reads, in which order, and how a resumed run continues exactly.

- Training reads *resampled* shards (``wds.ResampledShards``): an endless stream per rank, so every
  rank makes the same number of steps whatever the shard counts (no DDP hang) and the run's length
  is the Trainer's ``max_steps``. Ranks own disjoint shards (``shards[rank::world_size]``, when
  there are at least as many shards as ranks), so no two ranks train on the same sample; within a
  rank, each lane draws its own shard sequence and shuffle order by seed.
- The stream is cut into ``lanes``, one per loader worker, and global batch ``g`` comes from lane
  ``g % lanes``, as the DataLoader takes batches from its workers in turn. Each batch's masks are
  drawn from a generator seeded by (seed, rank, g). The checkpoint stores how many batches the
  trainer consumed; a resumed run replays each lane's raw samples to that point without masking
  them, so no sample is repeated or skipped.
- With ``text_languages`` (``language_sampling_alpha`` below 1), text rows are drawn by language
  (``language_sampling.py``): one resampled stream per language, each of this rank's share of the
  shards holding that language, and a seeded pick of each row's language.
- With ``alternate`` (``task_mixing: alternating``), even global batches hold only text rows and odd
  ones only facts, so all ranks train the same task at each step.
- Training skips bad samples (``checks.py``) by default; the replay of a resumed run decodes its
  samples too, so that it skips the same ones and counts the same share of bad ones.
- Validation is finite and deterministic: each rank reads a disjoint slice of the val shards in
  order, and masks are seeded by the batch's position.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from lightning_kg.data.checks import BadDataTally, SampleLimits, decode_sample, shard_samples
from lightning_kg.data.language_sampling import mixed_by_language, of_language
from lightning_kg.data.loader_signals import MainProcessSignalsLoader
from lightning_kg.data.masking import Collator


def _derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


class TrainStream(IterableDataset):
    """Endless batches for one rank (see the module docstring for lanes and resume).

    ``start`` is the global number of the first batch to yield; the loader sets it at each
    ``iter()`` from the trainer's progress, so a new epoch or a resumed run continues the stream.
    ``text_languages``: language -> (this rank's shards holding it, sampling probability), or None
    to read ``text_urls`` in the data's own mix.
    """

    def __init__(self, text_urls: list[str], fact_urls: list[str], collator: Collator, limits: SampleLimits,
                 batch_size: int, fact_batch_size: int, shuffle_buffer: int, seed: int, rank: int, lanes: int,
                 shard_sizes: dict[str, int], skip_bad: bool, max_bad_fraction: float, alternate: bool = False,
                 text_languages: dict[str, tuple[list[str], float]] | None = None):
        self.text_urls, self.fact_urls, self.collator, self.limits = text_urls, fact_urls, collator, limits
        self.batch_size, self.fact_batch_size, self.shuffle_buffer = batch_size, fact_batch_size, shuffle_buffer
        self.seed, self.rank, self.lanes, self.start, self.alternate = seed, rank, lanes, 0, alternate
        self.shard_sizes, self.skip_bad, self.max_bad_fraction = shard_sizes, skip_bad, max_bad_fraction
        self.text_languages = text_languages

    def _raw_samples(self, urls: list[str], seed: int) -> Iterator[dict]:
        stages = [wds.ResampledShards(urls, seed=seed, deterministic=True, worker_seed=lambda: 0),
                  lambda shards: shard_samples(shards, self.shard_sizes, self.skip_bad)]
        if self.shuffle_buffer > 1:
            stages.append(wds.shuffle(self.shuffle_buffer, initial=min(100, self.shuffle_buffer), seed=seed))
        return iter(wds.DataPipeline(*stages))

    def text_samples(self, lane: int) -> Iterator[dict]:
        """Lane ``lane``'s endless raw text samples, in the data's mix or drawn by language."""
        if not self.text_languages:
            return self._raw_samples(self.text_urls, _derived_seed(self.seed, self.rank, lane, 0))
        streams = {lang: of_language(self._raw_samples(urls, _derived_seed(self.seed, self.rank, lane, 0, number + 1)), lang)
                   for number, (lang, (urls, _)) in enumerate(sorted(self.text_languages.items()))}
        probabilities = {lang: probability for lang, (_, probability) in self.text_languages.items()}
        return mixed_by_language(streams, probabilities, _derived_seed(self.seed, self.rank, lane, 2))

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        if workers != self.lanes:
            raise RuntimeError(f"the stream has {self.lanes} lanes but the loader runs {workers} workers")
        first = self.start + worker  # this worker yields batches first, first + lanes, ...
        lane = first % self.lanes
        texts = self.text_samples(lane)
        facts = self._raw_samples(self.fact_urls, _derived_seed(self.seed, self.rank, lane, 1)) if self.fact_urls else None
        tally = BadDataTally(self.skip_bad, self.max_bad_fraction, self.limits)
        number = lane  # global number of the lane's next batch
        while True:
            replay = number < first  # consumed before a resume: read (and checked, to skip alike), never masked
            text_turn = not (self.alternate and facts) or number % 2 == 0  # alternating: text on even, facts on odd
            texts_in = tally.take(texts, "text", self.batch_size, replay=replay) if text_turn else []
            facts_in = tally.take(facts, "fact", self.fact_batch_size, replay=replay) if facts and not (self.alternate and text_turn) else []
            bad_samples = tally.pop_batch_count()
            if not replay:
                batch = self.collator(texts_in, facts_in, np.random.default_rng([self.seed, self.rank, number]))
                # Last, so that Lightning's batch-size guess still reads input_ids.
                batch["bad_samples"] = torch.tensor(bad_samples, dtype=torch.int64)
                yield batch
            number += self.lanes


def rank_shards(urls: list[str], rank: int, world_size: int) -> list[str]:
    """The training shards this rank resamples from: its own ``rank::world_size`` share, or all of
    them (with a warning) when there are fewer shards than ranks."""
    if len(urls) >= world_size:
        return urls[rank::world_size]
    if urls and rank == 0:
        warnings.warn(f"{len(urls)} shard(s) for {world_size} ranks: every rank resamples all of them, so ranks may "
                      f"see the same samples; write at least {world_size} shards (prepare's shard_max_samples)", stacklevel=2)
    return urls


def _rank_slice(urls: list[str], rank: int, world_size: int, kind: str, limits: SampleLimits,
                shard_sizes: dict[str, int]) -> Iterator[dict]:
    """This rank's decoded samples of ``urls``, in order: whole shards ``rank::world_size`` when every
    rank gets one, else every ``world_size``-th sample of all shards. The first bad shard or sample raises."""
    by_shard = len(urls) >= world_size
    shards = [{"url": url} for url in (urls[rank::world_size] if by_shard else urls)]
    for number, raw in enumerate(shard_samples(shards, shard_sizes, skip=False)):
        if by_shard or number % world_size == rank:
            yield decode_sample(raw, kind, limits)


def slice_sizes(sizes: list[int], world_size: int) -> list[int]:
    """Samples in each rank's slice (as :func:`_rank_slice` cuts it) of shards of ``sizes`` samples."""
    if len(sizes) >= world_size:
        return [sum(sizes[rank::world_size]) for rank in range(world_size)]
    return [len(range(rank, sum(sizes), world_size)) for rank in range(world_size)]


class EvalStream(IterableDataset):
    """``max_batches`` deterministic batches (all of them when None) of this rank's slice of the
    evaluation text shards, read in order, and once only unless ``repeat`` (then the slice is read
    again until ``max_batches``); facts from this rank's slice of the fact shards are cycled so that
    every batch has some."""

    def __init__(self, text_urls: list[str], fact_urls: list[str], collator: Collator, limits: SampleLimits,
                 batch_size: int, fact_batch_size: int, seed: int, rank: int, world_size: int, max_batches: int | None,
                 shard_sizes: dict[str, int], repeat: bool = False):
        self.text_urls, self.fact_urls, self.collator, self.limits = text_urls, fact_urls, collator, limits
        self.batch_size, self.fact_batch_size, self.seed = batch_size, fact_batch_size, seed
        self.rank, self.world_size, self.max_batches, self.shard_sizes = rank, world_size, max_batches, shard_sizes
        self.repeat = repeat

    def _cycle(self, urls: list[str], kind: str) -> Iterator[dict]:
        while urls:
            empty = True
            for sample in _rank_slice(urls, self.rank, self.world_size, kind, self.limits, self.shard_sizes):
                empty = False
                yield sample
            if empty and kind == "fact":
                return  # batches without facts: oe is then not evaluated on this rank
            if empty:
                raise ValueError(f"rank {self.rank} has no {kind} sample among {len(urls)} shard(s) to evaluate on "
                                 f"(its slice of {urls[0]}, ...); write more shards, or use fewer ranks")

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        if info is not None and info.num_workers > 1:
            raise RuntimeError("an evaluation stream runs in one loader worker at most")
        texts = (self._cycle(self.text_urls, "text") if self.repeat
                 else _rank_slice(self.text_urls, self.rank, self.world_size, "text", self.limits, self.shard_sizes))
        facts = self._cycle(self.fact_urls, "fact")
        number = 0
        while self.max_batches is None or number < self.max_batches:
            text_batch = [sample for _, sample in zip(range(self.batch_size), texts)]
            if not text_batch:
                return
            fact_batch = [fact for _, fact in zip(range(self.fact_batch_size), facts)]
            # A seed apart from training's (which has no negative part), so val masks differ from train's.
            yield self.collator(text_batch, fact_batch, np.random.default_rng([self.seed, self.rank, number, 1 << 31]))
            number += 1


class TrainLoader(MainProcessSignalsLoader):
    """A DataLoader that tells its stream where to start each time an iterator is made (its workers
    leave the stop signals to the main process, ``loader_signals.py``)."""

    def __init__(self, dataset: TrainStream, position: Callable[[], int], **options):
        super().__init__(dataset, **options)
        self.position = position

    def __iter__(self):
        # Workers receive a pickled copy of the dataset when the iterator is made, so set it first.
        self.dataset.start = self.position()
        return super().__iter__()

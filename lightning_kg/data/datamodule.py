"""The streaming DataModule: WebDataset shards -> masked batches of text rows and facts.

Design choices, each for a reason:
- Training reads *resampled* shards (``wds.ResampledShards``): an endless stream per rank, so every
  rank makes the same number of steps whatever the shard counts (no DDP hang) and the run's length
  is the Trainer's ``max_steps``.
- Every batch holds text rows *and* facts. XLM-K alternates single-task batches; mixing keeps each
  optimiser step balanced across the four objectives and needs no task scheduler.
- The stream is cut into ``lanes`` (one per loader worker), each seeded by (seed, rank, lane), and
  batch ``g`` comes from lane ``g % lanes``. The checkpoint stores how many batches the trainer
  consumed; a resumed run replays each lane to that point, so no sample is repeated or skipped.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from lightning_kg.data.knowledge import KnowledgeTable
from lightning_kg.data.masking import Collator
from lightning_kg.data.tokenizer import load_tokenizer


def decode_text_sample(raw: dict, vocab_size: int, entity_vocab_size: int) -> dict:
    """Raw tar members -> arrays, checked; errors name the shard, the sample and what was expected."""
    where = f"{raw.get('__url__', '?')}: sample {raw.get('__key__', '?')}"
    for member in ("input_ids.npy", "json"):
        if member not in raw:
            raise ValueError(f"{where}: no '{member}' member (expected input_ids.npy and json)")
    ids = np.load(io.BytesIO(raw["input_ids.npy"]), allow_pickle=False)
    meta = json.loads(raw["json"])
    if not isinstance(meta.get("mentions"), list):
        raise ValueError(f"{where}: json has no \"mentions\" list (expected [[token_start, token_end, entity], ...])")
    mentions = np.asarray(meta["mentions"], dtype=np.int64).reshape(-1, 3) if meta["mentions"] else np.zeros((0, 3), np.int64)
    if ids.dtype != np.int32 or ids.ndim != 1 or len(ids) < 2:
        raise ValueError(f"{where}: input_ids is {ids.dtype} {ids.shape}, expected int32 (S,) with S >= 2")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"{where}: token id {int(ids.max())} outside the tokenizer's {vocab_size} ids")
    if len(mentions):
        if (mentions[:, 0] < 1).any() or (mentions[:, 1] > len(ids) - 1).any() or (mentions[:, 0] >= mentions[:, 1]).any():
            raise ValueError(f"{where}: a mention span lies outside the tokens 1..{len(ids) - 1}")
        if np.isin(mentions[:, 2], (0, 2)).any():
            raise ValueError(f"{where}: entity index 0 ([PAD]) or 2 ([MASK]) in mentions; shards hold real entities only")
        if mentions[:, 2].max() >= entity_vocab_size or mentions[:, 2].min() < 0:
            raise ValueError(f"{where}: entity index {int(mentions[:, 2].max())} outside the entity vocabulary "
                             f"of {entity_vocab_size}; do the shards belong to this entity_vocab.jsonl?")
    return {"input_ids": ids, "mentions": mentions, "lang": meta.get("lang")}


def decode_fact_sample(raw: dict, entity_vocab_size: int) -> dict:
    where = f"{raw.get('__url__', '?')}: sample {raw.get('__key__', '?')}"
    if "json" not in raw:
        raise ValueError(f"{where}: no 'json' member")
    meta = json.loads(raw["json"])
    if not isinstance(meta.get("query_ids"), list) or not meta["query_ids"]:
        raise ValueError(f"{where}: json has no \"query_ids\" list of token ids")
    if not 0 <= int(meta.get("object", -1)) < entity_vocab_size:
        raise ValueError(f"{where}: object {meta.get('object')} outside the entity vocabulary of {entity_vocab_size}")
    return {"query_ids": np.asarray(meta["query_ids"], dtype=np.int64), "object": int(meta["object"]),
            "lang": meta.get("lang")}


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class TrainStream(IterableDataset):
    """Endless batches for one rank; see the module docstring for lanes and resume."""

    def __init__(self, text_urls: list[str], fact_urls: list[str], collator: Collator, batch_size: int,
                 fact_batch_size: int, shuffle_buffer: int, seed: int, lanes: int, consumed: int,
                 vocab_size: int, entity_vocab_size: int):
        self.__dict__.update(locals())
        del self.__dict__["self"]

    def _samples(self, urls: list[str], seed: int) -> Iterator[dict]:
        if not urls:
            while True:
                yield None
        pipeline = wds.DataPipeline(
            wds.ResampledShards(urls, seed=seed, deterministic=True, worker_seed=lambda: 0),
            wds.tarfile_to_samples(),
            wds.shuffle(self.shuffle_buffer, initial=min(100, self.shuffle_buffer), seed=seed),
        )
        yield from pipeline

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        if workers != self.lanes:
            raise RuntimeError(f"the stream has {self.lanes} lanes but the loader runs {workers} workers")
        rank, _ = _rank_and_world()
        # This worker serves global batches consumed + worker, consumed + worker + lanes, ...
        first = self.consumed + worker
        lane = first % self.lanes
        lane_seed = self.seed * 1_000_003 + rank * 1009 + lane
        texts, facts = self._samples(self.text_urls, lane_seed), self._samples(self.fact_urls, lane_seed + 7)
        batch_number = lane  # global batch index of the lane's next batch
        while True:
            text_raw = [next(texts) for _ in range(self.batch_size)]
            fact_raw = [next(facts) for _ in range(self.fact_batch_size)]
            if batch_number >= first:
                decoded_texts = [decode_text_sample(r, self.vocab_size, self.entity_vocab_size) for r in text_raw]
                decoded_facts = [decode_fact_sample(r, self.entity_vocab_size) for r in fact_raw if r is not None]
                rng = np.random.default_rng([self.seed, rank, batch_number])
                yield self.collator(decoded_texts, decoded_facts, rng)
            batch_number += self.lanes


class EvalStream(IterableDataset):
    """One finite, deterministic pass over this rank's slice of the evaluation shards."""

    def __init__(self, text_urls: list[str], fact_urls: list[str], collator: Collator, batch_size: int,
                 fact_batch_size: int, seed: int, vocab_size: int, entity_vocab_size: int):
        self.__dict__.update(locals())
        del self.__dict__["self"]

    def __iter__(self) -> Iterator[dict]:
        if not self.text_urls:
            return
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        rank, world = _rank_and_world()
        slot, slots = rank * workers + worker, world * workers
        # Whole shards per rank and worker where there are enough; else samples dealt round-robin.
        by_shard = len(self.text_urls) >= slots
        text_urls = self.text_urls[slot::slots] if by_shard else self.text_urls
        texts = (r for i, r in enumerate(wds.DataPipeline(wds.SimpleShardList(text_urls), wds.tarfile_to_samples()))
                 if by_shard or i % slots == slot)
        fact_list = [decode_fact_sample(r, self.entity_vocab_size)
                     for r in wds.DataPipeline(wds.SimpleShardList(self.fact_urls), wds.tarfile_to_samples())] if self.fact_urls else []
        fact_list = fact_list[slot::slots] or fact_list
        batch_number, fact_cursor = 0, 0
        while True:
            raw = [r for _, r in zip(range(self.batch_size), texts)]
            if not raw:
                return
            facts = []
            for _ in range(min(self.fact_batch_size, len(fact_list))):
                facts.append(fact_list[fact_cursor % len(fact_list)])
                fact_cursor += 1
            rng = np.random.default_rng([self.seed, 1 << 20, slot, batch_number])
            yield self.collator([decode_text_sample(r, self.vocab_size, self.entity_vocab_size) for r in raw], facts, rng)
            batch_number += 1


def expand_urls(spec: str | list[str], base: Path) -> list[str]:
    """A WebDataset URL spec: brace patterns, ``pipe:`` commands, globs, relative paths under ``base``."""
    specs = [spec] if isinstance(spec, str) else list(spec)
    urls: list[str] = []
    for item in specs:
        for url in wds.shardlists.expand_urls(item):
            if url.startswith("pipe:") or "://" in url:
                urls.append(url)
                continue
            path = Path(url) if Path(url).is_absolute() else base / url
            matches = sorted(path.parent.glob(path.name)) if any(c in path.name for c in "*?[") else [path]
            missing = [m for m in matches if not m.exists()]
            if not matches or missing:
                raise FileNotFoundError(f"shard not found: {missing[0] if missing else path}")
            urls.extend(str(m) for m in matches)
    return urls


class KnowledgeDataModule(L.LightningDataModule):
    def __init__(
        self,
        data_dir: str = "shards/demo",
        train_shards: str | list[str] | None = None,
        val_shards: str | list[str] | None = None,
        train_fact_shards: str | list[str] | None = None,
        val_fact_shards: str | list[str] | None = None,
        batch_size: int = 16,
        fact_batch_size: int = 16,
        mlm_probability: float = 0.15,
        entity_mask_probability: float = 0.15,
        whole_mention_masking: bool = True,
        knowledge_language: str = "any",
        knowledge_max_length: int = 32,
        max_entities: int = 32,
        shuffle_buffer: int = 1000,
        num_workers: int = 2,
        pin_memory: bool = False,
        prefetch_factor: int | None = 2,
        seed: int = 0,
    ):
        """
        Args:
            data_dir: Prepared dataset (manifest.json, tokenizer/, entity_vocab.jsonl, knowledge/).
            train_shards: Text shards for training as a WebDataset URL spec (paths, globs, brace patterns
                ``train-{000000..000099}.tar``, ``pipe:aws s3 cp s3://bucket/train-000000.tar -``); None: the manifest's.
            val_shards: Text shards for validation, as ``train_shards``; None: the manifest's.
            train_fact_shards: Object Entailment shards for training; None: the manifest's.
            val_fact_shards: Object Entailment shards for validation; None: the manifest's.
            batch_size: Text rows per batch (per device).
            fact_batch_size: Facts per batch (per device), for ``oe``.
            mlm_probability: Share of word tokens predicted by ``mlm`` (80% <mask>, 10% random, 10% kept).
            entity_mask_probability: Share of a row's entities masked for ``mep_vocab`` (at least one).
            whole_mention_masking: Mask a mention's word tokens all or nothing.
            knowledge_language: Language of the knowledge text paired with a mention or object: ``any``
                (a random language the entity has: ties languages together) or ``same`` (the text's, when present).
            knowledge_max_length: Tokens per knowledge text.
            max_entities: Entity slots per text row at most.
            shuffle_buffer: Samples in the training shuffle buffer.
            num_workers: Loader processes; a resumed run must use the same number.
            pin_memory: Pin batches in page-locked memory (GPU runs).
            prefetch_factor: Batches each worker prepares ahead (None with 0 workers).
            seed: Seed of shard sampling, shuffling and masking.
        """
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        manifest_path = self.data_dir / "manifest.json"
        if not manifest_path.exists():
            raise FileNotFoundError(f"data.data_dir: {manifest_path} not found. Prepare a dataset with "
                                    "`python -m lightning_kg prepare`, or run from the repository root for shards/demo.")
        self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        self.tokenizer = load_tokenizer(self.data_dir / "tokenizer")
        with open(self.data_dir / "entity_vocab.jsonl", encoding="utf-8") as lines:
            self.entity_vocab_size = sum(1 for _ in lines)
        self.knowledge = KnowledgeTable.load(self.data_dir)
        self.consumed_batches = 0

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @property
    def pad_token_id(self) -> int:
        return self.tokenizer.pad_token_id

    @property
    def mask_token_id(self) -> int:
        return self.tokenizer.mask_token_id

    def _urls(self, override, split: str) -> list[str]:
        if override is not None:
            return expand_urls(override, self.data_dir)
        return [str(self.data_dir / shard["name"]) for shard in self.manifest["shards"].get(split, []) if shard["samples"]]

    def collator(self) -> Collator:
        h = self.hparams
        return Collator(
            pad_token_id=self.pad_token_id, mask_token_id=self.mask_token_id, vocab_size=self.vocab_size,
            special_token_ids=tuple(self.tokenizer.all_special_ids), knowledge=self.knowledge,
            mlm_probability=h.mlm_probability, entity_mask_probability=h.entity_mask_probability,
            whole_mention_masking=h.whole_mention_masking, knowledge_language=h.knowledge_language,
            max_entities=h.max_entities, knowledge_max_length=h.knowledge_max_length,
        )

    def _loader(self, dataset: IterableDataset, workers: int) -> DataLoader:
        # An own generator: creating the loader's iterator must not draw from the global RNG, or a
        # resumed run (which creates it after restoring RNG states) would drift from a straight one.
        return DataLoader(dataset, batch_size=None, num_workers=workers, pin_memory=self.hparams.pin_memory,
                          prefetch_factor=self.hparams.prefetch_factor if workers else None,
                          persistent_workers=False, generator=torch.Generator().manual_seed(self.hparams.seed))

    def train_dataloader(self) -> DataLoader:
        h = self.hparams
        text_urls = self._urls(h.train_shards, "train")
        if not text_urls:
            raise ValueError(f"no training text shard in {self.data_dir} (manifest lists none with samples)")
        lanes = max(1, h.num_workers)
        resumed = getattr(self, "_resumed_lanes", lanes)
        if resumed != lanes:
            # Checked here, not on load: validating or testing a checkpoint may use any worker count.
            raise ValueError(f"the checkpoint's data stream ran {resumed} loader lane(s); resume with "
                             f"--data.num_workers {resumed if resumed > 1 else 0} to continue it exactly")
        stream = TrainStream(text_urls, self._urls(h.train_fact_shards, "facts-train"), self.collator(),
                             h.batch_size, h.fact_batch_size, h.shuffle_buffer, h.seed, lanes,
                             self.consumed_batches, self.vocab_size, self.entity_vocab_size)
        return self._loader(stream, h.num_workers)

    def _eval_loader(self, text_split: str, fact_split: str, text_override, fact_override) -> DataLoader:
        h = self.hparams
        stream = EvalStream(self._urls(text_override, text_split), self._urls(fact_override, fact_split), self.collator(),
                            h.batch_size, h.fact_batch_size, h.seed, self.vocab_size, self.entity_vocab_size)
        return self._loader(stream, min(h.num_workers, 1))

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val", "facts-val", self.hparams.val_shards, self.hparams.val_fact_shards)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    # Lightning stores this in checkpoints and gives it back before the loaders are built.
    def state_dict(self) -> dict:
        consumed = self.consumed_batches
        if self.trainer is not None:
            consumed = self.trainer.fit_loop.epoch_loop.batch_progress.total.processed
        return {"consumed_batches": int(consumed), "lanes": max(1, self.hparams.num_workers), "seed": self.hparams.seed}

    def load_state_dict(self, state: dict) -> None:
        self.consumed_batches = int(state["consumed_batches"])
        self._resumed_lanes = int(state.get("lanes", max(1, self.hparams.num_workers)))

"""The streaming DataModule: WebDataset shards -> masked batches of text rows and facts.

Design choices, each for a reason (how the streams read, resume and split across ranks: streams.py):
- By default every batch holds text rows *and* facts: each optimiser step is balanced across the
  four objectives and needs no task scheduler. ``task_mixing: alternating`` gives XLM-K's
  single-task batches instead (bench/task_mixing.py measures the two).
- Bad shards and samples (``checks.py``) stop validation at once. Training skips them by default,
  counting and warning, and fills each batch from the next good samples.
- Every rank runs the same number of validation batches (the fewest any rank's slice holds, from
  the manifest's counts), or DDP and ZeRO-3 would hang.
- ``language_sampling_alpha`` below 1 draws text rows by language, p_l ~ n_l^alpha from the
  manifest's per-shard counts (``language_sampling.py``); the mix is printed at start.
- Loader workers ignore the stop signals (``loader_signals.py``): a signal to the whole process
  group must reach the main process only, which saves and stops.
- Only what the model's active objectives read is built (``objectives``): no knowledge texts
  without ``mep_contrastive``, no facts read at all without ``oe``.
"""

from __future__ import annotations

import json
import os
import warnings
from functools import cached_property
from pathlib import Path
from typing import Literal

import lightning as L
import torch
import webdataset as wds
from torch.utils.data import DataLoader

from lightning_kg.data.checks import SampleLimits
from lightning_kg.data.language_sampling import TABLE_FILE, sampling_probabilities, sampling_table, shard_language_counts
from lightning_kg.data.loader_signals import MainProcessSignalsLoader, stop_signals
from lightning_kg.data.masking import Collator
from lightning_kg.data.streams import EvalStream, TrainLoader, TrainStream, rank_shards, slice_sizes
from lightning_kg.dataset.files import write_text
from lightning_kg.dataset.format import OBJECTIVES
from lightning_kg.dataset.knowledge import KnowledgeTable
from lightning_kg.dataset.manifest import check_checkpoint, check_files, check_shards
from lightning_kg.dataset.tokenizer import load_tokenizer
from lightning_kg.lightning_private import batches_processed, cluster_environment
from lightning_kg.paths import find_path


def expand_urls(spec: str | list[str], base: Path) -> list[str]:
    """A WebDataset URL spec: brace patterns, ``pipe:`` commands, ``scheme://`` URLs, globs, and
    paths relative to ``base``; local files must exist."""
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
    """Text rows and facts from a prepared dataset directory, for training and validation.

    Each batch holds ``batch_size`` text rows and up to ``fact_batch_size`` facts (those whose
    object has a knowledge text), or, with ``task_mixing: alternating``, one of the two in turn.
    The stream position is saved in checkpoints (``state_dict``) and resumed exactly.
    """

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
        knowledge_max_length: int = 32,
        knowledge_language: str = "any",
        max_entities: int = 32,
        shuffle_buffer: int = 1000,
        num_workers: int = 2,
        pin_memory: bool = False,
        prefetch_factor: int | None = 2,
        seed: int = 0,
        val_batches: int | None = None,
        allow_mismatch: bool = False,
        bad_samples: Literal["fail", "skip"] = "skip",
        max_bad_fraction: float = 0.01,
        task_mixing: Literal["mixed", "alternating"] = "mixed",
        language_sampling_alpha: float = 1.0,
        objectives: list[str] = list(OBJECTIVES),  # noqa: B006 - never mutated
    ):
        """
        Args:
            data_dir: Prepared dataset (manifest.json, tokenizer/, entity_vocab.jsonl, knowledge/, shards).
            train_shards: Text shards for training as a WebDataset URL spec: paths (relative to data_dir or
                absolute), globs, brace patterns ``train-{000000..000099}.tar``, commands
                ``pipe:aws s3 cp s3://bucket/train-000000.tar -``; None: the manifest's.
            val_shards: Text shards for validation, as train_shards; None: the manifest's.
            train_fact_shards: Object Entailment shards for training, as train_shards; None: the manifest's.
            val_fact_shards: Object Entailment shards for validation, as train_shards; None: the manifest's.
            batch_size: Text rows per batch (per device).
            fact_batch_size: Facts per batch (per device), for ``oe``.
            mlm_probability: Share of word tokens predicted by ``mlm`` (80% <mask>, 10% random, 10% kept).
            entity_mask_probability: Share of a row's known entities masked for ``mep_vocab`` (at least one).
            whole_mention_masking: Mask a mention's word tokens all or nothing.
            knowledge_max_length: Tokens kept of each knowledge text (and fact query).
            knowledge_language: Language of the knowledge text paired with a mention or fact object: ``any``
                (a random language the entity has: ties languages together) or ``same`` (the sample's, when present).
            max_entities: Entity slots (mentions) per text row at most.
            shuffle_buffer: Samples in each training worker's shuffle buffer.
            num_workers: Loader processes; a resumed run must use the same number.
            pin_memory: Pin batches in page-locked memory (GPU runs).
            prefetch_factor: Batches each worker prepares ahead (ignored with 0 workers).
            seed: Seed of shard sampling, shuffling and masking.
            val_batches: Validation batches per rank at most; None: the rank's whole slice.
            allow_mismatch: Go on (with a warning) when the tokenizer, entity vocabulary or knowledge
                table do not hash as manifest.json records, or a resumed checkpoint was trained on
                another dataset; by default both stop the run at start-up.
            bad_samples: What training does with a shard or sample that breaks docs/FORMATS.md (missing,
                empty, truncated or not a tar; a member missing, of the wrong dtype or length, an entity
                outside the vocabulary): ``fail``, or ``skip`` it with a warning naming the shard, the key
                and the rule, counted in ``train/bad_samples``. Validation always fails.
            max_bad_fraction: With ``skip``, training fails once more than this share of the samples a
                loader worker read (counted as at least 100) were bad; an unreadable shard counts as the
                samples the manifest lists for it.
            task_mixing: ``mixed``: every training batch holds ``batch_size`` text rows and up to
                ``fact_batch_size`` facts; ``alternating``: XLM-K's single-task batches, text rows only
                and facts only in turn (one optimiser step each). Evaluation batches are always mixed.
            language_sampling_alpha: Training text rows of language l are drawn with probability proportional
                to n_l^alpha, n_l its samples in the train shards (manifest.json's counts): 1.0 reads the data
                as it is; XLM-R 0.3, mLUKE 0.7 read small languages more often. Facts are mixed as they are.
                The start of a run prints the mix and writes it to the run directory (language_sampling.md).
            objectives: The objectives the model trains; the CLI sets it from the model's weights. Only
                what they read is built: entity masks for ``mep_vocab`` and ``mep_contrastive``, knowledge
                texts of masked mentions for ``mep_contrastive``, facts (not even read) for ``oe``.
        """
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = find_path(data_dir)
        self.hparams.data_dir = str(self.data_dir)  # as found, so a checkpoint's export finds it from anywhere
        if not (self.data_dir / "manifest.json").exists():
            raise FileNotFoundError(f"data.data_dir: {self.data_dir / 'manifest.json'} not found. Prepare a dataset with "
                                    "`python -m lightning_kg prepare`.")
        unknown = set(objectives) - set(OBJECTIVES)
        if unknown:
            raise ValueError(f"data.objectives has {sorted(unknown)}, expected some of mlm, mep_vocab, mep_contrastive, oe")
        if knowledge_language not in ("any", "same"):
            raise ValueError(f"data.knowledge_language is {knowledge_language!r}, expected 'any' or 'same'")
        if task_mixing not in ("mixed", "alternating"):
            raise ValueError(f"data.task_mixing is {task_mixing!r}, expected 'mixed' or 'alternating'")
        if bad_samples not in ("fail", "skip"):
            raise ValueError(f"data.bad_samples is {bad_samples!r}, expected 'fail' or 'skip'")
        if not 0 <= language_sampling_alpha <= 1:
            raise ValueError(f"data.language_sampling_alpha is {language_sampling_alpha}, expected a value in [0, 1] "
                             "(1: as in the data, XLM-R 0.3, mLUKE 0.7)")
        if not 0 <= max_bad_fraction < 1:  # 1 would let a stream of nothing but bad shards run forever
            raise ValueError(f"data.max_bad_fraction is {max_bad_fraction}, expected a share in [0, 1)")
        self._restored_position = 0
        self._restored_lanes: int | None = None

    @cached_property
    def manifest(self) -> dict:
        """``manifest.json`` of the dataset."""
        return json.loads((self.data_dir / "manifest.json").read_text(encoding="utf-8"))

    @cached_property
    def tokenizer(self):
        """The dataset's Hugging Face tokenizer (``<dataset>/tokenizer``)."""
        return load_tokenizer(self.data_dir / "tokenizer")

    @cached_property
    def entity_vocab_size(self) -> int:
        """Lines of ``entity_vocab.jsonl``, [PAD], [UNK] and [MASK] included."""
        with open(self.data_dir / "entity_vocab.jsonl", encoding="utf-8") as lines:
            return sum(1 for _ in lines)

    @cached_property
    def knowledge(self) -> KnowledgeTable:
        return KnowledgeTable.load(self.data_dir)

    @property
    def languages(self) -> list[str]:
        """The dataset's languages (manifest.json), the order of a batch's ``text_language_ids``."""
        return list(self.manifest.get("languages", []))

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @property
    def pad_token_id(self) -> int:
        return self.tokenizer.pad_token_id

    @property
    def mask_token_id(self) -> int:
        return self.tokenizer.mask_token_id

    @property
    def limits(self) -> SampleLimits:
        return SampleLimits(self.vocab_size, self.entity_vocab_size, self.tokenizer.cls_token_id,
                            self.tokenizer.sep_token_id, self.manifest.get("config", {}).get("max_seq_length"))

    def _active(self, objective: str) -> bool:
        return objective in self.hparams.objectives

    def collator(self) -> Collator:
        h = self.hparams
        needs_knowledge = self._active("mep_contrastive") or self._active("oe")
        return Collator(
            pad_token_id=self.pad_token_id, mask_token_id=self.mask_token_id, vocab_size=self.vocab_size,
            special_token_ids=tuple(self.tokenizer.all_special_ids), knowledge=self.knowledge if needs_knowledge else None,
            mlm_probability=h.mlm_probability, entity_mask_probability=h.entity_mask_probability,
            whole_mention_masking=h.whole_mention_masking, knowledge_language=h.knowledge_language,
            max_entities=h.max_entities, knowledge_max_length=h.knowledge_max_length,
            entity_masking=self._active("mep_vocab") or self._active("mep_contrastive"),
            mention_knowledge=self._active("mep_contrastive"), facts=self._active("oe"), languages=tuple(self.languages),
        )

    def _urls(self, override: str | list[str] | None, split: str) -> list[str]:
        if split.startswith("facts") and not self._active("oe"):
            return []  # facts feed oe only
        if override is not None:
            return expand_urls(override, self.data_dir)
        return [str(self.data_dir / shard["name"]) for shard in self.manifest.get("shards", {}).get(split, []) if shard["samples"]]

    def _shard_sizes(self, urls: list[str]) -> dict[str, int]:
        """The manifest's sample count of each of ``urls`` that is a shard of this dataset, by URL
        (a ``pipe:`` or remote URL has none), to tell a truncated shard from a short one."""
        listed = {os.path.abspath(self.data_dir / shard["name"]): shard["samples"]
                  for shards in self.manifest.get("shards", {}).values() for shard in shards}
        return {url: listed[os.path.abspath(url)] for url in urls
                if not url.startswith("pipe:") and "://" not in url and os.path.abspath(url) in listed}

    def _text_languages(self, text_urls: list[str], rank: int, world_size: int) -> dict[str, tuple[list[str], float]] | None:
        """Language -> (this rank's shards holding it, sampling probability) for the train stream, or
        None with alpha 1 (the data's own mix); rank 0 prints the mix and writes it to the run directory."""
        h = self.hparams
        listed = {os.path.abspath(self.data_dir / shard["name"]): shard.get("languages")
                  for shard in self.manifest.get("shards", {}).get("train", [])}
        if h.language_sampling_alpha == 1 and any(listed.get(os.path.abspath(url)) is None for url in text_urls):
            return None  # the data's own mix needs no counts: an older manifest's shards are not read just to print them
        counts = shard_language_counts(text_urls, {url: listed.get(os.path.abspath(url)) for url in text_urls})
        totals: dict[str, int] = {}
        for per_shard in counts.values():
            for lang, n in per_shard.items():
                totals[lang] = totals.get(lang, 0) + n
        probabilities = sampling_probabilities(totals, h.language_sampling_alpha)
        if rank == 0:
            text_share = 0.5 if h.task_mixing == "alternating" and self._active("oe") else 1.0  # text on every other step
            table = sampling_table(totals, probabilities, h.batch_size * world_size * text_share, h.language_sampling_alpha)
            print(table)
            if self.trainer is not None and self.trainer.loggers:  # a run that keeps logs (the CLI's run directory)
                Path(self.trainer.default_root_dir).mkdir(parents=True, exist_ok=True)
                write_text(Path(self.trainer.default_root_dir) / TABLE_FILE, table)
        if h.language_sampling_alpha == 1:
            return None
        return {lang: (rank_shards([url for url in text_urls if counts[url].get(lang)], rank, world_size), probability)
                for lang, probability in probabilities.items()}

    def _rank_and_world(self) -> tuple[int, int]:
        if self.trainer is not None:
            return self.trainer.global_rank, self.trainer.world_size
        rank, world_size, _, _ = wds.utils.pytorch_worker_info()  # RANK/WORLD_SIZE or torch.distributed
        return rank, world_size

    def _loader_options(self, workers: int) -> dict:
        # An own generator: making the loader's iterator must not draw from the global RNG, or a
        # resumed run (which makes it after restoring RNG states) would drift from a straight one.
        requeue = getattr(cluster_environment(self.trainer), "requeue_signal", None) if isinstance(self.trainer, L.Trainer) else None
        return dict(batch_size=None, num_workers=workers, pin_memory=self.hparams.pin_memory,
                    prefetch_factor=self.hparams.prefetch_factor if workers else None,
                    persistent_workers=False, generator=torch.Generator().manual_seed(self.hparams.seed),
                    signals=stop_signals(requeue))

    def train_dataloader(self) -> DataLoader:
        h = self.hparams
        text_urls = self._urls(h.train_shards, "train")
        if not text_urls:
            raise ValueError(f"no training text shard in {self.data_dir} (the manifest lists none with samples)")
        lanes = max(1, h.num_workers)
        if self._restored_lanes is not None and self._restored_lanes != lanes:
            # Checked here, not on load: validating or testing a checkpoint may use any worker count.
            raise ValueError(f"the checkpoint's data stream ran {self._restored_lanes} loader lane(s); resume with "
                             f"--data.num_workers {self._restored_lanes if self._restored_lanes > 1 else 0} to continue it exactly")
        rank, world_size = self._rank_and_world()
        fact_urls = self._urls(h.train_fact_shards, "facts-train")
        text_languages = self._text_languages(text_urls, rank, world_size)
        shard_sizes = self._shard_sizes(text_urls + fact_urls)
        text_urls, fact_urls = rank_shards(text_urls, rank, world_size), rank_shards(fact_urls, rank, world_size)
        stream = TrainStream(text_urls, fact_urls, self.collator(), self.limits,
                             h.batch_size, h.fact_batch_size, h.shuffle_buffer, h.seed, rank, lanes,
                             shard_sizes, h.bad_samples == "skip", h.max_bad_fraction,
                             alternate=h.task_mixing == "alternating", text_languages=text_languages)
        return TrainLoader(stream, self.consumed_batches, **self._loader_options(h.num_workers))

    def _eval_batches(self, text_urls: list[str], shard_sizes: dict[str, int], world_size: int) -> tuple[int | None, bool]:
        """(batches each rank evaluates, whether a rank re-reads its slice to reach them).

        Every rank must run the same number of batches, or under DDP and ZeRO-3 the ranks that
        finish first wait forever for the others' collectives. From the manifest's sample counts,
        each rank works out every rank's slice and takes the fewest batches, with no communication;
        the longer slices' tails are left out. Shards without a count (``pipe:`` and remote URLs,
        files outside the manifest) need ``val_batches``: each rank then reads that many batches,
        re-reading its slice if it is shorter.
        """
        cap = self.hparams.val_batches
        if world_size == 1:
            return cap, False
        unknown = [url for url in text_urls if url not in shard_sizes]
        if unknown:
            if cap is None:
                raise ValueError(f"validation on {world_size} ranks: {unknown[0]} has no sample count in manifest.json, "
                                 "so the ranks cannot agree on a number of batches; set --data.val_batches N")
            return cap, True
        per_rank = [-(-samples // self.hparams.batch_size) for samples in slice_sizes([shard_sizes[url] for url in text_urls], world_size)]
        fewest = min(per_rank)
        if len(set(per_rank)) > 1 and self._rank_and_world()[0] == 0:
            warnings.warn(f"validation on {world_size} ranks: their slices of the val shards hold {per_rank} batches; each "
                          f"rank evaluates {fewest}, so all run the same number (write shards of equal size to use them all)",
                          stacklevel=2)
        return (fewest if cap is None else min(cap, fewest)), False

    def _eval_loader(self, text_override: str | list[str] | None, fact_override: str | list[str] | None) -> DataLoader:
        h = self.hparams
        rank, world_size = self._rank_and_world()
        text_urls, fact_urls = self._urls(text_override, "val"), self._urls(fact_override, "facts-val")
        shard_sizes = self._shard_sizes(text_urls + fact_urls)
        batches, repeat = self._eval_batches(text_urls, shard_sizes, world_size)
        stream = EvalStream(text_urls, fact_urls, self.collator(), self.limits, h.batch_size, h.fact_batch_size,
                            h.seed, rank, world_size, batches, shard_sizes, repeat)
        # One worker at most keeps the order fixed; it still decodes while the model runs.
        return MainProcessSignalsLoader(stream, **self._loader_options(min(h.num_workers, 1)))

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.hparams.val_shards, self.hparams.val_fact_shards)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def consumed_batches(self) -> int:
        """Training batches the trainer has used: its progress counter (restored with the loops on
        resume), or what :meth:`load_state_dict` gave without a trainer. ``processed`` rather than
        ``ready`` or the loader's count, because the loader runs ahead of the trainer (prefetch)."""
        used = batches_processed(self.trainer) if self.trainer is not None else 0
        return max(used, self._restored_position)

    def check_dataset(self) -> None:
        """The tokenizer, entity vocabulary and knowledge table hash as manifest.json records, and
        every shard this run reads exists (of the size the manifest records): at start-up, before
        any step. Once; ``setup`` calls it, and the CLI before it writes anything into the run directory."""
        if getattr(self, "_files_checked", False):  # fit calls setup again for validation
            return
        h = self.hparams
        check_files(self.data_dir, self.manifest, h.allow_mismatch)
        overrides = {"train": h.train_shards, "val": h.val_shards, "facts-train": h.train_fact_shards, "facts-val": h.val_fact_shards}
        read = [split for split in overrides if not split.startswith("facts") or self._active("oe")]
        check_shards(self.data_dir, self.manifest, [split for split in read if overrides[split] is None])
        for split in read:
            if overrides[split] is not None:
                self._urls(overrides[split], split)  # local files must exist
        self._files_checked = True

    def setup(self, stage: str) -> None:
        self.check_dataset()

    # Lightning's Trainer saves this under the class name in checkpoints and gives it back before
    # the loaders are built (lightning/pytorch/trainer/connectors/checkpoint_connector.py).
    def state_dict(self) -> dict:
        return {"consumed_batches": self.consumed_batches(), "lanes": max(1, self.hparams.num_workers), "seed": self.hparams.seed,
                "dataset_hashes": self.manifest.get("hashes", {}), "language_sampling_alpha": self.hparams.language_sampling_alpha}

    def load_state_dict(self, state: dict) -> None:
        check_checkpoint(state.get("dataset_hashes", {}), self.manifest, self.data_dir, self.hparams.allow_mismatch)
        if int(state["seed"]) != self.hparams.seed:
            raise ValueError(f"the checkpoint's data stream has seed {state['seed']}; resume with --data.seed {state['seed']}")
        alpha = float(state.get("language_sampling_alpha", 1.0))  # checkpoints before it was a knob read the data's mix
        if alpha != self.hparams.language_sampling_alpha:
            raise ValueError(f"the checkpoint's data stream has language_sampling_alpha {alpha:g}; resume with "
                             f"--data.language_sampling_alpha {alpha:g} to continue it exactly")
        self._restored_position = int(state["consumed_batches"])
        self._restored_lanes = int(state["lanes"])

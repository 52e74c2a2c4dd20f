"""Zero-shot cross-lingual transfer of one encoder on one task: fine-tune in the train language, pick
the epoch on its dev split, test every other language, at each seed; the report beside the run.

Each seed starts again from the checkpoint (or a fresh random init drawn at that seed), so seeds
differ in the head's initialisation, dropout and the order of the train rows, as mLUKE's repeated
runs do. Gold spans the heads cannot see are counted per split and reported, never dropped silently.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lightning_kg.dataset.files import write_json
from lightning_kg.dataset.task_files import read_task_dir
from lightning_kg.runs.directories import output_dir
from lightning_kg.transfer.encoders import check_head, is_hf_directory, load_encoder
from lightning_kg.transfer.features import LostSpans, TaskEncoder, label_set
from lightning_kg.transfer.finetune import FinetuneSettings, TaskModel, fine_tune, predict, seed_everything
from lightning_kg.transfer.heads import HEADS, TASKS, TaskHead
from lightning_kg.transfer.metrics import MAIN_METRIC, score
from lightning_kg.transfer.report import format_table, write_report

log = logging.getLogger(__name__)


@dataclass
class TransferConfig:
    """Inputs, outputs and knobs of ``python -m lightning_kg transfer``."""

    ckpt_path: str
    """A lightning_kg checkpoint (``.ckpt``, DeepSpeed directory), our export, or a local Hugging Face
    encoder directory (XLM-R, LUKE/mLUKE) to compare with on the same data."""
    task: str = "typing"
    """One of ner, relation, typing, pair."""
    head: str = "entity"
    """``entity``: [MASK] entities over the spans (mLUKE's heads); ``word``: word states only."""
    task_dir: str | None = None
    """Directory of ``<language>.<split>.<ext>`` files; None: ``tasks/<task>`` of the checkpoint's dataset
    (what ``prepare`` builds from the dumps)."""
    train_language: str | None = None
    """Language fine-tuned on; None: the one language with a train split."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Each seed fine-tunes once from the checkpoint; the report gives mean and spread over them."""
    random_init: bool = False
    """The baseline: our encoder of the checkpoint's size, freshly initialised at each seed."""
    tokenizer_dir: str | None = None
    """Tokenizer to use instead of the checkpoint's dataset's (or the Hugging Face directory's)."""
    out: str | None = None
    """Directory for transfer.md/.json/.png; None: ``transfer/<task>-<head>`` in the checkpoint's run
    (``-random`` appended for the random baseline)."""
    device: str = "auto"
    """``auto`` (CUDA when there is one), ``cpu`` or ``cuda``."""
    progress: bool = True
    """A progress bar over the fine-tuning steps."""
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    """The loop's knobs (``--finetune.epochs 3``)."""

    def __post_init__(self):
        if isinstance(self.finetune, dict):
            self.finetune = FinetuneSettings(**self.finetune)
        if self.task not in TASKS:
            raise ValueError(f"task: {self.task!r}; expected one of {', '.join(TASKS)}")
        if self.head not in HEADS:
            raise ValueError(f"head: {self.head!r}; expected one of {', '.join(HEADS)}")
        if not self.seeds:
            raise ValueError("seeds: an empty list; expected at least one seed")


@dataclass
class TransferResult:
    rows: list[dict]
    """Report rows (``transfer.report.ROW_KEYS``): the train language's dev score and every test score, per seed."""
    train_language: str
    title: str
    lost: dict[str, dict[str, int]]
    """``<language>.<split>`` -> gold spans lost, by reason (the first seed's; tokenization is the same at every seed)."""
    chosen_epochs: list[int]
    seconds: float


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def default_out(config: TransferConfig) -> Path:
    return output_dir(config.ckpt_path, "transfer") / f"{config.task}-{config.head}{'-random' if config.random_init else ''}"


def run_transfer(config: TransferConfig) -> TransferResult:
    """Fine-tune and test at every seed of ``config``; the rows the report is made from."""
    if config.task_dir is None and is_hf_directory(Path(config.ckpt_path)):
        raise ValueError(f"{config.ckpt_path} is a Hugging Face directory: pass --task_dir with the task's files")
    started = time.perf_counter()
    splits, rows, lost, chosen = None, [], {}, []
    for seed in config.seeds:
        seed_everything(seed)  # before loading: a random init is drawn at the seed
        loaded = load_encoder(config.ckpt_path, config.random_init, tokenizer_dir=config.tokenizer_dir)
        check_head(loaded, config.task, config.head)
        if splits is None:
            if config.task_dir is None and loaded.data_dir is None:
                raise ValueError(f"{config.ckpt_path} does not say which dataset it was trained on: pass --task_dir")
            splits = read_task_dir(config.task_dir or loaded.data_dir / "tasks" / config.task, config.task, config.train_language)
            train_language = config.train_language or next(language for language, found in splits.items() if "train" in found)
        seed_rows, seed_lost, epoch = _one_seed(config, seed, loaded, splits, train_language)
        rows += seed_rows
        chosen.append(epoch)
        if seed == config.seeds[0]:
            lost = seed_lost
            for name, counts in lost.items():
                log.warning("%s: %d gold spans lost (%s)", name, sum(counts.values()),
                            ", ".join(f"{reason} {count}" for reason, count in counts.items() if count))
    title = f"transfer {config.task} ({config.head} head) of {loaded.name}, trained on {train_language}"
    return TransferResult(rows, train_language, title, lost, chosen, time.perf_counter() - started)


def _one_seed(config: TransferConfig, seed: int, loaded, splits: dict, train_language: str) -> tuple[list[dict], dict, int]:
    """Fine-tune ``loaded`` once; (its report rows, the gold spans lost per split, the epoch chosen)."""
    task, settings, encoder = config.task, config.finetune, loaded.encoder
    uses_entities = config.head == "entity" and task != "pair"
    if uses_entities and task == "relation":
        encoder.add_mask2()
    train, dev = splits[train_language]["train"], splits[train_language]["dev"]
    coder = TaskEncoder(task, config.head, loaded.tokenizer, label_set(task, train), settings.max_seq_length,
                        settings.max_mention_length, settings.max_entities,
                        encoder.mask_id if uses_entities else None, encoder.mask2_id if uses_entities else None)
    head = TaskHead(task, config.head, encoder.hidden_size, len(coder.classes), settings.dropout)
    model = TaskModel(encoder, head).to(_device(config.device))
    pad, lost = loaded.tokenizer.pad_token_id, {}

    def encoded(language: str, split: str, examples: list) -> list:
        counted = LostSpans()
        encoded_rows = coder.encode(examples, counted, training=split == "train")
        if counted.total():
            lost[f"{language}.{split}"] = counted.as_dict()
        return encoded_rows

    dev_rows = encoded(train_language, "dev", dev)
    fit = fine_tune(model, coder, pad, encoded(train_language, "train", train), dev_rows, len(dev),
                    lambda predicted: score(task, dev, predicted)[MAIN_METRIC[task]], settings, seed, config.progress)
    rows = _result_rows(seed, train_language, "dev", score(task, dev, predict(model, coder, pad, dev_rows, len(dev), settings.batch_size)))
    for language, found in sorted(splits.items()):
        if "test" in found:
            test = found["test"]
            predicted = predict(model, coder, pad, encoded(language, "test", test), len(test), settings.batch_size)
            rows += _result_rows(seed, language, "test", score(task, test, predicted))
    return rows, lost, fit.chosen_epoch


def _result_rows(seed: int, language: str, split: str, scores: dict[str, float]) -> list[dict]:
    return [{"seed": seed, "language": language, "split": split, "metric": metric, "value": value}
            for metric, value in scores.items()]


def transfer_and_write(config: TransferConfig) -> tuple[TransferResult, dict[str, Path]]:
    """:func:`run_transfer`, then the table on stdout and the report files in ``config.out``."""
    result = run_transfer(config)
    out = Path(config.out) if config.out else default_out(config)
    paths = write_report(result.rows, out, result.title, result.train_language)
    meta = {"config": asdict(config), "lost_spans": result.lost, "chosen_epochs": result.chosen_epochs,
            "seconds": round(result.seconds, 1)}
    write_json(out / "transfer_run.json", meta, indent=1)
    print(f"{result.title}\n\n{format_table(result.rows, result.train_language)}")
    print(f"\n{len(config.seeds)} seed(s) in {result.seconds:.0f} s; epochs chosen on {result.train_language} dev: "
          f"{result.chosen_epochs}; wrote {paths['md']}, {paths['json']} and {paths['png']}")
    return result, paths

"""``python -m lightning_kg ablate``: what each objective adds, as one command.

Trains each arm (a set of objectives) at each seed with the same config and steps, each fit a
``python -m lightning_kg fit`` process of its own (so every run starts as a user's would), probes
its last checkpoint on the held-out and the training facts (``lightning_kg.probe``), and writes
``ablation.md``, ``ablation.csv`` and ``ablation.png`` into the output folder: per arm the mean and
the spread (sample standard deviation) over seeds, beside ``major`` and chance, and the validation
MLM loss beside the text's unigram cross-entropy (what knowing only token frequencies scores).

A rerun after a kill skips what was finished: a fit that ended (``fit.json``) is not redone, a run
that was probed (``result.json``) is not probed again; a fit cut short is started afresh.

``--jobs N`` runs N fits at once, each with ``usable cores // N`` torch threads: on a small CPU several
one-thread fits train more steps per second together than one fit with all the cores (measured on
2 cores: three at once 12.5 steps/s together, one alone 7.8-8.6). Probes take turns.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from lightning_kg.charts import mean_sd, pyplot, save_png, spread
from lightning_kg.data.checks import read_shard
from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.dataset.files import atomic_file, write_json, write_text
from lightning_kg.dataset.format import IGNORE_INDEX
from lightning_kg.dataset.tokenizer import load_tokenizer
from lightning_kg.probe.report import write_csv
from lightning_kg.probe.run import ProbeConfig, probe
from lightning_kg.runs.directories import config_data_dir, run_dataset
from lightning_kg.transfer.finetune import FinetuneSettings
from lightning_kg.transfer.heads import TASKS
from lightning_kg.transfer.metrics import MAIN_METRIC
from lightning_kg.transfer.report import write_report
from lightning_kg.transfer.run import TransferConfig, run_transfer
from lightning_kg.verbs import ConfigFileError, check_config_files, fail

_OFF = "--model.objective_settings.{}_weight"
ARMS = {
    "all": [],
    "mlm": [arg for name in ("mep_vocab", "mep_contrastive", "oe") for arg in (_OFF.format(name), "0")],
    "mlm+mep_vocab": [arg for name in ("mep_contrastive", "oe") for arg in (_OFF.format(name), "0")],
    "mlm+mep_contrastive+oe": [_OFF.format("mep_vocab"), "0"],
}
"""Arm name -> the fit flags that make it (weights of the objectives it leaves out set to 0)."""
FACTS = ("facts-heldout", "facts-train")
METRICS = ("entity_p1", "entity_mrr", "word_p1", "word_mrr", "entity_consistency", "word_consistency",
           "alignment_acc1", "alignment_acc1_distinct")
"""Columns of the probe's ``mean`` row that the table compares."""


_PROBE_TURN = threading.Lock()
"""One probe (or transfer) at a time: parallel fits share the cores, a probe's model and facts need not be doubled."""
RANDOM_INIT = "random init"
"""The transfer baseline's row: the encoder of the runs' size, untrained, fine-tuned the same way."""


def usable_cores() -> int:
    """The cores this process may run on: a SLURM or taskset allotment, which ``os.cpu_count()`` (the
    machine's) overstates."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run(command: list[str], log: Path, threads: int | None = None) -> None:
    env = None if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(log, "w", encoding="utf-8") as out:
        status = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    if status:
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-15:])
        raise RuntimeError(f"{' '.join(command)} exited {status}; its log {log} ends:\n{tail}")


def last_value(metrics_csv: Path, key: str) -> float | None:
    """The last logged value of ``key`` in a run's ``metrics.csv`` (None if never logged)."""
    with open(metrics_csv, encoding="utf-8") as lines:
        values = [row[key] for row in csv.DictReader(lines) if row.get(key)]
    return float(values[-1]) if values else None


def unigram_mlm_loss(data_dir: Path) -> float:
    """Nats per masked token of the validation split, masked as fit masks it, under the training
    text's token frequencies (add-one smoothed, special tokens left out): the MLM loss of a model
    that learnt only which tokens are frequent, to set beside ``val/mlm``. Masking takes whole
    mentions, so the masked tokens are rarer than the text's, and this is above the text's entropy."""
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    special = set(load_tokenizer(data_dir / "tokenizer").all_special_ids)
    train = Counter()
    for shard in manifest["shards"]["train"]:
        for raw in read_shard(str(data_dir / shard["name"])):
            ids = np.load(io.BytesIO(raw["input_ids.npy"]))
            train.update(i for i in ids.tolist() if i not in special)
    data = KnowledgeDataModule(str(data_dir), num_workers=0, objectives=["mlm"])
    data.setup("validate")
    masked = Counter()
    for batch in data.val_dataloader():
        labels = batch["mlm_labels"]
        masked.update(labels[labels != IGNORE_INDEX].tolist())
    total, types = sum(train.values()), len(train.keys() | masked.keys())
    return -sum(n * math.log((train[token] + 1) / (total + types)) for token, n in masked.items()) / sum(masked.values())


def train_and_probe(arm: str, seed: int, run_dir: Path, configs: list[str], fit_args: list[str],
                    threads: int | None = None, transfer: str | None = None, transfer_epochs: int = 5) -> dict:
    """One arm at one seed: fit (unless ``fit.json`` says it finished) with ``threads`` torch threads
    (None: torch's own choice), then both probes and the ``transfer`` task (None: none); the figures
    are saved in ``result.json``, which a rerun reads instead (adding a transfer it lacks)."""
    result_file = run_dir.parent / f"{run_dir.name}.result.json"
    if result_file.is_file():
        result = json.loads(result_file.read_text(encoding="utf-8"))
        if transfer and (result.get("transfer") or {}).get("task") != transfer:
            with _PROBE_TURN:
                result["transfer"] = transfer_score(run_dir / "checkpoints" / "last.ckpt", transfer, seed, transfer_epochs,
                                                    run_dir / "transfer" / transfer)
            write_json(result_file, result, indent=1)
        return result
    fit_file = run_dir.parent / f"{run_dir.name}.fit.json"
    if not fit_file.is_file():
        shutil.rmtree(run_dir, ignore_errors=True)  # a fit cut short: start it again rather than resume a stranger's state
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "lightning_kg", "fit", *(f"--config={c}" for c in configs), *ARMS[arm],
                   "--seed_everything", str(seed), "--run_dir", str(run_dir), "--trainer.enable_progress_bar", "false", *fit_args]
        started = time.perf_counter()
        _run(command, run_dir.parent / f"{run_dir.name}.fit.log", threads)
        write_json(fit_file, {"fit_s": round(time.perf_counter() - started, 1), "threads": threads, "command": command})
    result = json.loads(fit_file.read_text(encoding="utf-8"))
    result.update(arm=arm, seed=seed, val_mlm=last_value(run_dir / "metrics.csv", "val/mlm"))
    with _PROBE_TURN:
        started = time.perf_counter()
        for facts in FACTS:
            probed = probe(ProbeConfig(ckpt_path=str(run_dir / "checkpoints" / "last.ckpt"), facts=facts))
            write_csv(probed.rows, run_dir / f"probe-{facts}.csv")
            mean = next(row for row in probed.rows if row["scope"] == "all")
            result[facts] = {key: mean[key] for key in (*METRICS, "majority_p1", "chance_p1")}
        result["probe_s"] = round(time.perf_counter() - started, 1)
        if transfer:
            result["transfer"] = transfer_score(run_dir / "checkpoints" / "last.ckpt", transfer, seed, transfer_epochs,
                                                run_dir / "transfer" / transfer)
    write_json(result_file, result, indent=1)
    return result


def transfer_score(ckpt: Path, task: str, seed: int, epochs: int, out: Path, random_init: bool = False) -> dict:
    """Fine-tune ``ckpt`` on ``task`` in its dataset's train language at ``seed`` (``lightning_kg.transfer``),
    the report in ``out``; ``{"task", "dev", "zero_shot"}``: the main metric on the train language's dev
    split and its mean over the other languages' test splits."""
    result = run_transfer(TransferConfig(ckpt_path=str(ckpt), task=task, seeds=[seed], random_init=random_init, progress=False,
                                         finetune=FinetuneSettings(epochs=epochs)))
    write_report(result.rows, out, result.title, result.train_language)
    main = [row for row in result.rows if row["metric"] == MAIN_METRIC[task]]
    tests = [row["value"] for row in main if row["split"] == "test" and row["language"] != result.train_language]
    return {"task": task, "dev": next(row["value"] for row in main if row["split"] == "dev"),
            "zero_shot": sum(tests) / len(tests), "transfer_s": round(result.seconds, 1)}


def summary_rows(results: list[dict]) -> list[dict]:
    """One row per arm and fact split: ``<metric>_mean`` and ``<metric>_sd`` of :data:`METRICS` and
    of the validation MLM loss, over seeds."""
    rows = []
    for arm in dict.fromkeys(r["arm"] for r in results):
        runs = [r for r in results if r["arm"] == arm]
        for facts in FACTS:
            row = {"arm": arm, "facts": facts, "seeds": len(runs)}
            for metric in ("val_mlm", *METRICS):
                values = [r["val_mlm"] if metric == "val_mlm" else r[facts][metric] for r in runs]
                row[f"{metric}_mean"], row[f"{metric}_sd"] = spread(values)
            row["transfer_mean"], row["transfer_sd"] = spread([(r.get("transfer") or {}).get("zero_shot") for r in runs])
            rows.append(row)
    return rows


def markdown(rows: list[dict], baselines: dict[str, dict[str, float]], unigram: float, seeds: list[int], runs_s: float,
             wall_s: float, transfer: dict | None = None) -> str:
    """The table of ``ablation.md``: mean ± sd over seeds, then the baselines. ``runs_s``: the fits' and
    probes' times summed (kept across reruns); ``wall_s``: this command's. ``transfer``: ``{"task",
    "random": (mean, sd)}`` adds the zero-shot transfer column and its random-init row."""
    column = f" {transfer['task']} zero-shot |" if transfer else ""
    header = ("| arm | facts | entity P@1 | entity MRR | word P@1 | entity consistency | word consistency "
              f"| alignment acc@1 | labels that differ | val MLM loss |{column}")
    lines = [f"Seeds {', '.join(map(str, seeds))}; mean ± sample sd over seeds; fits and probes {runs_s / 60:.1f} min "
             f"summed, this command's wall time {wall_s / 60:.1f} min.", "",
             header, "|" + " --- |" * (header.count("|") - 1)]
    for row in rows:
        cells = [mean_sd(row[f"{m}_mean"], row[f"{m}_sd"]) for m in ("entity_p1", "entity_mrr", "word_p1", "entity_consistency",
                                                                  "word_consistency", "alignment_acc1", "alignment_acc1_distinct", "val_mlm")]
        if transfer:  # one figure per arm: shown on its held-out row
            cells.append(mean_sd(row["transfer_mean"], row["transfer_sd"]) if row["facts"] == FACTS[0] else "")
        lines.append(f"| {row['arm']} | {row['facts'].removeprefix('facts-')} | " + " | ".join(cells) + " |")
    empty = " |" if transfer else ""
    for facts, values in baselines.items():
        lines.append(f"| most frequent object (`major`) | {facts.removeprefix('facts-')} | {values['majority_p1']:.3f} | | "
                     f"{values['majority_p1']:.3f} | | | | | |{empty}")
        lines.append(f"| chance | {facts.removeprefix('facts-')} | {values['chance_p1']:.3f} | | {values['chance_p1']:.3f} | | | | | |{empty}")
    lines.append(f"| unigram frequencies | | | | | | | | | {unigram:.3f} |{empty}")
    if transfer:
        lines.append(f"| {RANDOM_INIT} (same size, untrained) | | | | | | | | | | {mean_sd(*transfer['random'])} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], baselines: dict[str, dict[str, float]], path: Path) -> None:
    """P@1 per arm (entity- and word-based bars, sd as error bars), one panel per fact split, with
    ``major`` and chance as lines."""
    figure, axes = pyplot().subplots(1, len(FACTS), figsize=(11.0, 4.0), sharey=True)
    for axis, facts in zip(axes, FACTS):
        shown = [r for r in rows if r["facts"] == facts]
        x = np.arange(len(shown))
        for offset, kind, color in ((-0.2, "entity", "tab:blue"), (0.2, "word", "tab:orange")):
            means = [r[f"{kind}_p1_mean"] for r in shown]
            errors = [r[f"{kind}_p1_sd"] or 0.0 for r in shown]
            axis.bar(x + offset, [m if m is not None else 0.0 for m in means], 0.4, yerr=errors, capsize=3, color=color,
                     label=f"{kind}-based")
        axis.axhline(baselines[facts]["majority_p1"], color="black", linestyle="--", label="most frequent object")
        axis.axhline(baselines[facts]["chance_p1"], color="grey", linestyle=":", label="chance")
        axis.set_xticks(x, [r["arm"].replace("+", "\n+") for r in shown], fontsize=8)
        axis.set_title(f"{facts}: P@1 (macro mean over languages)", fontsize=9)
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("P@1")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    save_png(figure, path, dpi=110)


def random_baseline(out: Path, ckpt: Path, task: str, seed: int, epochs: int) -> dict:
    """:func:`transfer_score` of a random init of ``ckpt``'s size at ``seed``, kept in ``out`` for a rerun."""
    saved = out / RANDOM_INIT.replace(" ", "-") / f"seed-{seed}.{task}.json"
    if not saved.is_file():
        write_json(saved, transfer_score(ckpt, task, seed, epochs, saved.with_suffix(""), random_init=True), indent=1)
    return json.loads(saved.read_text(encoding="utf-8"))


def ablate(configs: list[str], seeds: list[int], arms: list[str], out: Path, fit_args: list[str], jobs: int = 1,
           transfer: str | None = None, transfer_epochs: int = 5) -> Path:
    """Every arm at every seed (:func:`train_and_probe`), ``jobs`` fits at a time, then the table and
    the chart in ``out``; with ``transfer``, each run's zero-shot transfer on that task and the random
    init's at each seed."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs = [(arm, seed) for seed in seeds for arm in arms]  # seed by seed: a run cut short still compares every arm
    threads = None if jobs == 1 else max(1, usable_cores() // jobs)
    by_run, stop = {}, threading.Event()

    def run_one(arm: str, seed: int) -> dict | None:
        if stop.is_set():  # a fit failed, or Ctrl-C: start no other
            return None
        try:
            return train_and_probe(arm, seed, out / arm / f"seed-{seed}", configs, fit_args, threads, transfer, transfer_epochs)
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = {pool.submit(run_one, arm, seed): (arm, seed) for arm, seed in runs}
        try:
            for future in as_completed(pending):
                arm, seed = pending[future]
                result = future.result()
                if result is None:
                    continue  # skipped after a failure, whose own future raises in this loop
                by_run[arm, seed] = result
                elapsed = time.perf_counter() - started
                transferred = f", {transfer} zero-shot {result['transfer']['zero_shot']:.3f}" if transfer else ""
                print(f"[{len(by_run)}/{len(runs)}] {arm} seed {seed}: fit {result['fit_s']:.0f} s, probes {result['probe_s']:.0f} s, "
                      f"held-out entity P@1 {mean_sd(result['facts-heldout']['entity_p1'], None)}{transferred}; "
                      f"{elapsed / 60:.1f} min so far", flush=True)
        except BaseException:  # a failed fit or Ctrl-C: start no other fit, let those under way end (a rerun keeps them)
            stop.set()
            if jobs > 1:
                print("stopping: no new fit starts; waiting for the fits under way to end (Ctrl-C stops them)",
                      file=sys.stderr, flush=True)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    results = [by_run[run] for run in runs]
    rows = summary_rows(results)
    baselines = {facts: {key: results[0][facts][key] for key in ("majority_p1", "chance_p1")} for facts in FACTS}
    unigram = unigram_mlm_loss(run_dataset(None, config_data_dir(first := out / arms[0] / f"seed-{seeds[0]}"), first))
    runs_s, wall_s = sum(r["fit_s"] + r["probe_s"] for r in results), time.perf_counter() - started
    with atomic_file(out / "ablation.csv", "w", encoding="utf-8") as table:
        writer = csv.DictWriter(table, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    random = None
    if transfer:
        scores = [random_baseline(out, out / arms[0] / f"seed-{seed}" / "checkpoints" / "last.ckpt", transfer, seed, transfer_epochs)
                  for seed in seeds]
        random = {"task": transfer, "random": spread([score["zero_shot"] for score in scores])}
    text = markdown(rows, baselines, unigram, seeds, runs_s, wall_s, random)
    write_text(out / "ablation.md", text)
    plot(rows, baselines, out / "ablation.png")
    print(text + f"\nwrote {out / 'ablation.md'}, {out / 'ablation.csv'} and {out / 'ablation.png'}")
    return out


def main(args: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lightning_kg ablate",
        description="Train each arm (set of objectives) at each seed, probe each on held-out and training facts, "
                    "and write ablation.md, ablation.csv and ablation.png. Other --key value flags go to every fit.")
    parser.add_argument("--config", action="append", default=[], help="fit config file(s), as fit takes them; later ones win")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of every arm (default: 0 1 2)")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS), help="arms to train (default: all four)")
    parser.add_argument("--out", default="runs/ablation", help="output folder; a rerun skips the runs finished there")
    parser.add_argument("--transfer", choices=[*TASKS, "none"], default="typing",
                        help="task each run is fine-tuned on and tested zero-shot (lightning_kg transfer; default typing; none: skip)")
    parser.add_argument("--transfer_epochs", type=int, default=FinetuneSettings.epochs, help="fine-tuning epochs of each transfer")
    parser.add_argument("--jobs", type=int, default=1,
                        help="fits at once, each with cores // jobs torch threads (default 1: one fit, torch's own threads)")
    known, fit_args = parser.parse_known_args(args)
    stray = [arg for arg in fit_args if arg.startswith("--") and "." not in arg.split("=")[0]]
    if stray:
        parser.error(f"unknown option(s) {stray}: flags for the fits are dotted (--trainer.max_steps 100)")
    if known.jobs < 1:
        parser.error(f"--jobs {known.jobs}: at least 1")
    try:
        check_config_files(args)
    except ConfigFileError as error:
        fail(str(error))
    try:
        ablate(known.config, known.seeds, known.arms, Path(known.out), fit_args, known.jobs,
               None if known.transfer == "none" else known.transfer, known.transfer_epochs)
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        fail(str(error))

"""Transfer results out: a markdown table (a row per language, a column per metric, mean and spread
over seeds), ``transfer.json`` and ``transfer.png`` in the run directory.

A result row is ``{"seed": int, "language": str, "split": "dev" | "test", "metric": str, "value": float}``.
The train language's dev split is where the epoch was picked, so its row is shown apart from the
zero-shot ones; "mean over test languages" averages, seed by seed, the test splits of every other
language, and its spread is over those per-seed means.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from lightning_kg.charts import mean_sd, pyplot, save_png, spread
from lightning_kg.dataset.files import write_json, write_text

ROW_KEYS = ("seed", "language", "split", "metric", "value")
SPLITS = ("dev", "test")
MEAN_ROW = "mean over test languages"


def _checked(rows: Sequence[dict]) -> list[dict]:
    """Copies of ``rows`` with a plain int seed and float value (a numpy or torch scalar would not
    write as JSON); a row that is not one is refused, naming it."""
    if not rows:
        raise ValueError(f"no result rows to report; expected dicts with {', '.join(ROW_KEYS)}")
    checked, seen = [], set()
    for number, row in enumerate(rows):
        missing = [key for key in ROW_KEYS if key not in row]
        if missing:
            raise ValueError(f"result row {number} {row}: no {', '.join(missing)}; expected {', '.join(ROW_KEYS)}")
        if row["split"] not in SPLITS:
            raise ValueError(f"result row {number} {row}: split {row['split']!r}; expected one of {', '.join(SPLITS)}")
        try:
            value = float(row["value"])
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(f"result row {number} {row}: value {row['value']!r}; expected a finite number")
        row = {**row, "seed": int(row["seed"]), "value": value}
        key = tuple(row[k] for k in ROW_KEYS[:-1])
        if key in seen:
            raise ValueError(f"result row {number} {row}: a second value for seed {key[0]}, {key[1]} {key[2]}, {key[3]}; "
                             "expected one")
        seen.add(key)
        checked.append(row)
    return checked


def _spread(values: list[float]) -> dict:
    """Mean and sample standard deviation (None for one seed) of a metric over seeds."""
    mean, std = spread(values)
    return {"mean": mean, "std": std, "seeds": len(values)}


def summarise(rows: Sequence[dict], train_language: str) -> dict:
    """``{"metrics": [...], "lines": [{"language", "split", metric: spread, ...}, ...]}``: the train
    language first (dev, then test), the other languages by name, then the mean over test languages."""
    rows = _checked(rows)
    metrics = list(dict.fromkeys(row["metric"] for row in rows))
    places = sorted({(row["language"], row["split"]) for row in rows},
                    key=lambda place: (place[0] != train_language, place[0], SPLITS.index(place[1])))
    lines = []
    for language, split in places:
        mine = [row for row in rows if (row["language"], row["split"]) == (language, split)]
        lines.append({"language": language, "split": split,
                      **{metric: _spread([r["value"] for r in mine if r["metric"] == metric]) for metric in metrics
                         if any(r["metric"] == metric for r in mine)}})
    zero_shot = [row for row in rows if row["split"] == "test" and row["language"] != train_language]
    mean = {"language": MEAN_ROW, "split": "test"}
    for metric in metrics:
        by_seed: dict[int, list[float]] = {}
        for row in zero_shot:
            if row["metric"] == metric:
                by_seed.setdefault(row["seed"], []).append(row["value"])
        if by_seed:
            mean[metric] = _spread([statistics.fmean(values) for values in by_seed.values()])
    return {"metrics": metrics, "lines": [*lines, mean]}


def _cell(summary: dict | None) -> str:
    return mean_sd(summary["mean"], summary["std"]) if summary else "n/a"


def format_table(rows: Sequence[dict], train_language: str) -> str:
    """Markdown: a row per language and split, a column per metric, ``mean ± std`` over seeds."""
    summary = summarise(rows, train_language)
    metrics = summary["metrics"]
    lines = ["| language | split | seeds | " + " | ".join(metrics) + " |",
             "| --- | --- | ---: | " + " | ".join("---:" for _ in metrics) + " |"]
    for line in summary["lines"]:
        seeds = max((line[m]["seeds"] for m in metrics if m in line), default=0)
        name = f"{line['language']} (train)" if line["language"] == train_language else line["language"]
        lines.append(f"| {name} | {line['split']} | {seeds} | " + " | ".join(_cell(line.get(m)) for m in metrics) + " |")
    return "\n".join(lines)


def chart(rows: Sequence[dict], title: str, train_language: str):
    """Bars of each metric per language and split (the train language's first, the mean over test
    languages last), the standard deviation over seeds as error bars. Returns the matplotlib Figure."""
    import numpy as np

    plt = pyplot()
    summary = summarise(rows, train_language)
    lines, metrics = summary["lines"], summary["metrics"]
    labels = ["mean" if line["language"] == MEAN_ROW else f"{line['language']} {line['split']}" for line in lines]
    x = np.arange(len(lines))
    width = 0.8 / len(metrics)
    figure, axis = plt.subplots(figsize=(max(6.0, 0.5 * len(lines) * len(metrics) + 2), 4.5))
    for number, metric in enumerate(metrics):
        spreads = [line.get(metric) for line in lines]
        # NaN draws nothing: no bar for a metric not measured there, no error bar for one seed.
        axis.bar(x + (number - (len(metrics) - 1) / 2) * width, [s["mean"] if s else np.nan for s in spreads], width,
                 yerr=[s["std"] if s and s["std"] is not None else np.nan for s in spreads], capsize=3, label=metric)
    axis.set_xticks(x, labels, rotation=45 if len(lines) > 8 else 0)
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("score")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(loc="upper right", fontsize=8)
    axis.set_title(title)
    figure.tight_layout()
    return figure


def write_report(rows: Sequence[dict], out_dir: str | Path, title: str, train_language: str) -> dict[str, Path]:
    """``transfer.md`` (title, table, what the numbers are), ``transfer.json`` (the rows and their
    summary) and ``transfer.png`` (:func:`chart`) in ``out_dir``; returns their paths by extension."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "transfer.md", "json": out_dir / "transfer.json", "png": out_dir / "transfer.png"}
    rows = _checked(rows)
    summary = summarise(rows, train_language)
    write_text(paths["md"], f"# {title}\n\n{format_table(rows, train_language)}\n\n"
               f"Fine-tuned on {train_language}, the epoch picked on {train_language} dev; every other language is zero-shot. "
               "Cells: mean ± sample standard deviation over the seeds.\n")
    write_json(paths["json"], {"title": title, "train_language": train_language, **summary, "rows": list(rows)}, indent=1)
    save_png(chart(rows, title, train_language), paths["png"])
    return paths


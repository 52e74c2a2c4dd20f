"""Probe results out: a table for the terminal, ``probe.csv`` and ``probe.png``."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from lightning_kg.probe.metrics import COLUMNS

# Terminal columns: (header, CSV column, width).
TABLE = (("", "key", 6), ("facts", "queries", 5), ("skip", "skipped", 4), ("cands", "candidates", 5), ("chance", "chance_p1", 6),
         ("E P@1", "entity_p1", 6), ("E P@10", "entity_p10", 6), ("E MRR", "entity_mrr", 6),
         ("W P@1", "word_p1", 6), ("W P@10", "word_p10", 6), ("W MRR", "word_mrr", 6),
         ("E cons", "entity_consistency", 6), ("W cons", "word_consistency", 6), ("align@1", "alignment_acc1", 7))


def _cell(value, width: int) -> str:
    if value is None:
        text = "n/a"
    elif isinstance(value, float):
        text = f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    else:
        text = str(value)
    return text.rjust(width)


def format_table(rows: list[dict], skipped: Counter, title: str) -> str:
    """Languages, then relations, then the mean; E = entity-based, W = word-based prompts; what was
    skipped and why underneath."""
    header = " ".join(name.rjust(width) if column != "key" else name.ljust(width) for name, column, width in TABLE)
    lines = [title, "", header, "-" * len(header)]
    scope = None
    for row in rows:
        if scope is not None and row["scope"] != scope:
            lines.append("-" * len(header))
        scope = row["scope"]
        lines.append(" ".join(str(row["key"]).ljust(width) if column == "key" else _cell(row[column], width)
                              for _, column, width in TABLE))
    lines.append("E: entity-based prompt (mep_vocab head), W: word-based prompt (mlm head, mean token log-probability); "
                 "cons: same top-1 entity as the fact in another language; align@1: entity label retrieval across languages")
    if skipped:
        lines.append("skipped (facts not probed):")
        by_reason: dict[tuple[str, str], list[tuple[str, int]]] = {}
        for (lang, relation, reason), count in sorted(skipped.items()):
            by_reason.setdefault((relation, reason), []).append((lang, count))
        for (relation, reason), entries in by_reason.items():
            langs = ", ".join(f"{lang} {count}" for lang, count in entries)
            lines.append(f"  {relation}: {reason} ({sum(c for _, c in entries)} facts: {langs})")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    """One line per row of :func:`lightning_kg.probe.metrics.summarise`; a metric not measured is empty."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Per-language bars, entity-based and word-based side by side: P@1 (chance marked) and MRR."""
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters and CI
    import matplotlib.pyplot as plt
    import numpy as np

    shown = [r for r in rows if r["scope"] in ("language", "all") and r["queries"]]
    keys = [r["key"] for r in shown]
    x = np.arange(len(shown))
    figure, axes = plt.subplots(2, 1, figsize=(max(6.0, 0.6 * len(shown) + 2), 6.5), sharex=True)
    for axis, metric in zip(axes, ("p1", "mrr")):
        for offset, kind, color in ((-0.2, "entity", "tab:blue"), (0.2, "word", "tab:orange")):
            values = [r[f"{kind}_{metric}"] for r in shown]
            available = any(v is not None for v in values)
            axis.bar(x + offset, [v or 0.0 for v in values], width=0.4, color=color,
                     label=f"{kind}-based" + ("" if available else " (n/a: no head)"))
        if metric == "p1":
            axis.scatter(x, [r["chance_p1"] for r in shown], marker="_", s=300, color="black", label="chance", zorder=3)
        axis.set_ylabel({"p1": "P@1", "mrr": "MRR"}[metric])
        axis.set_ylim(0, 1.05)
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_title(title)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[1].set_xticks(x, keys)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)

"""Probe results out: a table for the terminal, ``probe.csv`` and ``probe.png``."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from lightning_kg.charts import pyplot, save_png
from lightning_kg.dataset.files import atomic_file
from lightning_kg.probe.metrics import COLUMNS

# Terminal columns: (header, CSV column, width).
TABLE = (("", "key", 6), ("facts", "queries", 5), ("skip", "skipped", 4), ("cands", "candidates", 5), ("chance", "chance_p1", 6),
         ("major", "majority_p1", 6), ("E P@1", "entity_p1", 6), ("E P@10", "entity_p10", 6), ("E MRR", "entity_mrr", 6),
         ("W P@1", "word_p1", 6), ("W P@10", "word_p10", 6), ("W MRR", "word_mrr", 6),
         ("E cons", "entity_consistency", 6), ("W cons", "word_consistency", 6), ("align@1", "alignment_acc1", 7),
         ("diff@1", "alignment_acc1_distinct", 6), ("same", "alignment_same_label", 5))


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
    lines.append("chance: P@1 of a random ranking, major: P@1 of always answering the most frequent object (LAMA's baseline);\n"
                 "E: entity-based prompt (mep_vocab head), W: word-based prompt (mlm head, mean token log-probability); "
                 "cons: same top-1 entity as the fact in another language;\n"
                 "align@1: entity retrieval by label across languages, diff@1: the same over entities whose two labels "
                 "differ, same: share of entities whose two labels are one string (found by spelling alone)")
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
    with atomic_file(path, "w", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})


def plot(rows: list[dict], path: Path, title: str) -> None:
    """:func:`chart` as a PNG."""
    save_png(chart(rows, title), path)


def chart(rows: list[dict], title: str):
    """Per-language bars: P@1 (chance and the most-frequent-object baseline marked) and MRR, entity-based and word-based side by side; entity
    alignment acc@1 over all entities and over those whose two labels differ (share of same-string
    labels marked). Returns the matplotlib Figure, three axes in that order."""
    import numpy as np

    plt = pyplot()

    shown = [r for r in rows if r["scope"] in ("language", "all") and (r["queries"] or r["alignment_acc1"] is not None)]
    keys = [r["key"] for r in shown]
    x = np.arange(len(shown))
    figure, axes = plt.subplots(3, 1, figsize=(max(6.0, 0.6 * len(shown) + 2), 9.0), sharex=True)
    panels = (("P@1", (("entity_p1", "entity-based", "tab:blue"), ("word_p1", "word-based", "tab:orange"))),
              ("MRR", (("entity_mrr", "entity-based", "tab:blue"), ("word_mrr", "word-based", "tab:orange"))),
              ("alignment acc@1", (("alignment_acc1", "all entities", "tab:green"),
                                   ("alignment_acc1_distinct", "labels that differ", "tab:olive"))))
    markers = {0: (("chance_p1", "chance", "_"), ("majority_p1", "most frequent object", "x")),
               2: (("alignment_same_label", "share of same-string labels", "_"),)}
    for number, (axis, (name, bars)) in enumerate(zip(axes, panels)):
        for offset, (column, label, color) in zip((-0.2, 0.2), bars):
            values = [r[column] for r in shown]
            available = any(v is not None for v in values)
            axis.bar(x + offset, [v or 0.0 for v in values], width=0.4, color=color,
                     label=label + ("" if available else " (n/a)"))
        for column, label, marker in markers.get(number, ()):
            axis.scatter(x, [np.nan if r[column] is None else r[column] for r in shown], marker=marker,
                         s=300 if marker == "_" else 40, color="black", label=label, zorder=3)
        axis.set_ylabel(name)
        axis.set_ylim(0, 1.05)
        axis.grid(axis="y", alpha=0.3)
        axis.legend(loc="upper right", fontsize=8)
    axes[0].set_title(title)
    axes[2].set_xticks(x, keys)
    figure.tight_layout()
    return figure

"""Knowledge learning curves of several runs side by side: the held-out entity P@1 that ``ProbeCurve``
logged and the validation MLM loss, per step, grouped by setting, with the mean and spread over seeds
and how many seeds are above the most-frequent-object baseline (``major``) at each probe.

What chose the knowledge demo's schedule (README, "Probing what the model knows"): each group is a
label and a glob of run directories (one per seed) written by ``fit`` with the probe callback on
(a label given twice gathers both globs)::

    python bench/knowledge_curves.py linear='runs/ablation-knowledge/all/seed-*' linear='runs/knowledge-seeds/all/seed-*' \\
        linear-5250='runs/k5250/all/seed-[012]' constant='runs/kconst/all/seed-*' --out docs/knowledge-curve.png

(the run directories of ``ablate --arms all`` at those settings; docs/knowledge-curve.png was drawn so)
"""

from __future__ import annotations

import argparse
import csv
import glob
import statistics
from pathlib import Path

from lightning_kg.charts import pyplot, save_png

P1, MAJOR, VAL_MLM = "probe/entity_p1/mean", "probe/majority_p1/mean", "val/mlm"


def curves(run_dir: Path) -> dict[str, dict[int, float]]:
    """``{metric: {step: value}}`` of one run's ``metrics.csv`` for P@1, ``major`` and the val MLM loss;
    the val loss is logged at the step before the probe's (validation ends a step early), so it is
    keyed by the next step."""
    if not (run_dir / "metrics.csv").is_file():
        raise SystemExit(f"{run_dir}: no metrics.csv; expected a fit's run directory")
    with open(run_dir / "metrics.csv", encoding="utf-8") as lines:
        rows = list(csv.DictReader(lines))
    found = {key: {} for key in (P1, MAJOR, VAL_MLM)}
    for row in rows:
        for key in found:
            if row.get(key):
                step = int(row["step"]) + (key == VAL_MLM)
                found[key][step] = float(row[key])
    if not found[P1]:
        raise SystemExit(f"{run_dir / 'metrics.csv'}: no {P1}; was it trained with the ProbeCurve callback?")
    return found


def summary(groups: dict[str, list[dict[str, dict[int, float]]]]) -> list[dict]:
    """One row per setting and probed step (``groups``: each setting's runs' :func:`curves`): P@1 mean,
    sd and per seed, seeds above ``major``, val MLM."""
    rows = []
    for label, found in groups.items():
        for step in sorted(set.intersection(*(set(run[P1]) for run in found))):
            p1 = [run[P1][step] for run in found]
            major = found[0][MAJOR][step]
            mlm = [run[VAL_MLM][step] for run in found if step in run[VAL_MLM]]
            rows.append({"setting": label, "step": step, "seeds": len(p1), "p1_mean": statistics.mean(p1),
                         "p1_sd": statistics.stdev(p1) if len(p1) > 1 else 0.0, "p1": p1, "major": major,
                         "above_major": sum(v > major for v in p1), "val_mlm": statistics.mean(mlm) if mlm else None})
    return rows


def plot(groups: dict[str, list[dict[str, dict[int, float]]]], path: Path) -> None:
    """P@1 (left) and val MLM (right) against the step: each seed thin, the setting's mean thick."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10.0, 4.0))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    major = None
    for (label, found), color in zip(groups.items(), colors):
        major = major or next(iter(found[0][MAJOR].values()))
        for axis, key in zip(axes, (P1, VAL_MLM)):
            steps = sorted(set.intersection(*(set(run[key]) for run in found)))
            for run in found:
                axis.plot(steps, [run[key][s] for s in steps], color=color, alpha=0.3, linewidth=0.8)
            axis.plot(steps, [statistics.mean(run[key][s] for run in found) for s in steps], color=color,
                      marker="o", linewidth=2, label=f"{label}, mean of {len(found)} seeds")
    axes[0].axhline(major, linestyle="--", color="black", label=f"major {major:.3f}")
    for axis, name in zip(axes, ("held-out entity P@1 (macro over languages)", "validation MLM loss (nats)")):
        axis.set_xlabel("step")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    save_png(figure, path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="+", metavar="LABEL=GLOB", help="a setting's label and its run directories")
    parser.add_argument("--out", default="knowledge-curves.png", help="the chart (PNG)")
    args = parser.parse_args()
    groups = {}
    for group in args.groups:
        label, _, pattern = group.partition("=")
        runs = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_dir())
        if not label or not runs:
            parser.error(f"{group!r}: expected LABEL=GLOB matching run directories")
        groups.setdefault(label, []).extend(curves(run) for run in runs)  # a label given twice gathers both globs
    print("| setting | step | seeds | held-out entity P@1, mean ± sd | per seed | above `major` | val MLM |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in summary(groups):
        mlm = "" if row["val_mlm"] is None else f"{row['val_mlm']:.2f}"
        print(f"| {row['setting']} | {row['step']} | {row['seeds']} | {row['p1_mean']:.3f} ± {row['p1_sd']:.3f} | "
              f"{' / '.join(f'{v:.3f}' for v in row['p1'])} | {row['above_major']} (major {row['major']:.3f}) | {mlm} |")
    plot(groups, Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""What every report draws with: pyplot without a display, a PNG written atomically, and the
mean and spread over seeds that the probe, the ablation and transfer tables print."""

from __future__ import annotations

import statistics
from pathlib import Path

from lightning_kg.dataset.files import atomic_file


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend: no display on clusters and CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure, path: Path, dpi: int = 120) -> None:
    """``figure`` as a PNG at ``path``, atomically, then closed (pyplot keeps every open figure)."""
    with atomic_file(path) as out:
        figure.savefig(out, format="png", dpi=dpi)
    pyplot().close(figure)


def spread(values: list[float | None]) -> tuple[float | None, float | None]:
    """(mean, sample standard deviation) of the measured values; (None, None) when none was (no head
    for it), sd None with one seed."""
    measured = [v for v in values if v is not None]
    if not measured:
        return None, None
    return statistics.mean(measured), statistics.stdev(measured) if len(measured) > 1 else None


def mean_sd(mean: float | None, sd: float | None, digits: int = 3) -> str:
    """A table cell: ``0.372 ± 0.012``, ``0.372`` with one seed, ``n/a`` with none."""
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f}" if sd is None else f"{mean:.{digits}f} ± {sd:.{digits}f}"

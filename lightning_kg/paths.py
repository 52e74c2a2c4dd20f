"""Where the repository's own files are (``shards/demo``, ``conf/``), so that the demo and the
defaults that name them work from any working directory."""

from __future__ import annotations

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
"""The checkout holding lightning_kg/, shards/ and conf/."""


def find_path(path: str | Path) -> Path:
    """``path`` as given, or, when it is relative and not found from the working directory, the same
    path in the repository beside the package. A local file of that name wins; the Docker image keeps
    ``conf/`` and ``shards/`` in its working directory."""
    path = Path(path)
    if path.is_absolute() or path.exists() or not (REPOSITORY / path).exists():
        return path
    return REPOSITORY / path

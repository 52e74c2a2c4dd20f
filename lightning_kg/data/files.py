"""JSON files written whole or not at all: the text goes to ``<name>.tmp`` beside the file and is
renamed over it, so a kill mid-write never leaves a half file that reads as a finished stage."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path: Path, value, indent: int | None = None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)

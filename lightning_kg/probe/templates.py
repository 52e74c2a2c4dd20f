"""Cloze templates: relation -> language -> a sentence with ``[X]`` (subject) and ``[Y]`` (object).

They live in a YAML file (``conf/probe/templates.yaml``) so a user adds a relation or a language
without touching code; a fact without a template is skipped and counted, never dropped silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

SUBJECT, OBJECT = "[X]", "[Y]"


def load_templates(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """``{relation: {language: template}}`` from a YAML file; every template must hold ``[X]`` and
    ``[Y]`` exactly once. Errors name the file, the relation and the language."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"templates file not found: {path} (relative paths are to the working directory, "
                                f"{Path.cwd()})")
    # resolve=False: a template is text, never an ${interpolation}.
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping relation -> language -> template, got {type(data).__name__}")
    templates: dict[str, dict[str, str]] = {}
    for relation, by_language in data.items():
        if not isinstance(by_language, dict):
            raise ValueError(f"{path}: relation {relation!r}: expected a mapping language -> template")
        for lang, template in by_language.items():
            if not isinstance(template, str) or template.count(SUBJECT) != 1 or template.count(OBJECT) != 1:
                raise ValueError(f"{path}: {relation}.{lang}: {template!r} must hold {SUBJECT} and {OBJECT} exactly once")
            templates.setdefault(str(relation), {})[str(lang)] = template
    return templates


@dataclass(frozen=True)
class Prompt:
    """A filled template and where the subject and the object stand in it (character spans, end exclusive)."""

    text: str
    subject_span: tuple[int, int]
    object_span: tuple[int, int]


def fill(template: str, subject: str, obj: str) -> Prompt:
    """Put ``subject`` at ``[X]`` and ``obj`` at ``[Y]`` (either may come first)."""
    spans: dict[str, tuple[int, int]] = {}
    text, rest = "", template
    while rest:
        positions = [(rest.find(marker), marker) for marker in (SUBJECT, OBJECT) if marker in rest]
        if not positions:
            text += rest
            break
        at, marker = min(positions)
        value = subject if marker == SUBJECT else obj
        text += rest[:at]
        spans[marker] = (len(text), len(text) + len(value))
        text += value
        rest = rest[at + len(marker):]
    return Prompt(text, spans[SUBJECT], spans[OBJECT])

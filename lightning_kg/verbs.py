"""What every verb shares: a parser built from a settings dataclass (its field docstrings become
the flags' help, ``--config`` files compose, omegaconf interpolation), the check of ``--config``
files before parsing, and the one-line ``error:`` exit.

jsonargparse names a config file's YAML error ``<unicode string>`` and a misspelt key without its
file, so the files are read here first and a fault names the file, the line and what was expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from pathlib import Path
from typing import NoReturn, TypeVar

import yaml

Settings = TypeVar("Settings")


class ConfigFileError(ValueError):
    """A ``--config`` file that is missing, not YAML, or holds a key the verb does not have."""


def fail(message: str, status: int = 1) -> NoReturn:
    """Stop with ``error: <message>`` on one line of stderr: a traceback would bury what the user must fix."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(status)


def config_files(args: list[str]) -> list[str]:
    """The values of ``--config``/``-c`` in command-line ``args``."""
    found = []
    for number, arg in enumerate(args):
        if arg in ("--config", "-c") and number + 1 < len(args):
            found.append(args[number + 1])
        elif arg.startswith("--config="):
            found.append(arg.partition("=")[2])
    return found


def check_config_files(args: list[str], settings: type | None = None, verb: str = "") -> None:
    """Each ``--config`` naming a file (rather than inline YAML) exists and parses as YAML; with a
    ``settings`` dataclass, it is a mapping whose keys are that dataclass's fields."""
    for value in config_files(args):
        path = Path(value)
        if not path.is_file():
            if path.suffix in (".yaml", ".yml", ".json"):
                raise ConfigFileError(f"--config {value}: no such file")
            continue
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigFileError(f"--config {value}: not valid YAML{where}: {error.problem}") from None
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise ConfigFileError(f"--config {value}: not valid YAML: {error}") from None
        if settings is not None:
            _check_keys(path, values, settings, verb)


def _check_keys(path: Path, values, settings: type, verb: str) -> None:
    known = sorted(field.name for field in dataclasses.fields(settings))
    if not isinstance(values, dict):
        raise ConfigFileError(f"{path}: expected a mapping of settings ({', '.join(known[:3])}: ...), not {type(values).__name__}")
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; the settings are: {', '.join(known)}"
            raise ConfigFileError(f"{path}: {key!r} is not a {verb or settings.__name__} setting{hint}")


def usual_spellings(args: list[str], settings: type) -> list[str]:
    """Accept ``--num-slices`` for ``--num_slices`` and a bare ``--strict`` for ``--strict true``:
    spellings people type that jsonargparse would refuse."""
    fields = {field.name: field.type for field in dataclasses.fields(settings)}
    spelled = []
    for i, arg in enumerate(args):
        name, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if name.replace("-", "_") in fields:
            name = name.replace("-", "_")
            arg = f"--{name}{sep}{value}"
            if fields[name] in ("bool", bool) and not sep and (i + 1 == len(args) or args[i + 1].startswith("--")):
                spelled += [arg, "true"]
                continue
        spelled.append(arg)
    return spelled


def parse_settings(settings: type[Settings], args: list[str], verb: str, description: str) -> Settings:
    """``settings`` (a dataclass) filled from ``--config`` files, then flags, as ``python -m lightning_kg <verb>``
    parses them; ``--print_config`` prints the composed YAML and exits. A bad config file or a value the
    dataclass refuses stops with ``error:``."""
    from jsonargparse import ArgumentParser, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)  # field docstrings become the flags' help
    parser = ArgumentParser(prog=f"python -m lightning_kg {verb}", parser_mode="omegaconf", description=description)
    parser.add_argument("--config", action="config", help="YAML config file(s); later ones win")
    parser.add_class_arguments(settings)
    try:
        check_config_files(args, settings, verb)
    except ConfigFileError as error:
        fail(str(error))
    parsed = parser.parse_args(usual_spellings(args, settings))
    parsed.pop("config", None)
    try:
        return settings(**parsed.as_dict())
    except ValueError as error:  # the dataclass's own checks (__post_init__) name the setting
        fail(str(error))

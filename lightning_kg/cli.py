"""``python -m lightning_kg VERB``: Lightning's CLI for fit/validate/test, and the verbs around it.

Every verb takes ``--config`` (several compose, later wins; YAML may interpolate, omegaconf mode),
``--print_config`` and dotted overrides, so preparing, training and exporting read alike.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import sys
import time
from pathlib import Path

USAGE = """usage: python -m lightning_kg VERB [--config FILE.yaml ...] [--print_config] [--key.sub value ...]

Pre-train cross-lingual encoders with multilingual knowledge (mLUKE + XLM-K objectives).

verbs:
  prepare    Wikipedia + Wikidata dumps -> entity vocabulary, tokenizer, WebDataset shards
  fit        train (no argument: the tiny model on shards/demo, all four objectives, on this machine)
  validate   evaluate a checkpoint on the validation shards
  test       evaluate a checkpoint on the validation shards (the test stage)
  export     a checkpoint -> a Hugging Face directory that transformers loads
  probe      cloze probing of a checkpoint on held-out facts, per language (entity- and word-based prompts)
  ablate     train each set of objectives at several seeds, probe each, one table of what each objective adds

`python -m lightning_kg VERB --help` lists a verb's options.
"""

TRAINER_VERBS = ("fit", "validate", "test")


def _package_file(package: str, relative: str) -> str:
    """``${package_file:gensim,test/test_data/x.bz2}`` in a config: a file shipped inside an installed package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed; it is needed for {relative}")
    return str(Path(list(spec.submodule_search_locations)[0]) / relative)


def _register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("package_file"):
        # omegaconf 2.4 renamed register_new_resolver (2.3) to register_resolver.
        register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
        register("package_file", _package_file)


def _configure_logging() -> None:
    # Our loggers only: Lightning has its own handler, and a root one would print its lines twice.
    ours = logging.getLogger("lightning_kg")
    if not ours.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        ours.addHandler(handler)
        ours.setLevel(logging.INFO)
        ours.propagate = False


def _prepare_spellings(args: list[str], config_class) -> list[str]:
    """Accept ``--num-slices`` for ``--num_slices`` and a bare ``--strict`` for ``--strict true``:
    spellings people type that jsonargparse would refuse."""
    fields = {field.name: field.type for field in dataclasses.fields(config_class)}
    spelled = []
    for i, arg in enumerate(args):
        name, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if name.replace("-", "_") in fields:
            name = name.replace("-", "_")
            arg = f"--{name}{sep}{value}"
            if fields[name] == "bool" and not sep and (i + 1 == len(args) or args[i + 1].startswith("--")):
                spelled += [arg, "true"]
                continue
        spelled.append(arg)
    return spelled


def run_prepare(args: list[str]) -> None:
    from jsonargparse import ArgumentParser, set_parsing_settings

    from lightning_kg.prepare.config import PrepareConfig, check_config_files
    from lightning_kg.prepare.pipeline import peak_memory_mib, prepare

    set_parsing_settings(docstring_parse_attribute_docstrings=True)  # PrepareConfig's field docstrings become the help

    parser = ArgumentParser(prog="python -m lightning_kg prepare", parser_mode="omegaconf",
                            description="Wikipedia + Wikidata dumps to an entity vocabulary, a tokenizer and WebDataset shards.")
    parser.add_argument("--config", action="config", help="YAML config file(s); later ones win")
    parser.add_class_arguments(PrepareConfig)
    try:
        check_config_files(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    config = parser.parse_args(_prepare_spellings(args, PrepareConfig))
    config.pop("config", None)
    started = time.perf_counter()
    try:
        manifest = prepare(PrepareConfig(**config.as_dict()))
    except (OSError, ValueError) as error:
        # A missing or malformed input, an unwritable output, an empty result: the message names
        # the file and what was expected; a traceback would only bury it.
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    if manifest is None:
        print(f"stage {config.stage} (slice {config.slice} of {config.num_slices}) done in {time.perf_counter() - started:.1f} s")
        return
    counts = manifest["counts"]
    print(f"prepared {config.out}: {counts['pages']} pages, {counts['entities']} entities, "
          f"{sum(s['samples'] for s in manifest['shards']['train'])} train samples, facts {counts['facts']}, "
          f"{counts['skipped_records']} skipped record(s) in {time.perf_counter() - started:.1f} s, "
          f"peak memory {peak_memory_mib():.0f} MiB")


def run_trainer(verb: str, args: list[str]) -> None:
    from lightning_kg.train.cli import KnowledgeCLI

    # None when these are the process's own arguments: LightningCLI then reads sys.argv itself
    # (and does not warn that both were given).
    KnowledgeCLI(args=None if [verb, *args] == sys.argv[1:] else [verb, *args], after_test=probe_after_test)


def probe_after_test(ckpt_path: Path, data_dir: Path, out: Path | None) -> None:
    """``test`` also probes what the checkpoint knows (lightning_kg.probe): into ``out`` when given,
    else into the checkpoint's run directory."""
    from lightning_kg.probe.run import ProbeConfig, probe_and_write

    probe_and_write(ProbeConfig(ckpt_path=str(ckpt_path), data_dir=str(data_dir), out=str(out) if out else None))


def run_export(args: list[str]) -> None:
    from lightning_kg.export import main as export_main

    export_main(args)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    verb, rest = argv[0], argv[1:]
    _configure_logging()
    _register_resolvers()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if verb in TRAINER_VERBS:
        run_trainer(verb, rest)
    elif verb == "prepare":
        run_prepare(rest)
    elif verb == "export":
        run_export(rest)
    elif verb == "probe":
        from lightning_kg.probe.run import main as probe_main

        probe_main(rest)
    elif verb == "ablate":
        from lightning_kg.ablate import main as ablate_main

        ablate_main(rest)
    else:
        print(f"unknown verb {verb!r}\n\n{USAGE}", file=sys.stderr)
        raise SystemExit(2)

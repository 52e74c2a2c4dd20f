"""``python -m lightning_kg VERB``: Lightning's CLI for fit/validate/test, and the verbs around it.

Every verb takes ``--config`` (several compose, later wins; YAML may interpolate, omegaconf mode),
``--print_config`` and dotted overrides, so preparing, training and exporting read alike.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path

USAGE = """usage: python -m lightning_kg VERB [--config FILE.yaml ...] [--print_config] [--key.sub value ...]

Pre-train cross-lingual encoders with multilingual knowledge (mLUKE + XLM-K objectives).

verbs:
{verbs}

`python -m lightning_kg VERB --help` lists a verb's options.
"""

VERBS = {
    "prepare": ("lightning_kg.prepare.main", "Wikipedia + Wikidata dumps -> entity vocabulary, tokenizer, WebDataset shards"),
    "fit": ("lightning_kg.train.main", "train (no argument: the tiny model on shards/demo, all four objectives, on this machine)"),
    "validate": ("lightning_kg.train.main", "evaluate a checkpoint on the validation shards"),
    "test": ("lightning_kg.train.main", "evaluate a checkpoint on the validation shards (the test stage), then probe it"),
    "export": ("lightning_kg.export.main", "a checkpoint -> a Hugging Face directory that transformers loads"),
    "probe": ("lightning_kg.probe.main", "cloze probing of a checkpoint on held-out facts, per language (entity- and word-based prompts)"),
    "transfer": ("lightning_kg.transfer.main", "fine-tune a checkpoint on a task (ner, relation, typing, pair) in one language, test the others zero-shot"),
    "ablate": ("lightning_kg.experiments.ablate", "train each set of objectives at several seeds, probe each, one table of what each adds"),
}
"""Verb -> (the module whose ``main`` runs it, one line of help). Imported only when chosen: each
verb's imports (torch, Lightning, DeepSpeed) cost seconds."""
TRAINER_VERBS = ("fit", "validate", "test")  # their main also takes the verb


def usage() -> str:
    return USAGE.format(verbs="\n".join(f"  {verb:<10} {help}" for verb, (_, help) in VERBS.items()))


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


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"unknown verb {verb!r}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    _configure_logging()
    _register_resolvers()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run = importlib.import_module(VERBS[verb][0]).main
    run(verb, rest) if verb in TRAINER_VERBS else run(rest)

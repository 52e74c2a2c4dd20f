"""``python -m lightning_kg probe``: cloze probing of a checkpoint, written beside its run."""

from __future__ import annotations

from lightning_kg.probe.run import ProbeConfig, probe_and_write
from lightning_kg.verbs import parse_settings


def main(args: list[str]) -> None:
    probe_and_write(parse_settings(ProbeConfig, args, "probe",
                                   "Cloze probing (entity- and word-based prompts) of a checkpoint on held-out facts."))

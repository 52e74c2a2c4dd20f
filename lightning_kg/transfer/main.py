"""``python -m lightning_kg transfer``: fine-tune a checkpoint on a task in one language, test it zero-shot in the others."""

from __future__ import annotations

from lightning_kg.transfer.run import TransferConfig, transfer_and_write
from lightning_kg.verbs import fail, parse_settings


def main(args: list[str]) -> None:
    config = parse_settings(TransferConfig, args, "transfer",
                            "Fine-tune on one language's train split (epoch picked on its dev split), "
                            "test zero-shot on every other language; mean and spread over seeds.")
    try:
        transfer_and_write(config)
    except (FileNotFoundError, ValueError) as error:  # bad task files (TaskDataError), paths, settings
        fail(str(error))

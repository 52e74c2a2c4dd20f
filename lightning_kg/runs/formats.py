"""Checkpoint formats: the version today's code writes, and the small table that brings an older
checkpoint up to it, applied wherever a checkpoint is read (resume, ``init_from``, export, probe,
transfer, the start-up checks).

Version 1 (no ``lightning_kg_format`` key; commit 711c5c4 and earlier, tests/fixtures/checkpoint-711c5c4
is one) named each contrastive objective's heads and queues apart (``mention_projection.`` is now
``mep_contrastive.query_head.``) and kept the nine objective settings as flat hyperparameters
(``mlm_weight``). Version 2 is today's. The order in which parameters are registered did not change,
so an old optimiser state, matched to parameters by position, fits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from lightning_kg.model.config import ObjectiveSettings

FORMAT_KEY = "lightning_kg_format"
FORMAT_VERSION = 2

# Version 1 -> 2: (old state-dict prefix, today's), relative to KnowledgePretrainingModel.
OLD_STATE_PREFIXES = (
    ("mention_projection.", "mep_contrastive.query_head."),
    ("knowledge_projection.", "mep_contrastive.key_head."),
    ("mep_mention_queue.", "mep_contrastive.query_queue."),
    ("mep_knowledge_queue.", "mep_contrastive.key_queue."),
    ("query_projection.", "oe.query_head."),
    ("object_projection.", "oe.key_head."),
    ("oe_query_queue.", "oe.query_queue."),
    ("oe_object_queue.", "oe.key_queue."),
)
OBJECTIVE_KEYS = tuple(field.name for field in dataclasses.fields(ObjectiveSettings))
"""The hyperparameters that were flat (``mlm_weight``) in version 1 and now sit in ``objective_settings``."""


def today_name(name: str, prefix: str = "") -> str:
    """``prefix + "mention_projection.net.0.weight"`` -> ``prefix + "mep_contrastive.query_head.net.0.weight"``;
    any other name unchanged."""
    for old, new in OLD_STATE_PREFIXES:
        if name.startswith(prefix + old):
            return prefix + new + name[len(prefix + old):]
    return name


def rename_old_keys(state: dict, prefix: str = "") -> None:
    """Rename, in place and keeping their order, the keys of ``state`` under ``prefix`` that carry an old name."""
    renamed = {today_name(key, prefix): value for key, value in state.items()}
    if list(renamed) != list(state):
        state.clear()
        state.update(renamed)


def nest_old_hparams(hparams: Mapping) -> dict:
    """A run's model hyperparameters with the flat objective keys of version 1 moved into
    ``objective_settings``; today's come back unchanged. Both at once are refused, as one would hide the other."""
    flat = {key: hparams[key] for key in OBJECTIVE_KEYS if key in hparams}
    if not flat:
        return dict(hparams)
    if hparams.get("objective_settings") is not None:
        raise ValueError(f"hyperparameters hold both objective_settings and the old flat keys {sorted(flat)}; expected one of the two")
    return {**{key: value for key, value in hparams.items() if key not in flat}, "objective_settings": flat}


def objective_settings_of(hparams: Mapping) -> ObjectiveSettings:
    """The ``ObjectiveSettings`` a run's hyperparameters hold: ``objective_settings`` (a dict, as saved;
    absent: the defaults), or the flat keys of version 1."""
    settings = nest_old_hparams(hparams).get("objective_settings") or {}
    if isinstance(settings, ObjectiveSettings):
        return settings
    unknown = sorted(set(settings) - set(OBJECTIVE_KEYS))
    if unknown:
        raise ValueError(f"model.objective_settings: no such setting {', '.join(unknown)}; expected some of {', '.join(OBJECTIVE_KEYS)}")
    return ObjectiveSettings(**settings)


def _from_version_1(checkpoint: dict) -> None:
    rename_old_keys(checkpoint.get("state_dict", {}), "model.")
    if checkpoint.get("hyper_parameters") is not None:
        checkpoint["hyper_parameters"] = nest_old_hparams(checkpoint["hyper_parameters"])


UPGRADES = {1: _from_version_1}
"""Version -> the step that brings a checkpoint of it to the next version, in place."""


def upgrade(checkpoint: dict) -> dict:
    """``checkpoint`` (a dict with ``state_dict``, maybe ``hyper_parameters``) brought to
    :data:`FORMAT_VERSION` in place, and returned. A newer version than this code writes is refused."""
    version = checkpoint.get(FORMAT_KEY, 1)
    if version > FORMAT_VERSION:
        raise ValueError(f"checkpoint format {version} is newer than this lightning_kg reads ({FORMAT_VERSION}); update lightning_kg")
    for step in range(version, FORMAT_VERSION):
        UPGRADES[step](checkpoint)
    checkpoint[FORMAT_KEY] = FORMAT_VERSION
    return checkpoint

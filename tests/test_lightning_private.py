"""The private Lightning members the package relies on still exist in the installed Lightning."""

import importlib

import lightning
import pytest

from lightning_kg.lightning_private import PRIVATE_OVERRIDES


@pytest.mark.parametrize("qualified", sorted(PRIVATE_OVERRIDES))
def test_private_members_exist(qualified, tmp_path):
    module, name = qualified.rsplit(".", 1)
    owner = getattr(importlib.import_module(module), name)
    if name == "ExperimentWriter":  # its _fs and metrics_file_path are set per instance, in __init__
        owner = owner(str(tmp_path))
    missing = [m for m in PRIVATE_OVERRIDES[qualified] if not hasattr(owner, m)]
    assert not missing, f"Lightning {lightning.__version__}: {qualified} lost {missing}; see lightning_kg/lightning_private.py"


def test_trainer_internals_exist(tmp_path):
    trainer = lightning.Trainer(default_root_dir=tmp_path, accelerator="cpu", logger=False, enable_progress_bar=False)
    from lightning_kg.lightning_private import batches_processed, cluster_environment, reset_step_results, should_update_logs

    assert batches_processed(trainer) == 0
    assert type(cluster_environment(trainer)).__name__ == "LightningEnvironment"
    assert should_update_logs(trainer) in (True, False)
    # Outside a loop there are no step results yet; the property that gives them must exist.
    assert isinstance(getattr(type(trainer), "_results", None), property)
    assert callable(reset_step_results)

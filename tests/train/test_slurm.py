"""The SLURM launch path without SLURM: its variables set by hand, then what Lightning derives."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from lightning.pytorch.plugins.environments import SLURMEnvironment

from lightning_kg.cli import _register_resolvers
from lightning_kg.train.cli import KnowledgeCLI
from tests.train.test_fit import DEMO

ROOT = Path(__file__).resolve().parents[2]

# Task 3 of a 2-node x 2-task job: the second task on the second node.
SLURM = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "lightning_kg", "SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2",
         "SLURM_JOB_NUM_NODES": "2", "SLURM_NODELIST": "gpu[017-018]", "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
         "SLURM_NODEID": "1"}


@pytest.mark.parametrize("script", sorted((ROOT / "slurm").glob("*.sbatch")), ids=lambda p: p.name)
def test_sbatch_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_lightning_derives_ranks_address_and_requeue_from_slurm(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name, value in SLURM.items():
        monkeypatch.setenv(name, value)
    _register_resolvers()
    cli = KnowledgeCLI(["--config", str(ROOT / "conf/trainer/slurm.yaml"), "--data.data_dir", DEMO,
                        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.num_nodes", "2"], run=False)
    trainer = cli.trainer
    environment = trainer.strategy.cluster_environment
    assert isinstance(environment, SLURMEnvironment)
    assert (trainer.world_size, trainer.global_rank, trainer.node_rank, trainer.local_rank) == (4, 3, 1, 1)
    assert environment.main_address == "gpu017"
    assert environment.main_port == 15000 + 4242  # from the job id, so every task agrees without talking
    assert environment.auto_requeue and environment.requeue_signal == signal.SIGUSR1
    # The run directory is named by the job id, which a requeued job keeps: it finds its checkpoints.
    assert Path(trainer.default_root_dir) == Path("runs") / "slurm-4242"
    saved = Path(trainer.default_root_dir) / "hpc_ckpt_7.ckpt"
    saved.parent.mkdir(parents=True)
    saved.touch()
    assert Path(trainer._checkpoint_connector._hpc_resume_path).resolve() == saved.resolve()

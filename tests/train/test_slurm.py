"""The SLURM launch path without SLURM: its variables set by hand, then what Lightning derives; the
sbatch script and the config agree on the requeue signal."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from lightning_kg.cli import _register_resolvers
from lightning_kg.train.main import KnowledgeCLI
from lightning_kg.train.preemption import Preemption, requeue_slurm_job, slurm_job_id
from tests.demo import DEMO, ROOT

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
    # The trainer makes this process rank 3 for Lightning's rank-zero-only calls; the later tests'
    # in-process fits would then write no metrics.csv.
    monkeypatch.setattr(rank_zero_only, "rank", rank_zero_only.rank)
    _register_resolvers()
    cli = KnowledgeCLI(["--config", str(ROOT / "conf/trainer/slurm.yaml"), "--data.data_dir", DEMO,
                        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.num_nodes", "2"], run=False)
    trainer = cli.trainer
    environment = trainer.strategy.cluster_environment
    assert isinstance(environment, SLURMEnvironment)
    assert (trainer.world_size, trainer.global_rank, trainer.node_rank, trainer.local_rank) == (4, 3, 1, 1)
    assert environment.main_address == "gpu017"
    assert environment.main_port == 15000 + 4242  # from the job id, so every task agrees without talking
    # Lightning's own requeue (a save and scontrol inside the signal handler) is off; ours handles the signal.
    assert not environment.auto_requeue and environment.requeue_signal == signal.SIGUSR1
    assert any(isinstance(callback, Preemption) for callback in trainer.callbacks)
    # The run directory is named by the job id, which a requeued job keeps: it finds its checkpoints
    # (tests/train/test_preemption.py requeues and resumes a real run).
    assert Path(trainer.default_root_dir) == Path("runs") / "slurm-4242"


def test_the_sbatch_signal_is_the_configs_requeue_signal():
    sbatch = (ROOT / "slurm" / "fit.sbatch").read_text()
    signals = re.findall(r"^#SBATCH --signal=(?:B:)?(\w+)@(\d+)$", sbatch, flags=re.MULTILINE)
    config = yaml.safe_load((ROOT / "conf" / "trainer" / "slurm.yaml").read_text())
    [plugin] = config["trainer"]["plugins"]
    assert plugin["class_path"] == "lightning.pytorch.plugins.environments.SLURMEnvironment"
    assert len(signals) == 1 and int(signals[0][1]) >= 60  # time for a step and a save before SIGKILL
    assert signal.Signals[signals[0][0] if signals[0][0].startswith("SIG") else "SIG" + signals[0][0]] == signal.Signals[
        plugin["init_args"]["requeue_signal"]]
    assert plugin["init_args"]["auto_requeue"] is False
    assert "mkdir -p runs" in sbatch and "#SBATCH --output=runs/" in sbatch


def test_requeue_without_scontrol_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol here
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    done, message = requeue_slurm_job()
    assert not done and "scontrol is not on PATH" in message and "job 4242 was not requeued" in message
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert slurm_job_id() == "77_3"

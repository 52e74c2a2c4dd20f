"""Print the installed versions of lightning-kg[deepspeed]'s runtime dependencies, recursively,
less torch and CUDA wheels (the image's base provides them): the Docker image's lock file.

    python docker/lock.py > docker/requirements.lock.new
"""

import importlib.metadata as metadata
import re

from packaging.requirements import Requirement

PROVIDED = {"lightning-kg", "torch", "triton", "setuptools", "pip", "wheel"}


def closure(name: str, extras: tuple[str, ...], versions: dict[str, str]) -> None:
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in versions and not extras:
        return
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return
    versions[key] = dist.version
    for line in dist.requires or []:
        requirement = Requirement(line)
        if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in (extras or ("",))):
            continue
        closure(requirement.name, tuple(requirement.extras), versions)


if __name__ == "__main__":
    found: dict[str, str] = {}
    closure("lightning-kg", ("deepspeed",), found)
    for name, version in sorted(found.items()):
        if name not in PROVIDED and not name.startswith("nvidia-"):
            print(f"{name}=={version}")

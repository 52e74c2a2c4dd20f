"""The README stays the page a new user reads (issue 29): short, every link and every file it names
present in the tree, and its quick start the commands CI runs, so a moved page or config shows here
rather than on a fresh clone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)")
NAMED_FILE = re.compile(r"(?<![\w/.-])((?:conf|bench|docs|slurm)/[\w./{},-]+\.(?:yaml|py|sh|md|png|csv|sbatch))")


def expand(path: str) -> list[str]:
    """``conf/model/{tiny,base}.yaml`` -> both files; a path without braces as it is."""
    match = re.search(r"\{([^}]*)\}", path)
    if not match:
        return [path]
    return [p for part in match.group(1).split(",") for p in expand(path[:match.start()] + part + path[match.end():])]


def test_the_readme_is_under_250_lines():
    assert len(README.read_text(encoding="utf-8").splitlines()) < 250


def anchors(page: Path) -> set[str]:
    """The ``#fragment`` each heading of a Markdown page gets on GitHub: lower case, spaces to
    hyphens, punctuation other than hyphens dropped."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        for target, fragment in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            linked = (page.parent / target) if target else page
            if not linked.exists() or (fragment and linked.suffix == ".md" and fragment not in anchors(linked)):
                broken.append(f"{page.relative_to(ROOT)}: ({target}#{fragment})" if fragment else f"{page.relative_to(ROOT)}: ({target})")
    assert not broken, broken


def test_every_config_and_script_the_readme_names_exists():
    text = README.read_text(encoding="utf-8")
    named = sorted({path for raw in NAMED_FILE.findall(text) for path in expand(raw)})
    assert "conf/demo/knowledge.yaml" in named and "bench/train_step.py" in named
    missing = [path for path in named if not (ROOT / path).exists()]
    assert not missing, missing


def test_the_quick_start_is_what_ci_runs():
    text = README.read_text(encoding="utf-8")
    install = 'python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e ".[dev]"'
    assert f"{install} && .venv/bin/python -m pytest -q\n" in text
    assert "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e . && .venv/bin/python -m lightning_kg fit\n" in text
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert install.replace("pip install", "pip install -q") in ci and ".venv/bin/python -m pytest -q\n" in ci


def listed_verbs() -> list[str]:
    """The verbs ``python -m lightning_kg --help`` lists, one an indented line under ``verbs:``."""
    usage = subprocess.run([sys.executable, "-m", "lightning_kg", "--help"], cwd=ROOT, capture_output=True, text=True,
                           check=True, timeout=60).stdout
    block = usage.split("verbs:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines() if line.startswith("  ")]


def test_the_verbs_table_and_the_commands_match_the_cli():
    text = README.read_text(encoding="utf-8")
    verbs = listed_verbs()
    assert {"prepare", "fit", "export", "probe", "ablate"} <= set(verbs)
    rows = {verb for cell in re.findall(r"^\| ([^|]+) \|", text, re.M) for verb in re.findall(r"`(\w+)`", cell)}
    assert not set(verbs) - rows, f"verbs with no row in the README's verbs table: {sorted(set(verbs) - rows)}"
    run = set(re.findall(r"python -m lightning_kg ([a-z]\w*)", text))
    assert run and not run - set(verbs), f"the README runs verbs the CLI does not list: {sorted(run - set(verbs))}"

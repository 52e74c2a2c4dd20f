"""The package's layers, in the order data flows: a module imports only from layers below its own
(or from its own package), and no import cycle exists, function-level imports included. And the
tests' own rule: no test module imports another (shared fixtures are in conftest.py, shared helpers
in modules not named test_*)."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lightning_kg"
TESTS = Path(__file__).resolve().parent
# Lowest first; each entry is a top-level module or package of lightning_kg.
LAYERS = [
    ("paths", "dataset", "lightning_private"),  # the dataset's on-disk contract, the repository's files, Lightning internals
    ("verbs", "charts"),  # what every verb's parser and every report's chart share
    ("prepare", "recipes"),  # dumps -> dataset; the demo's recipe
    ("data",),  # dataset -> batches
    ("model",),
    ("runs",),  # run directories and checkpoints: read by probe, train, export, transfer
    ("probe",),  # below train: the probe curve (train/probe_curve.py) asks the model being trained
    ("train",),
    ("export", "transfer"),  # transfer: fine-tune a checkpoint on a task, test it zero-shot in other languages
    ("experiments",),  # ablate: many fits compared
    ("cli",),
    ("__main__",),
]
LAYER_OF = {name: level for level, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every lightning_kg module ``path`` imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("lightning_kg")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lightning_kg"):
            assert node.level == 0, f"{path}: relative import"
            found.add(node.module)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def top(module: str) -> str:
    return module.split(".")[1]


def test_every_module_has_a_layer():
    assert sorted({top(m) for m in graph() if m != "lightning_kg"}) == sorted(LAYER_OF)


def test_imports_go_down_the_layers():
    wrong = [f"{module} imports {target}" for module, targets in graph().items() if module != "lightning_kg"
             for target in targets
             if top(target) != top(module) and LAYER_OF[top(target)] >= LAYER_OF[top(module)]]
    assert not wrong, "\n".join(wrong)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``edges`` (module -> modules it imports) as a path, or None."""
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                return [*trail[trail.index(target):], target]
            if target not in state and (cycle := visit(target, [*trail, target])):
                return cycle
        state[module] = "done"
        return None

    for module in sorted(edges):
        if module not in state and (cycle := visit(module, [module])):
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_function_level_imports_count(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from lightning_kg.train.module import X\n")
    assert imports_of(source) == {"lightning_kg.train.module"}


def imported_test_modules(path: Path) -> set[str]:
    """The test modules (a ``test_*`` part in ``tests.…``) ``path`` imports, or names in a string, as
    a config's ``class_path`` does."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names |= set(re.findall(r"\btests(?:\.\w+)+", node.value))
    return {name for name in names if name.startswith("tests.") and any(part.startswith("test_") for part in name.split("."))}


def test_no_test_module_imports_another():
    # This file is left out: its own check of the check names test modules on purpose.
    wrong = [f"{path.relative_to(TESTS.parent)} uses {', '.join(sorted(used))}" for path in sorted(TESTS.rglob("*.py"))
             if path != Path(__file__).resolve() and (used := imported_test_modules(path))]
    assert not wrong, "\n".join(wrong)


def test_the_test_import_check_finds_one(tmp_path):
    source = tmp_path / "test_m.py"
    source.write_text("from tests.probe import test_probe\nfrom tests.demo import DEMO\n"
                      "CONFIG = 'class_path: tests.train.test_module.FlopsSpy'\n")
    assert imported_test_modules(source) == {"tests.probe.test_probe", "tests.train.test_module.FlopsSpy"}

"""Every bench runs from a fresh clone exactly as the README writes it (``python bench/NAME.py``
from the repository root, no ``PYTHONPATH``): each answers ``--help``, and the one that writes
synthetic shards runs at its smallest setting. A bench that imports the tests' helpers fails here."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
BENCHES = sorted(path.name for path in (ROOT / "bench").glob("*.py") if path.name != "common.py")


def run_bench(name: str, *args: str, results: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["LIGHTNING_KG_BENCH_RESULTS"] = str(results)
    return subprocess.run([sys.executable, f"bench/{name}", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_every_bench_is_listed():
    assert "data_pipeline.py" in BENCHES and "train_step.py" in BENCHES and len(BENCHES) >= 13


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHES)
def test_bench_answers_help(name, tmp_path):
    result = run_bench(name, "--help", results=tmp_path / "results.csv")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"usage: {name} ")
    assert not (tmp_path / "results.csv").exists()


@pytest.mark.slow
def test_data_pipeline_on_synthetic_shards(tmp_path):
    results = tmp_path / "results.csv"
    result = run_bench("data_pipeline.py", "--seq-len", "64", "--batches", "2", "--steps", "1", "--quick", results=results)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "synthetic shards of 64-token rows" in result.stdout
    lines = result.stdout.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.split()[:1] == ["workers"]) + 1:]
    workers = [line.split()[0] for line in table if line.strip()]
    assert workers == ["0", "1", "2"]
    rows = list(csv.DictReader(results.open()))
    assert rows and all("--seq-len 64" in row["command"] for row in rows)
    assert all(float(row["ours"]) > 0 for row in rows)


def load_bench(name: str):
    """A bench script as a module (bench/ is no package: its scripts import each other by file name)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lend_command_is_the_documented_one_and_fits_the_device_tool():
    script = (ROOT / "bench" / "gpu_lend.sh").read_text().splitlines()[-1]
    documented = (ROOT / "docs" / "GPU_CHECK.md").read_text().split("\n```\n")
    assert script in documented, "docs/GPU_CHECK.md must hold bench/gpu_lend.sh's last line as a code block of its own"
    assert len(script) <= 2000  # the device tool's limit on one command
    assert "--no-index" in script and "--target /tmp/site .whl/*.whl" in script and 'bench/gpu_check.sh "$OUT/' in script


def fake_wheel(directory: Path, name: str, version: str, requires: list[str] = ()) -> Path:
    """A wheel holding only its METADATA, which is all the set's check reads."""
    path = directory / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    metadata = "\n".join([f"Name: {name}", f"Version: {version}", *(f"Requires-Dist: {r}" for r in requires)]) + "\n\nDescription"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", metadata)
    return path


def test_wheel_set_check_names_what_the_lent_machine_would_miss(tmp_path):
    wheels_module = load_bench("gpu_wheels")
    machine = wheels_module.machine_packages()
    assert str(machine["torch"]) == "2.11.0" and str(machine["transformers"]) == "5.17.0" and "webdataset" not in machine
    project = [Requirement("webdataset>=0.2.90"), Requirement("torch>=2.4,<=2.14.1"), Requirement("babel; extra == 'demo'")]
    webdataset = fake_wheel(tmp_path, "webdataset", "1.0.2", ["braceexpand", "numpy", "pyyaml"])
    braceexpand = fake_wheel(tmp_path, "braceexpand", "0.1.7")
    assert wheels_module.unmet([webdataset, braceexpand], machine, project) == []
    assert wheels_module.unmet([webdataset], machine, project) == [
        "webdataset-1.0.2-py3-none-any.whl needs braceexpand: neither a wheel nor the image has it"]
    assert wheels_module.unmet([braceexpand], machine, project) == ["pyproject.toml needs webdataset>=0.2.90: neither a wheel nor the image has it"]
    newer = fake_wheel(tmp_path, "needs-new-torch", "1.0", ["torch>=2.12; python_version >= '3.10'", "pywin32; sys_platform == 'win32'"])
    assert wheels_module.unmet([webdataset, braceexpand, newer], machine, project) == [
        "needs_new_torch-1.0-py3-none-any.whl needs torch>=2.12; python_version >= \"3.10\": the image has 2.11.0"]
    second_torch = fake_wheel(tmp_path, "torch", "2.13.0")
    assert wheels_module.unmet([webdataset, braceexpand, second_torch], machine, project) == [
        "torch-2.13.0-py3-none-any.whl: torch must never travel (the image's CUDA build would be shadowed)",
        "torch-2.13.0-py3-none-any.whl: torch is on the image already (gpu_machine_packages.txt); CARRIED gives no reason to carry it"]


def test_machine_package_list_errors_name_the_line(tmp_path):
    listing = tmp_path / "packages.txt"
    listing.write_text("# comment\ntorch==2.11.0\nnot a name\n")
    with pytest.raises(ValueError, match=r"packages.txt:3: expected 'name' or 'name==version', got 'not a name'"):
        load_bench("gpu_wheels").machine_packages(listing)


def test_useful_flops_count_real_tokens_and_only_the_passes_run(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # train_step.py imports its neighbours by file name
    train_step = load_bench("train_step")
    import torch

    # 2 layers of width 4 (FFN 8): 2 x (4 x 16 + 2 x 4 x 8) = 256 weights; one text row of 3 words + 1
    # entity slot real (6 positions), one masked word (vocabulary 10), one masked entity (5 x 3 wide).
    config = SimpleNamespace(num_layers=2, hidden_size=4, intermediate_size=8, vocab_size=10, entity_vocab_size=5, entity_emb_size=3)
    batch = {"input_ids": torch.zeros(1, 4, dtype=torch.long), "attention_mask": torch.tensor([[1, 1, 1, 0]]),
             "entity_attention_mask": torch.tensor([[1, 0]]), "mlm_labels": torch.tensor([[-100, 7, -100, -100]]),
             "entity_labels": torch.tensor([[2, -100]]), "mep_knowledge_mask": torch.tensor([[1, 1, 0], [1, 0, 0]])}
    text = 2 * 256 * 4 + 4 * 2 * 4 * 4**2  # layers over 4 real tokens, attention's two products over 4 x 4
    heads = 2 * 4 * 10 + 2 * 3 * 5
    assert train_step.useful_flops(config, batch, train_step.LUKE_OBJECTIVES) == 3 * (text + heads)
    knowledge = 2 * 256 * 3 + 4 * 2 * 4 * (2**2 + 1**2)  # two texts of 2 and 1 real tokens
    assert train_step.useful_flops(config, batch, train_step.ALL_OBJECTIVES) == 3 * (text + heads + knowledge)
    padded_text = 2 * 256 * 6 + 4 * 2 * 4 * 6**2
    assert train_step.useful_flops(config, batch, train_step.LUKE_OBJECTIVES, padded=True) == 3 * (padded_text + heads)
    assert train_step.padding_share([batch]) == {"words": 1 / 4, "entity slots": 1 / 2, "knowledge texts": 3 / 6, "all": 5 / 12}


GPU_CHECK_STEPS = ["machine and versions", "train step vs LukeForMaskedLM, synthetic 512-token shards",
                   "train step vs LukeForMaskedLM, demo shards", "SDPA kernel, training (dropout, backward)",
                   "mep_vocab memory at 1M entities, fp32", "fit of the tiny model on the demo, ZeRO-2", "fit metrics (last rows)",
                   "compiled model vs eager: cold compile, then warm steps", "prepare's Wikidata passes by worker count (CPU)"]


def run_gpu_check(results: Path, seconds: int | None = None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "LIGHTNING_KG_BENCH_RESULTS", "OUT")}
    env["PYTHON"] = sys.executable
    if seconds is not None:
        env["GPU_CHECK_SECONDS"] = str(seconds)
    return subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run", str(results)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)


def test_gpu_check_skips_every_step_once_its_budget_is_spent(tmp_path):
    results = tmp_path / "out" / "gpu_check.txt"
    result = run_gpu_check(results, seconds=1)
    assert result.returncode == 1, result.stderr[-2000:]
    text = results.read_text()
    assert "dry_run=true budget=1 s" in text.splitlines()[0]
    assert [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("!! skipped")] == GPU_CHECK_STEPS
    assert text.rstrip().endswith("(failed steps: 1)")


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_step_and_writes_its_figures(tmp_path):
    """The whole device check at tiny size on this CPU (about 5 minutes on 2 cores): every step
    passes within its limit and leaves its figures beside the results file, as on the lent machine."""
    results = tmp_path / "out" / "gpu_check.txt"
    kept = (ROOT / "bench" / "results.csv").read_bytes()
    result = run_gpu_check(results)
    assert (ROOT / "bench" / "results.csv").read_bytes() == kept  # the check's rows go to its own folder only
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    text = results.read_text()
    titles = [line[3:].rsplit(" (", 1)[0] for line in text.splitlines() if line.startswith("== ") and not line.startswith("== summary")]
    assert titles == GPU_CHECK_STEPS
    summary = text[text.index("== summary"):].splitlines()[1:-1]
    assert [line.split()[0] for line in summary] == ["ok"] * len(GPU_CHECK_STEPS)
    assert "varlen attention: torch.nn.attention.varlen " in text
    assert text.count("padding share (padded / all positions): words ") == 2  # both batch sources
    rows = list(csv.DictReader((results.parent / "gpu_results.csv").open()))
    benches = {row["command"].split()[1] for row in rows}
    assert benches == {"bench/train_step.py", "bench/mep_memory.py", "bench/compile_speed.py", "bench/prepare_scale.py"}
    assert len(rows) >= 8 and all(float(row["ours"]) > 0 for row in rows)
    metrics = list(csv.DictReader((results.parent / "fit_metrics.csv").open()))
    assert max(int(row["step"]) for row in metrics) == 3 and any(row["train/loss"] for row in metrics)


@pytest.mark.slow
def test_transfer_speed_records_ours_against_luke(tmp_path):
    results = tmp_path / "results.csv"
    result = run_bench("transfer_speed.py", "--sentences", "16", "--repeats", "1", results=results)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "16 sentences ->" in result.stdout and "LukeForEntitySpanClassification" in result.stdout
    [row] = list(csv.DictReader(results.open()))
    assert row["figure"].startswith("span NER fine-tuning sentences/s, tiny") and float(row["ratio"]) > 0

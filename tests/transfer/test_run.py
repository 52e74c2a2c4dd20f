"""The transfer verb end to end on small task files: the table, the report files, the seeds, and
one ``error:`` line for each bad input."""

import json

import pytest

from lightning_kg.dataset.task_files import write_examples
from lightning_kg.export.main import export
from lightning_kg.transfer.main import main
from tests.probe.checkpoint_factory import write_checkpoint
from tests.transfer.toy_tasks import ner_examples, relation_examples, typing_examples

ONE_EPOCH = ["--finetune.epochs", "1", "--finetune.batch_size", "8", "--progress", "false"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("run") / "checkpoints" / "last.ckpt")


def task_dir(root, task):
    """en train and dev, de and fr test, in the task's file format."""
    make = {"typing": typing_examples, "ner": ner_examples, "relation": relation_examples}[task]
    for language, split, count, seed in (("en", "train", 24, 1), ("en", "dev", 8, 2), ("de", "test", 8, 3), ("fr", "test", 6, 4)):
        extension = {"ner": "conll", "typing": "relx", "relation": "relx"}[task]
        write_examples(root / f"{language}.{split}.{extension}", make(count, language, seed))
    return root


def test_typing_prints_the_table_and_writes_the_report_beside_the_run(checkpoint, tmp_path, capsys):
    main(["--ckpt_path", str(checkpoint), "--task", "typing", "--task_dir", str(task_dir(tmp_path, "typing")),
          "--seeds", "[0, 1]", *ONE_EPOCH])
    printed = capsys.readouterr().out
    assert "| en (train) | dev | 2 |" in printed and "| de | test | 2 |" in printed and "| fr | test | 2 |" in printed
    out = checkpoint.parent.parent / "transfer" / "typing-entity"
    report = json.loads((out / "transfer.json").read_text())
    assert len(report["rows"]) == 2 * 3  # 2 seeds x (en dev, de test, fr test), accuracy only
    assert {row["metric"] for row in report["rows"]} == {"accuracy"}
    meta = json.loads((out / "transfer_run.json").read_text())
    assert meta["chosen_epochs"] == [1, 1] and meta["config"]["seeds"] == [0, 1]
    assert (out / "transfer.md").read_text().startswith("# transfer typing (entity head) of lightning_kg checkpoint")
    assert (out / "transfer.png").stat().st_size > 1000


@pytest.mark.parametrize(("task", "head", "metric"), [("relation", "entity", "micro_f1"), ("ner", "word", "f1"),
                                                      ("ner", "entity", "f1")])
def test_relation_and_ner_report_their_benchmark_metrics(checkpoint, tmp_path, task, head, metric):
    out = tmp_path / "out"
    main(["--ckpt_path", str(checkpoint), "--task", task, "--head", head, "--task_dir", str(task_dir(tmp_path, task)),
          "--out", str(out), *ONE_EPOCH])
    rows = json.loads((out / "transfer.json").read_text())["rows"]
    assert {(row["language"], row["split"]) for row in rows if row["metric"] == metric} == {("en", "dev"), ("de", "test"), ("fr", "test")}
    assert all(0.0 <= row["value"] <= 1.0 for row in rows)


def test_the_random_baseline_writes_apart(checkpoint, tmp_path):
    main(["--ckpt_path", str(checkpoint), "--task", "typing", "--random_init", "--task_dir", str(task_dir(tmp_path, "typing")),
          *ONE_EPOCH])
    meta = json.loads((checkpoint.parent.parent / "transfer" / "typing-entity-random" / "transfer_run.json").read_text())
    assert meta["config"]["random_init"] is True


def test_the_demo_dataset_gives_the_default_task_files(checkpoint, tmp_path, monkeypatch):
    seen = {}

    def fake(task_dir, task, train_language):
        seen["task_dir"] = str(task_dir)
        raise ValueError("stop here")
    monkeypatch.setattr("lightning_kg.transfer.run.read_task_dir", fake)
    with pytest.raises(SystemExit):
        main(["--ckpt_path", str(checkpoint), "--task", "relation", *ONE_EPOCH])
    assert seen["task_dir"].endswith("shards/demo/tasks/relation")


def error_of(capsys, args):
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code not in (0, None)
    return capsys.readouterr().err.strip()


def test_bad_inputs_end_in_one_error_line(checkpoint, tmp_path, capsys):
    assert error_of(capsys, ["--ckpt_path", str(checkpoint), "--task", "qa"]) == \
        "error: task: 'qa'; expected one of ner, relation, typing, pair"
    assert error_of(capsys, ["--ckpt_path", str(tmp_path / "nothing.ckpt")]).startswith(
        f"error: ckpt_path: {tmp_path / 'nothing.ckpt'} not found")
    hf = export(str(checkpoint), str(tmp_path / "hf"))
    assert error_of(capsys, ["--ckpt_path", str(hf), "--task", "typing"]) == \
        f"error: {hf} is a Hugging Face directory: pass --task_dir with the task's files"
    untested = tmp_path / "untested"
    untested.mkdir()
    write_examples(untested / "en.train.relx", typing_examples(4, "en", 1))
    write_examples(untested / "en.dev.relx", typing_examples(4, "en", 2))
    assert error_of(capsys, ["--ckpt_path", str(checkpoint), "--task_dir", str(untested)]).startswith(
        f"error: {untested}: no <language>.test.relx")

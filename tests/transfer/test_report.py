"""The transfer table, JSON and chart hold the per-language means over seeds and the zero-shot mean."""

import json

import numpy as np
import pytest

from lightning_kg.transfer.report import chart, format_table, summarise, write_report

VALUES = {("en", "dev"): (0.8, 0.9), ("en", "test"): (0.85, 0.95), ("de", "test"): (0.5, 0.7), ("nl", "test"): (0.6, 0.6)}


def result_rows() -> list[dict]:
    rows = [{"seed": seed, "language": language, "split": split, "metric": "f1", "value": value}
            for (language, split), values in VALUES.items() for seed, value in zip((1, 2), values)]
    return [*rows, {"seed": 1, "language": "de", "split": "test", "metric": "precision", "value": 0.25}]


def test_the_table_has_a_row_per_language_and_the_mean_over_test_languages():
    assert format_table(result_rows(), "en").splitlines() == [
        "| language | split | seeds | f1 | precision |",
        "| --- | --- | ---: | ---: | ---: |",
        "| en (train) | dev | 2 | 0.850 ± 0.071 | n/a |",
        "| en (train) | test | 2 | 0.900 ± 0.071 | n/a |",
        "| de | test | 2 | 0.600 ± 0.141 | 0.250 |",  # precision from one seed: no spread
        "| nl | test | 2 | 0.600 ± 0.000 | n/a |",
        # seed 1: (0.5 + 0.6) / 2, seed 2: (0.7 + 0.6) / 2; en, the train language, is not among them
        "| mean over test languages | test | 2 | 0.600 ± 0.071 | 0.250 |"]


def test_the_report_files_hold_the_rows_and_the_chart_the_means(tmp_path):
    numpy_rows = [{**row, "seed": np.int64(row["seed"]), "value": np.float32(row["value"])} for row in result_rows()]
    paths = write_report(numpy_rows, tmp_path / "run", "ner: en to de, nl", "en")  # as a fine-tuning loop may hand them
    assert {key: path.name for key, path in paths.items()} == {"md": "transfer.md", "json": "transfer.json", "png": "transfer.png"}
    markdown = paths["md"].read_text(encoding="utf-8")
    assert markdown.startswith("# ner: en to de, nl\n\n| language | split | seeds | f1 | precision |\n")
    assert "| mean over test languages | test | 2 | 0.600 ± 0.071 | 0.250 |" in markdown
    written = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert [row["value"] for row in written["rows"]] == pytest.approx([row["value"] for row in result_rows()])  # float32's
    assert [{**row, "value": 0} for row in written["rows"]] == [{**row, "value": 0} for row in result_rows()]
    assert written["train_language"] == "en" and written["metrics"] == ["f1", "precision"]
    assert written["lines"][-1]["f1"] == pytest.approx({"mean": 0.6, "std": 0.0707107, "seeds": 2})
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    axis = chart(result_rows(), "ner", "en").axes[0]
    assert [tick.get_text() for tick in axis.get_xticklabels()] == ["en dev", "en test", "de test", "nl test", "mean"]
    heights = [bar.get_height() for bar in axis.patches]  # f1 bars, then precision bars (none where not measured)
    nan = float("nan")
    assert heights == pytest.approx([0.85, 0.9, 0.6, 0.6, 0.6, nan, nan, 0.25, nan, 0.25], nan_ok=True)


def test_bad_rows_are_refused_naming_the_row():
    with pytest.raises(ValueError, match=r"^no result rows to report"):
        summarise([], "en")
    with pytest.raises(ValueError, match=r"^result row 0 .*: no value; expected seed, language, split, metric, value$"):
        summarise([{"seed": 1, "language": "en", "split": "dev", "metric": "f1"}], "en")
    with pytest.raises(ValueError, match=r"result row 0 .*: split 'train'; expected one of dev, test$"):
        summarise([{"seed": 1, "language": "en", "split": "train", "metric": "f1", "value": 1.0}], "en")
    with pytest.raises(ValueError, match=r"result row 0 .*: value nan; expected a finite number$"):
        summarise([{"seed": 1, "language": "en", "split": "dev", "metric": "f1", "value": float("nan")}], "en")
    with pytest.raises(ValueError, match=r"result row 0 .*: value 'high'; expected a finite number$"):
        summarise([{"seed": 1, "language": "en", "split": "dev", "metric": "f1", "value": "high"}], "en")
    row = {"seed": 1, "language": "de", "split": "test", "metric": "f1", "value": 0.5}
    with pytest.raises(ValueError, match=r"result row 1 .*: a second value for seed 1, de test, f1; expected one$"):
        summarise([row, row], "en")

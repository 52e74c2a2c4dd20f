"""The alignment figures over labels that differ reach the terminal table, the CSV and the chart."""

import csv
from collections import Counter

from lightning_kg.probe.metrics import COLUMNS, alignment_accuracy, summarise
from lightning_kg.probe.report import chart, format_table, write_csv


def test_alignment_over_labels_that_differ_is_in_the_table_the_csv_and_the_chart(tmp_path, spelling_world):
    rows = summarise([], Counter(), alignment_accuracy(spelling_world))
    table = format_table(rows, Counter(), "test")
    header = table.splitlines()[2].split()
    assert header[-3:] == ["align@1", "diff@1", "same"]
    english = next(line for line in table.splitlines() if line.startswith("en "))
    assert english.split()[-3:] == ["0.750", "0.500", "0.500"]

    write_csv(rows, tmp_path / "probe.csv")
    written = list(csv.DictReader(open(tmp_path / "probe.csv", encoding="utf-8")))
    assert tuple(written[0]) == COLUMNS
    english = next(row for row in written if row["key"] == "en")
    assert (english["alignment_acc1"], english["alignment_acc1_distinct"], english["alignment_same_label"]) == ("0.75", "0.5", "0.5")

    figure = chart(rows, "test")
    alignment_axis = figure.axes[2]
    assert alignment_axis.get_ylabel() == "alignment acc@1"
    assert [tick.get_text() for tick in alignment_axis.get_xticklabels()] == ["de", "en", "mean"]
    heights = [bar.get_height() for bar in alignment_axis.patches]  # all entities, then labels that differ
    assert heights == [0.75, 0.75, 0.75, 0.5, 0.5, 0.5]

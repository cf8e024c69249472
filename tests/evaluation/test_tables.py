"""The one table writer: aligned text and CSV (structfree_dask.evaluation.tables)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from structfree_dask.evaluation.tables import format_cell, format_table, write_csv


@pytest.mark.parametrize(("value", "text"), [
    (0.12345, "0.123"),
    (1.0, "1.000"),
    (-2.5, "-2.500"),
    (0.0005, "0.001"),  # 0.0005 is stored just above the half: rounded up
    (1e6, "1000000.000"),
    (np.float64(0.25), "0.250"),  # a float subclass
    (7, "7"),
    (np.int64(12), "12"),
    (True, "True"),
    ("A/1/0", "A/1/0"),
    ("", ""),
    (None, "-"),
    (float("nan"), "-"),
    (float("inf"), "-"),
    (-math.inf, "-"),
])
def test_format_cell(value, text):
    assert format_cell(value) == text


def test_format_table_aligns_columns_in_the_order_given():
    rows = [{"field": "A/1/0", "t": 0, "f1": 0.91234, "extra": "ignored"},
            {"field": "overall", "t": "", "f1": None},
            {"field": "B/12/3", "t": 11, "f1": float("nan")}]
    text = format_table(rows, ["field", "t", "f1"])
    assert text.splitlines() == [
        "field    t   f1",
        "A/1/0    0   0.912",
        "overall      -",
        "B/12/3   11  -",
    ]
    assert "ignored" not in text and "extra" not in text


def test_format_table_strips_trailing_blanks():
    text = format_table([{"a": "x", "b": ""}, {"a": "long", "b": "y"}], ["a", "b"])
    assert text.splitlines() == ["a     b", "x", "long  y"]


def test_format_table_missing_keys_show_as_dashes_and_no_rows_gives_the_header():
    assert format_table([{"a": 1}], ["a", "b"]).splitlines() == ["a  b", "1  -"]
    assert format_table([], ["name", "score"]) == "name  score"
    assert format_table([{"long header": "x"}], ["long header"]).splitlines() == [
        "long header", "x"]


def _read(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_write_csv_writes_the_columns_and_returns_the_path(tmp_path):
    rows = [{"field": "A/1/0", "t": 0, "f1": 0.123456, "note": "a, b"},
            {"field": "overall", "t": "", "f1": None, "note": float("nan")}]
    out = write_csv(rows, str(tmp_path / "s.csv"), ["field", "t", "f1", "note"])
    assert isinstance(out, Path) and out == tmp_path / "s.csv"
    assert _read(out) == [["field", "t", "f1", "note"],
                          ["A/1/0", "0", "0.123456", "a, b"],  # full precision by default
                          ["overall", "", "", ""]]  # NaN and None are empty


def test_write_csv_rounds_floats_only_when_asked(tmp_path):
    rows = [{"x": 0.123456, "n": 3, "i": float("inf")}]
    assert _read(write_csv(rows, tmp_path / "a.csv", digits=2)) == [["x", "n", "i"],
                                                                    ["0.12", "3", ""]]
    assert _read(write_csv(rows, tmp_path / "b.csv", digits=0)) == [["x", "n", "i"],
                                                                    ["0.0", "3", ""]]


def test_write_csv_columns_default_to_the_first_rows_keys(tmp_path):
    rows = [{"b": 1, "a": 2}, {"a": 3, "c": 4}]
    assert _read(write_csv(rows, tmp_path / "d.csv")) == [["b", "a"], ["1", "2"], ["", "3"]]
    subset = write_csv(rows, tmp_path / "e.csv", ["c"])
    assert _read(subset) == [["c"], [""], ["4"]]


def test_write_csv_of_no_rows_and_over_an_existing_file(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("old contents\n")
    write_csv([], path, ["a", "b"])
    assert _read(path) == [["a", "b"]]
    write_csv([{"a": 1}], path)
    assert _read(path) == [["a"], ["1"]]


def test_write_csv_refuses_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_csv([{"a": 1}], tmp_path / "missing" / "f.csv")
    assert not (tmp_path / "missing").exists()

"""io._annotation: the plate map's columns in the parts of a plate's per-cell datasets.

The whole path (annotate, then measure and track; another map) is in
tests/screen/test_platemap.py.
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from structfree_dask.io import (
    annotate_plate_datasets,
    annotation_fields,
    list_plate_datasets,
    plate_dataset,
    read_arrow,
    well_annotations,
    with_annotation,
    write_parquet,
    write_plate_table,
)

VALUES = {"condition": "X 1 uM", "compound": "X", "dose": 1.0, "dose_unit": "uM",
          "role": "sample"}


def test_the_columns_are_appended_or_replaced_with_fixed_types():
    rows = pa.table({"well": ["B2"] * 3, "label": [1, 2, 3]})
    out = with_annotation(rows, VALUES)
    assert out.schema.names == ["well", "label", "condition", "compound", "dose",
                                "dose_unit", "role"]
    assert [out.schema.field(f.name).type for f in annotation_fields()] == \
        [pa.string(), pa.string(), pa.float64(), pa.string(), pa.string()]
    assert out.column("dose").to_pylist() == [1.0] * 3
    again = with_annotation(out, {**VALUES, "condition": "other"})  # replaced, not added
    assert again.schema.names == out.schema.names
    assert again.column("condition").to_pylist() == ["other"] * 3
    missing = with_annotation(rows, None)  # a well the map does not name
    assert missing.column("condition").null_count == 3
    assert all(math.isnan(v) for v in missing.column("dose").to_pylist())
    assert with_annotation(rows.slice(0, 0), VALUES).num_rows == 0


def test_datasets_parts_are_rewritten_and_other_files_left_alone(tmp_path):
    store = str(tmp_path / "p.zarr")
    import zarr

    zarr.open_group(store, mode="w", zarr_format=2)
    assert well_annotations(store) is None  # no map yet
    pm = pa.table({"well": ["A1", "B2"], "row": ["A", "B"], "column": ["1", "2"],
                   "condition": ["DMSO", "X 1 uM"], "compound": [None, "X"],
                   "dose": [float("nan"), 1.0], "dose_unit": [None, "uM"],
                   "role": ["negative", "sample"]})
    write_plate_table(store, "plate_map", pm, {"type": "condition_table"})
    annotations = well_annotations(store)
    assert annotations["B2"] == VALUES
    assert annotations["A1"]["compound"] is None and math.isnan(annotations["A1"]["dose"])
    cells = plate_dataset(store, "cells")
    write_parquet(pa.table({"well": ["A1", "A1"], "t": [0, 0]}), f"{cells}/A-1-0-t00000.parquet")
    write_parquet(pa.table({"well": ["B2"], "t": [1]}), f"{cells}/B-2-0-t00001.parquet")
    write_parquet(pa.table({"well": ["C3"], "t": [0]}), f"{cells}/C-3-0-t00000.parquet")
    write_parquet(pa.table({"t": [0]}), f"{cells}/Z-9-0-t00000.parquet")  # no well column
    screen = plate_dataset(store, "cells__screen")
    write_parquet(pa.table({"well": ["A1"], "n": [2]}), f"{screen}/wells.parquet")  # a table
    assert list_plate_datasets(store) == ["cells", "cells__screen"]
    assert annotate_plate_datasets(store, annotations) == 3
    a1 = read_arrow(f"{cells}/A-1-0-t00000.parquet")
    assert a1.column("condition").to_pylist() == ["DMSO", "DMSO"]
    assert a1.column("t").to_pylist() == [0, 0]
    assert read_arrow(f"{cells}/B-2-0-t00001.parquet").column("dose").to_pylist() == [1.0]
    assert read_arrow(f"{cells}/C-3-0-t00000.parquet").column("condition").null_count == 1
    assert pq.read_schema(f"{cells}/Z-9-0-t00000.parquet").names == ["t"]
    assert pq.read_schema(f"{screen}/wells.parquet").names == ["well", "n"]


def test_a_plate_without_measurements_has_nothing_to_rewrite(tmp_path):
    store = str(tmp_path / "empty.zarr")
    assert list_plate_datasets(store) == []
    assert annotate_plate_datasets(store, {"A1": VALUES}) == 0


@pytest.mark.parametrize("dose", [None, float("nan")])
def test_a_missing_dose_is_nan(dose):
    out = with_annotation(pa.table({"well": ["A1"]}), {**VALUES, "dose": dose})
    assert math.isnan(out.column("dose").to_pylist()[0])

"""Tests of structfree_dask.io._platemap: plate maps read and checked (pure).

The checks one by one are tested through their re-export in tests/screen/test_platemap.py;
here: the io layer's own names, which the simulator (a lower layer than screen) uses.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from structfree_dask import io
from structfree_dask.io import (
    PLATE_MAP_ANNOTATION_COLUMNS,
    PLATE_MAP_COLUMNS,
    PLATE_MAP_STORED_COLUMNS,
    PlateMapError,
    parse_plate_map,
    read_plate_map_csv,
)


def test_the_screen_re_exports_the_io_definitions():
    from structfree_dask.screen import platemap

    assert platemap.PlateMapError is PlateMapError
    assert platemap.parse_plate_map is parse_plate_map
    assert platemap.read_plate_map_csv is read_plate_map_csv
    assert platemap.PLATE_MAP_COLUMNS is PLATE_MAP_COLUMNS
    assert platemap.ANNOTATION_COLUMNS == PLATE_MAP_ANNOTATION_COLUMNS
    assert PLATE_MAP_STORED_COLUMNS == ("well", "row", "column", *PLATE_MAP_ANNOTATION_COLUMNS)
    assert {"PlateMapError", "parse_plate_map", "read_plate_map_csv"} <= set(io.__all__)


def test_read_and_parse(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("Well,condition,compound,dose,dose_unit,role\nA/2,X 1,X,1,uM,\n"
                   "A01,DMSO,,,,negative\n")
    text = read_plate_map_csv(csv)
    assert text.index.name == "line" and text.index.tolist() == [2, 3]
    pm = parse_plate_map(text, ["A/1", "A/2"], source="m.csv")
    assert list(pm.columns) == list(PLATE_MAP_STORED_COLUMNS)
    assert pm["well"].tolist() == ["A1", "A2"] and pm["role"].tolist() == ["negative", "sample"]
    assert np.isnan(pm["dose"].iloc[0]) and pm["dose"].iloc[1] == 1.0


def test_every_problem_in_one_line(tmp_path):
    data = pd.DataFrame({"well": ["A1", "A1", "C7"], "condition": ["x", "", "y"],
                         "dose": ["1", "", ""]})
    with pytest.raises(PlateMapError) as err:
        parse_plate_map(data, ["A/1", "A/2"], source="map.csv")
    text = str(err.value)
    assert text.startswith("plate map map.csv: ") and "\n" not in text
    assert "without a compound" in text and "listed twice" in text
    assert "'C7' is not in the plate" in text and "missing from the map: A2" in text
    assert len(err.value.problems) == 4
    with pytest.raises(FileNotFoundError, match="plate map not found"):
        read_plate_map_csv(tmp_path / "none.csv")

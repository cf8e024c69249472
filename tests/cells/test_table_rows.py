"""A unit's rows, written into the field's table and the plate's dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd

from structfree_dask import simulate_plate
from structfree_dask.cells.plate_measure import measure_plate
from structfree_dask.cells.table_rows import arrow_rows, row_schemas, well_of, write_rows
from structfree_dask.io import open_plate, read_feature_table, read_plate_dataset


def test_rows_written_again_replace_both_copies(tmp_path, cluster_client):
    """Rows written over a measured table (as tracking does) replace the field's rows and
    the plate dataset's, with the plate's keys; the other field is left as it was."""
    path = simulate_plate(tmp_path / "p.zarr", cell_line="CL1", rows=1, cols=2, fields=1,
                          timepoints=2, size=64, seed=1)
    measure_plate(str(path), labels="gt_cyto", nuclei="gt_nuclei", table="m",
                  link_labels=False, client=cluster_client)
    before = read_plate_dataset(str(path), "m")
    image = open_plate(path).field("A/2/0")
    df = read_feature_table(image, "m")
    assert set(df["t"]) == {0, 1}
    changed = df.assign(area_px=df["area_px"] + 1).sample(frac=1.0, random_state=0)
    assert write_rows(image, "m", str(path), changed) == [0, 1]
    pd.testing.assert_frame_equal(read_feature_table(image, "m"),
                                  changed.sort_values(["t", "label"]).reset_index(drop=True))
    after = read_plate_dataset(str(path), "m")
    mine = after[after["well"] == "A2"].sort_values(["t", "label"])
    assert (mine["row"] == "A").all() and (mine["column"] == "2").all()
    assert (mine["field"] == 0).all()
    expected = changed.sort_values(["t", "label"])
    assert np.array_equal(mine["label"].to_numpy(), expected["label"].to_numpy())
    assert np.array_equal(mine["area_px"].to_numpy(), expected["area_px"].to_numpy())

    def a1(d: pd.DataFrame) -> pd.DataFrame:
        return d[d["well"] == "A1"].sort_values(["t", "label"]).reset_index(drop=True)

    assert len(a1(before)) and a1(before).equals(a1(after))


def test_arrow_rows_and_the_plate_map():
    field_schema, plate_schema = row_schemas(("GFP",))
    assert plate_schema.names[:4] == ["well", "row", "column", "field"]
    assert plate_schema.names[4:] == field_schema.names
    cols = {f.name: np.zeros(2, f.type.to_pandas_dtype()) for f in field_schema}
    cols["label"] = np.array([3, 4])
    rows = arrow_rows(cols, plate_schema, {"well": "B3", "row": "B", "column": "3",
                                           "field": 1})
    assert rows.num_rows == 2 and rows.column("well").to_pylist() == ["B3", "B3"]
    assert rows.column("label").to_pylist() == [3, 4]
    annotations = {"B3": {"compound": "DMSO"}}
    assert well_of(annotations, "B/3/0") == {"compound": "DMSO"}
    assert well_of(annotations, "A/1/0") is None and well_of(None, "B/3/0") is None

"""structfree_dask.io._summary: what a plate holds, for people (the ``info`` command)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from structfree_dask.io import (
    create_feature_table,
    create_image,
    create_labels,
    create_plate,
    finalize_labels,
    mark_done,
    open_plate,
    plate_part_location,
    plate_summary,
    write_parquet,
    write_table_part,
)


@pytest.fixture
def plate(tmp_path) -> Path:
    """Wells A/2 (two fields) and B/1 of a 2x2 plate; A/2/0 has labels and a table."""
    path = tmp_path / "p.zarr"
    with create_plate(path, rows=["A", "B"], columns=["1", "2"], ngff_version="0.5",
                      name="screen") as writer:
        for row, col, field in [("A", "2", 0), ("A", "2", 1), ("B", "1", 0)]:
            writer.write_field(row, col, field, np.zeros((3, 2, 64, 64), "uint16"),
                               channel_names=["mito", "ER"], pixel_size_um=(0.5, 0.5),
                               time_interval_h=2.0,
                               labels={"gt_cyto": np.ones((3, 64, 64), "uint32")})
    info = open_plate(path).field("A/2/0")
    label = create_labels(info, "cyto", record={"kind": "segmentation"})
    finalize_labels(label)
    mark_done(label, [0, 2])
    create_feature_table(info, "cells", reference_label="cyto")
    for t in (0, 1):
        write_table_part(info, "cells", t, pa.table({"t": [t], "label": [1]}))
        write_parquet(pa.table({"t": [t]}), plate_part_location(str(path), "cells", info.path, t))
    (path / "A/2/0/tracks/cells").mkdir(parents=True)
    return path


def test_plate_summary(plate):
    summary = plate_summary(open_plate(plate))
    assert json.loads(json.dumps(summary)) == summary  # JSON as it is
    assert {k: summary[k] for k in ("store", "kind", "ngff_version", "name", "rows", "columns",
                                    "wells", "measurements")} == {
        "store": str(plate), "kind": "plate", "ngff_version": "0.5", "name": "screen",
        "rows": ["A", "B"], "columns": ["1", "2"], "wells": ["A/2", "B/1"],
        "measurements": ["cells"]}
    fields = {f["path"]: f for f in summary["fields"]}
    assert list(fields) == ["A/2/0", "A/2/1", "B/1/0"]
    first = fields["A/2/0"]
    assert first == {
        "path": "A/2/0",
        "sizes": {"t": 3, "c": 2, "y": 64, "x": 64},
        "pixel_size": {"t": 2.0, "c": 1.0, "y": 0.5, "x": 0.5},
        "channels": ["mito", "ER"],
        "dtype": "uint16",
        "levels": 1,
        # ground truth has no completion; a segmentation counts its done timepoints
        "labels": [{"name": "gt_cyto"}, {"name": "cyto", "done": 2}],
        "tables": [{"name": "cells", "timepoints": 2, "tracks": True}],
    }
    assert fields["B/1/0"]["labels"] == [{"name": "gt_cyto"}]
    assert fields["B/1/0"]["tables"] == []


def test_summary_of_a_standalone_image(tmp_path):
    create_image(tmp_path / "lapse.zarr", np.zeros((4, 96, 64), "uint8"), axes="tyx",
                 time_interval_h=0.25)
    summary = plate_summary(open_plate(tmp_path / "lapse.zarr"))
    assert summary["kind"] == "image" and summary["ngff_version"] == "0.4"
    assert summary["name"] is None and summary["wells"] == [] and summary["rows"] == []
    assert summary["measurements"] == []
    (field,) = summary["fields"]
    assert field["path"] == "" and field["sizes"] == {"t": 4, "y": 96, "x": 64}
    assert field["channels"] == ["0"] and field["dtype"] == "uint8"
    assert field["pixel_size"]["t"] == 0.25 and field["labels"] == [] and field["tables"] == []

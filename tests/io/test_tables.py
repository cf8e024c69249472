"""structfree_dask.io._tables: feature tables of fields and plate-level Parquet datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

from structfree_dask.io import (
    MEASUREMENTS_FOLDER,
    TABLES_GROUP,
    ParquetStream,
    TableExistsError,
    UnsafePathError,
    check_table_targets,
    create_feature_table,
    feature_table_timepoints,
    list_tables,
    plate_dataset,
    plate_part_location,
    plate_part_name,
    read_feature_table,
    read_plate_dataset,
    remove_feature_table,
    remove_plate_parts,
    table_attrs,
    table_meta,
    table_part_location,
    update_table_attrs,
    write_parquet,
    write_table_part,
)


def _rows(t: int, labels: list[int]) -> pa.Table:
    return pa.table({"t": [t] * len(labels), "label": labels,
                     "area": [float(10 * lab) for lab in labels]})


def test_table_meta_is_what_ngio_reads():
    assert table_meta("cyto", measurement_columns=["area"], metadata_columns=["t"]) == {
        "backend": "parquet", "index_key": "label", "index_type": "int",
        "table_version": "1", "type": "feature_table", "region": {"path": "../labels/cyto"},
        "instance_key": "label", "categorical_columns": [], "measurement_columns": ["area"],
        "metadata_columns": ["t"]}
    assert TABLES_GROUP == "tables" and MEASUREMENTS_FOLDER == "measurements"


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_feature_table_parts_per_timepoint(small_field, version):
    info = small_field(version)
    assert list_tables(info) == []
    location = create_feature_table(info, "cells", reference_label="cyto",
                                    measurement_columns=["area"], attrs={"run": {"id": 7}})
    assert location == f"{info.url}/tables/cells"
    assert list_tables(info) == ["cells"]
    attrs = table_attrs(info, "cells")
    assert attrs["type"] == "feature_table" and attrs["region"] == {"path": "../labels/cyto"}
    assert attrs["measurement_columns"] == ["area"] and attrs["run"] == {"id": 7}
    assert feature_table_timepoints(info, "cells") == set()
    assert read_feature_table(info, "cells").empty
    part = write_table_part(info, "cells", 1, _rows(1, [5, 2]))
    assert part == f"{location}/table.parquet/t00001.parquet"
    assert part == table_part_location(info, "cells", 1)
    write_table_part(info, "cells", 0, _rows(0, [3]))
    write_table_part(info, "cells", 1, _rows(1, [4]))  # a rerun replaces the part
    assert feature_table_timepoints(info, "cells") == {0, 1}
    df = read_feature_table(info, "cells")
    assert df[["t", "label"]].values.tolist() == [[0, 3], [1, 4]]  # ordered by t, label
    assert df["area"].tolist() == [30.0, 40.0]
    # the parts folder is one dataset for other readers
    assert len(pd.read_parquet(Path(location) / "table.parquet")) == 2
    update_table_attrs(info, "cells", done=[0, 1])
    assert table_attrs(info, "cells")["done"] == [0, 1]
    assert table_attrs(info, "cells")["type"] == "feature_table"


def test_rows_are_sorted_by_t_then_label(small_field):
    info = small_field()
    create_feature_table(info, "cells", reference_label="cyto")
    write_table_part(info, "cells", 1, _rows(1, [9, 2]))
    write_table_part(info, "cells", 0, _rows(0, [7, 1]))
    df = read_feature_table(info, "cells")
    assert df[["t", "label"]].values.tolist() == [[0, 1], [0, 7], [1, 2], [1, 9]]
    assert df.index.tolist() == [0, 1, 2, 3]


def test_damaged_parts_are_not_counted_when_verified(small_field):
    info = small_field()
    location = create_feature_table(info, "cells", reference_label="cyto")
    write_table_part(info, "cells", 0, _rows(0, [1]))
    part = write_table_part(info, "cells", 1, _rows(1, [1, 2]))
    Path(part).write_bytes(Path(part).read_bytes()[:40])  # cut short by a copy
    (Path(location) / "table.parquet" / "notes.txt").write_text("not a part")
    (Path(location) / "table.parquet" / "tx.parquet").write_bytes(b"")
    assert feature_table_timepoints(info, "cells") == {0, 1}
    assert feature_table_timepoints(info, "cells", verify=True) == {0}


def test_an_existing_table_is_replaced_only_when_asked(small_field):
    info = small_field()
    create_feature_table(info, "cells", reference_label="cyto")
    write_table_part(info, "cells", 0, _rows(0, [1]))
    with pytest.raises(TableExistsError, match="table 'cells' already exists in .*; pass "
                                               "overwrite=True"):
        create_feature_table(info, "cells", reference_label="nuc")
    assert issubclass(TableExistsError, FileExistsError)
    create_feature_table(info, "cells", reference_label="nuc", overwrite=True)
    assert table_attrs(info, "cells")["region"] == {"path": "../labels/nuc"}
    assert feature_table_timepoints(info, "cells") == set()  # old parts deleted
    assert list_tables(info) == ["cells"]  # listed once


def test_what_a_failed_creation_left_is_replaced(small_field):
    info = small_field()
    zarr.open_group(info.store, path=f"{info.path}/tables/cells", mode="a",
                    zarr_format=2)  # a group without attributes, not listed
    assert list_tables(info) == []
    create_feature_table(info, "cells", reference_label="cyto")  # no overwrite needed
    assert list_tables(info) == ["cells"] and table_attrs(info, "cells")["type"]


def test_remove_feature_table(small_field):
    info = small_field()
    remove_feature_table(info, "cells")  # no tables group: nothing happens
    for name in ("cells", "nuclei"):
        create_feature_table(info, name, reference_label="cyto")
    location = create_feature_table(info, "tracks", reference_label="cyto")
    write_table_part(info, "tracks", 0, _rows(0, [1]))
    remove_feature_table(info, "tracks")
    assert list_tables(info) == ["cells", "nuclei"] and not Path(location).exists()
    remove_feature_table(info, "tracks")  # already gone: nothing happens
    assert list_tables(info) == ["cells", "nuclei"]


def test_table_names_and_links_are_checked(small_field, tmp_path):
    info = small_field()
    with pytest.raises(ValueError, match="table name must not contain '..'"):
        create_feature_table(info, "..", reference_label="cyto")
    with pytest.raises(ValueError, match="table name must be one path component"):
        check_table_targets(info, "a/b", info.store)
    check_table_targets(info, "cells", info.store)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, Path(info.store) / MEASUREMENTS_FOLDER)
    with pytest.raises(UnsafePathError, match="it is a symbolic link"):
        check_table_targets(info, "cells", info.store)
    with pytest.raises(UnsafePathError, match="it is a symbolic link"):
        plate_part_location(info.store, "cells", "A/1/0", 0)
    assert list(outside.iterdir()) == []


def test_write_parquet_in_one_piece(tmp_path):
    target = tmp_path / "deep" / "x.parquet"
    write_parquet(pa.table({"a": [1, 2]}), str(target))
    assert pq.read_table(target)["a"].to_pylist() == [1, 2]
    unwritable = pa.table({"a": pa.array([(1, 2, 3)], pa.month_day_nano_interval())})
    with pytest.raises(pa.ArrowNotImplementedError, match="month_day_nano_interval"):
        write_parquet(unwritable, str(target))
    assert pq.read_table(target)["a"].to_pylist() == [1, 2]  # the old file is kept
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.parquet"]


def test_parquet_stream_publishes_only_complete_files(tmp_path):
    schema = pa.schema([("a", pa.int64()), ("b", pa.float64())])
    target = tmp_path / "out" / "s.parquet"
    with ParquetStream(str(target), schema) as out:
        out.write(pa.table({"a": [1, 2], "b": [0.5, 1.5]}))
        assert not target.exists()  # not before it is complete
        out.write(pa.table({"a": pa.array([3], pa.int32()), "b": [2.5]}))  # cast to schema
    table = pq.read_table(target)
    assert table.schema == schema and table["a"].to_pylist() == [1, 2, 3]
    assert pq.ParquetFile(target).num_row_groups == 2
    failed = tmp_path / "out" / "f.parquet"
    with pytest.raises(RuntimeError, match="worker lost"):
        with ParquetStream(str(failed), schema) as out:
            out.write(pa.table({"a": [1], "b": [1.0]}))
            raise RuntimeError("worker lost")
    assert sorted(p.name for p in failed.parent.iterdir()) == ["s.parquet"]


def test_plate_level_dataset(tmp_path):
    store = str(tmp_path / "p.zarr")
    assert plate_dataset(store, "cells") == f"{store}/measurements/cells"
    assert plate_part_name("B/3/1", 7) == "B-3-1-t00007.parquet"
    assert plate_part_name("", 0) == "image-t00000.parquet"
    assert read_plate_dataset(store, "cells").empty  # nothing yet
    rows = {("B", "3", 1, 1): [2], ("A", "1", 0, 0): [5, 4], ("A", "1", 0, 1): [1],
            ("A", "1", 1, 0): [3]}
    for (row, col, field, t), labels in rows.items():
        part = plate_part_location(store, "cells", f"{row}/{col}/{field}", t)
        assert part == f"{store}/measurements/cells/{row}-{col}-{field}-t{t:05d}.parquet"
        write_parquet(pa.table({"well": [f"{row}/{col}"] * len(labels),
                                "row": [row] * len(labels), "column": [col] * len(labels),
                                "field": [field] * len(labels), "t": [t] * len(labels),
                                "label": labels}), part)
    df = read_plate_dataset(store, "cells")
    assert df[["row", "column", "field", "t", "label"]].values.tolist() == [
        ["A", "1", 0, 0, 4], ["A", "1", 0, 0, 5], ["A", "1", 0, 1, 1], ["A", "1", 1, 0, 3],
        ["B", "3", 1, 1, 2]]
    remove_plate_parts(store, "cells", "A/1/0", [1])
    assert sorted(os.listdir(plate_dataset(store, "cells"))) == [
        "A-1-0-t00000.parquet", "A-1-1-t00000.parquet", "B-3-1-t00001.parquet"]
    remove_plate_parts(store, "cells", "A/1/1")  # every part of that field, no other's
    assert sorted(os.listdir(plate_dataset(store, "cells"))) == [
        "A-1-0-t00000.parquet", "B-3-1-t00001.parquet"]
    remove_plate_parts(store, "nothing", "A/1/0")  # no dataset: nothing happens
    with pytest.raises(ValueError, match="table name must not be empty"):
        plate_dataset(store, "")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_plates_own_table_is_an_ngio_table_written_once(simulated, version, monkeypatch):
    from structfree_dask.io import _tables as tables_module
    from structfree_dask.io import (
        condition_table_meta,
        list_plate_tables,
        parquet_schema,
        plate_dataset_parts,
        plate_table_attrs,
        read_parquet,
        read_plate_table,
        write_plate_table,
    )

    store = str(simulated(version))
    assert list_plate_tables(store) == [] and read_plate_table(store, "map") is None
    rows = pa.table({"well": ["A1"], "condition": ["x"]})
    location = write_plate_table(store, "map", rows, {**condition_table_meta(), "mine": 1})
    assert location == f"{store}/{TABLES_GROUP}/map" and list_plate_tables(store) == ["map"]
    assert plate_table_attrs(store, "map")["type"] == "condition_table"
    assert read_plate_table(store, "map")["condition"].tolist() == ["x"]
    with pytest.raises(TableExistsError, match="table 'map' already exists"):
        write_plate_table(store, "map", rows, {})
    write_plate_table(store, "map", pa.table({"well": ["A1"], "condition": ["y"]}), {"v": 2},
                      overwrite=True)
    assert plate_table_attrs(store, "map") == {"v": 2}
    assert read_parquet(f"{location}/table.parquet", columns=["condition"]).shape == (1, 1)
    assert parquet_schema(f"{location}/table.parquet").names == ["well", "condition"]

    def full_disk(*args):
        raise OSError("No space left on device")

    monkeypatch.setattr(tables_module, "write_parquet", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_plate_table(store, "other", rows, {})
    assert list_plate_tables(store) == ["map"] and not Path(store, TABLES_GROUP,
                                                            "other").exists()
    assert plate_dataset_parts(store, "nothing") == []
    write_parquet(rows, plate_part_location(store, "cells", "A/1/0", 3))
    assert plate_dataset_parts(store, "cells") == ["A-1-0-t00003.parquet"]

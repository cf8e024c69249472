"""The plate map: checked against the plate's wells, stored as an ngio condition table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from structfree_dask.io import TableExistsError, read_plate_dataset
from structfree_dask.screen.platemap import (
    PlateMapError,
    annotate_plate,
    check_plate_map,
    join_plate_map,
    load_plate_map,
    parse_plate_map,
    plate_map_digest,
    read_annotated_dataset,
    read_plate_map_csv,
)

from .conftest import PLATE_MAP

WELLS = ["A/1", "A/2", "A/3", "B/1", "B/2", "B/3"]



def _parse(text: str, wells=WELLS) -> pd.DataFrame:
    """Parse a plate map's text as read from a file (line numbers kept)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.csv"
        path.write_text(text)
        return parse_plate_map(read_plate_map_csv(path), wells, source="m.csv")


def test_a_plate_map_is_one_row_per_well_in_plate_order():
    pm = _parse(PLATE_MAP)
    assert pm["well"].tolist() == ["A1", "A2", "A3", "B1", "B2", "B3"]  # A02, A/3 too
    assert pm[["row", "column"]].values.tolist() == [w.split("/") for w in WELLS]
    assert pm["role"].tolist() == ["negative", "negative", "positive", "positive", "sample",
                                   "sample"]  # a blank role is a sample
    assert pm["dose"].tolist()[2:] == [1.0, 1.0, 0.1, 10.0] and pm["dose"].dtype == float
    assert np.isnan(pm["dose"].iloc[0]) and pm["compound"].iloc[0] is None
    assert pm["dose_unit"].iloc[0] is None and pm["dose_unit"].iloc[4] == "uM"
    # only the required columns; headers in any case, rows in any order
    small = _parse("Well , Condition\nB3,x\nB2,x\nB1,x\nA3,x\nA2,x\nA1,x\n")
    assert small["well"].tolist() == ["A1", "A2", "A3", "B1", "B2", "B3"]
    assert small["compound"].isna().all() and (small["role"] == "sample").all()


@pytest.mark.parametrize(("text", "expected"), [
    (PLATE_MAP.replace("A1,DMSO", "Z9,DMSO"),
     "line 2 (well Z9): well 'Z9' is not in the plate (wells are written like A1, A01 or A/1;"
     " the plate's wells: A1, A2, A3, B1, B2, B3); well(s) of the plate missing from the "
     "map: A1"),
    (PLATE_MAP.replace("B3,X 10 uM,X,10,uM,\n", ""),
     "plate map m.csv: well(s) of the plate missing from the map: B3 (every well needs a "
     "row; give empty wells a condition such as 'empty')"),
    (PLATE_MAP.replace("B3,", "B2,"), "line 7 (well B2): well 'B2' is listed twice (lines 6 "
                                      "and 7)"),
    (PLATE_MAP.replace("0.1,uM", "ten,uM"), "line 6 (well B2): dose 'ten' is not a number"),
    (PLATE_MAP.replace("0.1,uM", "-1,uM"), "line 6 (well B2): expected a finite dose >= 0; "
                                           "got '-1'"),
    (PLATE_MAP.replace("0.1,uM", "inf,uM"), "expected a finite dose >= 0; got 'inf'"),
    (PLATE_MAP.replace("negative\nA02", "control\nA02"),
     "line 2 (well A1): role 'control' is not one of negative, positive, sample"),
    (PLATE_MAP.replace("well,condition", "well,condtion"),
     "column 'condtion': unknown column (did you mean 'condition'?"),
    ("well,compound\nA1,x\n", "missing column(s) condition (expected well, condition and "
                              "optional compound, dose, dose_unit, role; found well, compound)"),
    (PLATE_MAP.replace("B2,X 0.1 uM", "B2,"), "line 6 (well B2): the condition is empty"),
    (PLATE_MAP.replace(",1,uM,positive\nB1", ",2,uM,positive\nB1"),
     "condition 'stim' has another dose in well B1 than in well A3 (a condition is one "
     "treatment"),
    (PLATE_MAP.replace("10,uM", "10,nM"), "compound 'X' has doses in 2 units (nM, uM)"),
    (PLATE_MAP.replace("B2,X 0.1 uM,X", "B2,X 0.1 uM,"), "line 6 (well B2): dose '0.1' "
                                                          "without a compound"),
    ("well,condition,well\nA1,x,A1\n", "column 'well' appears twice in the header"),
])
def test_a_bad_plate_map_is_refused_in_one_line_saying_what_was_expected(text, expected):
    with pytest.raises(PlateMapError) as err:
        _parse(text)
    assert expected in str(err.value), str(err.value)
    assert "\n" not in str(err.value) and str(err.value).startswith("plate map m.csv: ")


def test_line_numbers_are_the_files_and_a_dataframe_s_rows_count_from_line_2():
    with pytest.raises(PlateMapError, match="line 8 .well B3.: dose 'x'"):
        _parse(PLATE_MAP.replace("B2,", "\nB2,").replace("10,uM", "x,uM"))
    rows = pd.DataFrame({"well": ["A1", "Q1"], "condition": ["a", "b"]})
    with pytest.raises(PlateMapError, match="line 3 .well Q1."):
        parse_plate_map(rows, ["A/1"])


def test_every_problem_is_reported_at_once():
    bad = PLATE_MAP.replace("0.1,uM", "ten,uM").replace("negative\nA02", "ctrl\nA02")
    with pytest.raises(PlateMapError) as err:
        _parse(bad)
    assert len(err.value.problems) == 2 and str(err.value).count(";") >= 1
    assert "2 problems:" in str(err.value)


def test_a_plate_without_wells_has_no_plate_map():
    with pytest.raises(PlateMapError, match="expected an HCS plate with wells"):
        _parse(PLATE_MAP, wells=[])


def test_a_csv_that_does_not_read_is_one_line(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(PlateMapError, match="expected a CSV file with a header line"):
        read_plate_map_csv(empty)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("well,condition\nA1,x\n\nA2,x,y,z\n")
    with pytest.raises(PlateMapError, match="the header has 2 field.s. and line 4 has 4 "):
        read_plate_map_csv(ragged)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00w\x00e")
    with pytest.raises(PlateMapError, match="expected a CSV file"):
        read_plate_map_csv(binary)
    with pytest.raises(FileNotFoundError, match="plate map not found"):
        read_plate_map_csv(tmp_path / "nope.csv")


def test_annotate_stores_an_ngio_condition_table_once(plate, write_map, snapshot):
    csv = write_map()
    done = annotate_plate(str(plate), csv)
    assert done.changed and done.location.endswith("tables/plate_map")
    assert done.summary() == ("6 wells, 4 condition(s), 2 compound(s); roles: 2 negative, "
                              "2 positive, 2 sample")
    stored = load_plate_map(str(plate))
    pd.testing.assert_frame_equal(stored, done.plate_map)
    assert plate_map_digest(stored) == plate_map_digest(done.plate_map)
    ngio = pytest.importorskip("ngio")
    table = ngio.open_ome_zarr_plate(str(plate)).get_condition_table("plate_map")
    assert table.dataframe.index.tolist() == stored["well"].tolist()
    assert table.dataframe["condition"].tolist() == stored["condition"].tolist()
    # the same map again (another file, same content): nothing written
    before = snapshot(plate)
    again = annotate_plate(str(plate), write_map(PLATE_MAP.replace("A02", "A2"), "same.csv"))
    assert not again.changed and snapshot(plate) == before


def test_another_map_needs_overwrite_and_replaces_the_first(plate, write_map, snapshot):
    annotate_plate(str(plate), write_map())
    other = write_map(PLATE_MAP.replace("DMSO", "vehicle"), "other.csv")
    before = snapshot(plate)
    with pytest.raises(TableExistsError, match="already has another plate map .* from map.csv"):
        annotate_plate(str(plate), other)
    assert snapshot(plate) == before
    assert check_plate_map(str(plate), other, overwrite=True).changed
    done = annotate_plate(str(plate), other, overwrite=True)
    assert done.changed and set(load_plate_map(str(plate))["condition"]) >= {"vehicle"}


def test_a_bad_plate_map_writes_nothing_into_the_plate(plate, write_map, snapshot):
    before = snapshot(plate)
    for text in (PLATE_MAP.replace("0.1,uM", "ten,uM"), PLATE_MAP.replace("B3,", "Q3,")):
        with pytest.raises(PlateMapError):
            annotate_plate(str(plate), write_map(text, "bad.csv"))
    assert snapshot(plate) == before
    assert load_plate_map(str(plate)) is None


def test_the_dataset_read_with_the_plate_maps_columns(plate, write_map):
    with pytest.raises(KeyError, match="has no plate map"):
        read_annotated_dataset(str(plate), "gt_cyto_features")
    annotate_plate(str(plate), write_map())
    cells = read_annotated_dataset(str(plate), "gt_cyto_features")
    plain = read_plate_dataset(str(plate), "gt_cyto_features")
    assert len(cells) == len(plain) and list(cells.columns[:len(plain.columns)]) == list(
        plain.columns)
    by_well = cells.groupby("well")[["condition", "role"]].first()
    assert by_well.loc["A1"].tolist() == ["DMSO", "negative"]
    assert by_well.loc["B3"].tolist() == ["X 10 uM", "sample"]
    assert cells.loc[cells["well"] == "B2", "dose"].eq(0.1).all()


def test_join_keeps_the_columns_rows_have_already():
    pm = _parse(PLATE_MAP)
    rows = pd.DataFrame({"well": ["A1", "B3", "C9"], "role": ["mine", "mine", "mine"]})
    out = join_plate_map(rows, pm)
    assert out["role"].tolist() == ["mine"] * 3
    assert out["condition"].tolist()[:2] == ["DMSO", "X 10 uM"]
    assert pd.isna(out["condition"].iloc[2])  # a well the map does not name


def test_the_plate_maps_columns_are_in_the_datasets_parts(plate, write_map, cluster_client):
    """Storing a map rewrites the per-cell datasets' parts with its columns (nothing else
    changes); parts written after it (measuring, tracking) get them as they are written;
    another map replaces them. A query over the files needs no join."""
    from structfree_dask.cells.plate_measure import measure_plate
    from structfree_dask.cells.plate_track import track_plate

    plain = read_plate_dataset(str(plate), "gt_cyto_features")
    assert "condition" not in plain.columns
    annotate_plate(str(plate), write_map())
    cells = read_plate_dataset(str(plate), "gt_cyto_features")
    assert list(cells.columns) == [*plain.columns, "condition", "compound", "dose",
                                   "dose_unit", "role"]
    pd.testing.assert_frame_equal(cells[list(plain.columns)], plain)
    by_well = cells.groupby("well")[["condition", "role"]].first()
    assert by_well.loc["A1"].tolist() == ["DMSO", "negative"]
    assert by_well.loc["B3"].tolist() == ["X 10 uM", "sample"]
    assert cells.loc[cells["well"] == "B2", "dose"].eq(0.1).all()
    assert cells.loc[cells["well"] == "A1", "dose"].isna().all()
    assert "condition" in read_plate_dataset(str(plate), "gt_truth").columns  # every dataset
    duckdb = pytest.importorskip("duckdb")
    files = str(plate / "measurements" / "gt_cyto_features" / "*.parquet")
    counts = dict(duckdb.sql(f"SELECT condition, count(*) FROM read_parquet('{files}') "
                             "GROUP BY condition").fetchall())
    assert counts == cells.groupby("condition").size().to_dict()

    assert measure_plate(str(plate), labels="gt_cyto", nuclei="gt_nuclei", table="after",
                         client=cluster_client).ok
    after = read_plate_dataset(str(plate), "after")
    assert after.groupby("well")["condition"].first().to_dict() == \
        cells.groupby("well")["condition"].first().to_dict()
    track_plate(str(plate), table="after", client=cluster_client)
    tracked = read_plate_dataset(str(plate), "after")
    assert (tracked["track_id"] >= 0).any() and tracked["condition"].notna().all()
    annotate_plate(str(plate), write_map(PLATE_MAP.replace("DMSO", "vehicle"), "other.csv"),
                   overwrite=True)
    again = read_plate_dataset(str(plate), "after")
    assert again.loc[again["well"] == "A1", "condition"].eq("vehicle").all()
    pd.testing.assert_frame_equal(again.drop(columns=["condition"]),
                                  tracked.drop(columns=["condition"]))

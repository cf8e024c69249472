"""Screen tables of a measured, annotated plate, computed on a real multi-process cluster."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from structfree_dask.io import plate_dataset
from structfree_dask.screen.plate_screen import (
    SCREEN_TABLES,
    check_screen,
    read_screen_tables,
    screen_location,
    screen_plate,
)
from structfree_dask.screen.platemap import annotate_plate, read_annotated_dataset
from structfree_dask.screen.tables import (
    CONDITION_COLUMNS,
    DOSE_RESPONSE_COLUMNS,
    WELL_COLUMNS,
    ZPRIME_COLUMNS,
    zprime_value,
)

TABLE = "gt_cyto_features"
RATIO = "translocation-reporter__nc_ratio"


def test_screen_tables_on_the_cluster_match_the_cells(plate, write_map, cluster_client):
    annotate_plate(str(plate), write_map())
    calls = []
    result = screen_plate(str(plate), TABLE, client=cluster_client,
                          progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (6, 6) and result.wells == 6 and result.timepoints == 2
    assert result.location == screen_location(str(plate), TABLE)
    assert result.location == plate_dataset(str(plate), f"{TABLE}__screen")
    assert RATIO in result.readouts and len(result.readouts) == 4  # every channel's ratio
    tables = read_screen_tables(str(plate), TABLE)
    wells = tables["wells"]
    assert list(wells.columns) == [*WELL_COLUMNS, "condition", "compound", "dose",
                                   "dose_unit", "role"]
    assert len(wells) == 6 * 2 * 4 and result.rows["wells"] == len(wells)
    assert wells["well"].unique().tolist() == ["A1", "A2", "A3", "B1", "B2", "B3"]
    # the same numbers from the cells, computed here without the package's functions
    cells = read_annotated_dataset(str(plate), TABLE)
    ratio = cells[RATIO].replace([np.inf, -np.inf], np.nan)
    expected = cells.assign(v=ratio).groupby(["well", "t"])["v"].agg(["median", "count",
                                                                      "size"])
    mine = wells[wells["readout"] == RATIO].set_index(["well", "t"])
    assert mine["median"].to_numpy() == pytest.approx(expected["median"].to_numpy(),
                                                      nan_ok=True)
    assert mine["n"].tolist() == expected["count"].tolist()
    assert mine["n_cells"].tolist() == expected["size"].tolist()
    assert mine.loc[("B3", 0), "condition"] == "X 10 uM"
    # conditions over the wells' medians
    conditions = tables["conditions"]
    assert list(conditions.columns) == list(CONDITION_COLUMNS)
    dmso = conditions[(conditions["condition"] == "DMSO") & (conditions["t"] == 1)
                      & (conditions["readout"] == RATIO)].iloc[0]
    medians = mine.loc[[("A1", 1), ("A2", 1)], "median"]
    assert dmso["mean"] == pytest.approx(medians.mean())
    assert dmso["n_wells"] == 2 and dmso["n_cells"] == mine.loc[[("A1", 1), ("A2", 1)],
                                                                 "n_cells"].sum()
    # Z' from the control wells' medians (2 negative, 2 positive)
    zp = tables["zprime"]
    assert list(zp.columns) == list(ZPRIME_COLUMNS)
    row = zp[(zp["t"] == 0) & (zp["readout"] == RATIO)].iloc[0]
    value, _ = zprime_value(mine.loc[[("A3", 0), ("B1", 0)], "median"],
                            mine.loc[[("A1", 0), ("A2", 0)], "median"])
    assert row["z_prime"] == pytest.approx(value) and (row["n_positive"], row["n_negative"]) == (
        2, 2)
    pd.testing.assert_frame_equal(zp, result.zprime)
    # two doses of X, one of stim: every fit says why it failed
    dr = tables["dose_response"]
    assert list(dr.columns) == list(DOSE_RESPONSE_COLUMNS)
    assert dr["compound"].unique().tolist() == ["X"] and len(dr) == 2 * 4  # not the controls
    assert dr["fit_error"].str.startswith("needs at least 4 distinct doses").all()
    assert result.failed_fits == len(dr)
    record = json.loads((plate / "measurements" / f"{TABLE}__screen" / "screen.json")
                        .read_text())
    assert record["table"] == TABLE and record["rows"] == result.rows
    assert record["files"] == SCREEN_TABLES


def test_screen_tables_are_read_by_pandas_pyarrow_polars_and_duckdb(plate, write_map,
                                                                   cluster_client):
    import pyarrow.dataset as ds

    annotate_plate(str(plate), write_map())
    screen_plate(str(plate), TABLE, readouts=["translocation-reporter", "area_um2"],
                 client=cluster_client)
    folder = plate / "measurements" / f"{TABLE}__screen"
    wells = pd.read_parquet(folder / "wells.parquet")
    assert set(wells["readout"]) == {RATIO, "area_um2"}
    assert ds.dataset(folder / "zprime.parquet").to_table().num_rows == 2 * 2
    pl = pytest.importorskip("polars")
    assert pl.read_parquet(folder / "conditions.parquet").height == 4 * 2 * 2
    duckdb = pytest.importorskip("duckdb")
    n = duckdb.sql(f"SELECT count(*) FROM '{folder}/dose_response.parquet' "
                   "WHERE fit_error IS NOT NULL").fetchall()[0][0]
    assert n == 2 * 2  # X at two doses: too few, at each timepoint and readout
    # the per-cell dataset and the plate map joined in SQL, without this package
    joined = duckdb.sql(
        f"SELECT m.role, count(*) FROM '{plate}/measurements/{TABLE}/*.parquet' c JOIN "
        f"'{plate}/tables/plate_map/table.parquet' m USING (well) GROUP BY m.role "
        "ORDER BY m.role").fetchall()
    assert [r[0] for r in joined] == ["negative", "positive", "sample"]
    # a table the plate lacks: the error lists its per-cell tables, not the screen folder
    with pytest.raises(FileNotFoundError, match=f"has no measurements/nope .*; it has: "
                                                f"{TABLE}, gt_truth$"):
        check_screen(str(plate), "nope")


def test_screen_checks_everything_before_writing(plate, write_map, snapshot):
    before = snapshot(plate)
    with pytest.raises(KeyError, match="has no plate map"):
        check_screen(str(plate), TABLE)
    annotate_plate(str(plate), write_map())
    before = snapshot(plate)
    with pytest.raises(FileNotFoundError, match="has no measurements/nope"):
        check_screen(str(plate), "nope")
    with pytest.raises(ValueError, match="readout 'GFP': expected a channel with a nucleus/"
                                         "cytoplasm ratio .cyto-reporter, translocation"):
        check_screen(str(plate), TABLE, readouts=["GFP"])
    with pytest.raises(ValueError, match="readout 9: expected a channel index below 4"):
        check_screen(str(plate), TABLE, readouts=[9])
    with pytest.raises(ValueError, match="more than once"):
        check_screen(str(plate), TABLE, readouts=[1, "translocation-reporter"])
    with pytest.raises(ValueError, match="readout 'label'"):
        check_screen(str(plate), TABLE, readouts=["label"])
    with pytest.raises(ValueError, match="readout 'touches_edge' of measurements/"
                                         "gt_cyto_features is not numeric .bool."):
        check_screen(str(plate), TABLE, readouts=["touches_edge"])
    assert snapshot(plate) == before
    plan = check_screen(str(plate), TABLE, readouts=[1])
    assert plan.readouts == (RATIO,) and [u.well for u in plan.units] == [
        "A1", "A2", "A3", "B1", "B2", "B3"]
    assert all(len(u.parts) == 2 for u in plan.units)  # one field, two timepoints


def test_a_plate_never_measured_is_told_to_measure_first(plate, write_map):
    import shutil

    shutil.rmtree(plate / "measurements")
    annotate_plate(str(plate), write_map())
    with pytest.raises(FileNotFoundError, match=f"has no measurements/{TABLE} .*; it has none: "
                                                "measure the plate first"):
        check_screen(str(plate), TABLE)


def test_ratios_of_a_table_measured_without_nuclei_are_refused(plate, write_map,
                                                               cluster_client):
    from structfree_dask.cells.plate_measure import measure_plate

    measure_plate(str(plate), labels="gt_cyto", table="bare", client=cluster_client)
    annotate_plate(str(plate), write_map())
    with pytest.raises(ValueError, match="measurements/bare was measured without nuclei: its "
                                         "nucleus/cytoplasm ratios .* are empty"):
        check_screen(str(plate), "bare")
    with pytest.raises(ValueError, match="without nuclei"):
        check_screen(str(plate), "bare", readouts=["translocation-reporter", "area_um2"])
    assert check_screen(str(plate), "bare", readouts=["area_um2"]).readouts == ("area_um2",)


def test_a_failed_well_writes_no_table(plate, write_map, cluster_client, snapshot):
    annotate_plate(str(plate), write_map())
    part = sorted((plate / "measurements" / TABLE).glob("B-2-0-t*.parquet"))[0]
    part.write_bytes(b"not parquet")
    before = snapshot(plate)
    with pytest.raises(RuntimeError, match=r"not written: 1 task\(s\) failed: well B2: "):
        screen_plate(str(plate), TABLE, client=cluster_client)
    assert snapshot(plate) == before
    with pytest.raises(FileNotFoundError, match="has no screen tables"):
        read_screen_tables(str(plate), TABLE)

"""Linking and measuring plates on a real multi-process cluster."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from structfree_dask import simulate_plate
from structfree_dask.cells.columns import ratio_column, raw_ratio_column
from structfree_dask.cells.plate_measure import link_plate, linked_names, measure_plate
from structfree_dask.io import (
    TableExistsError,
    feature_table_timepoints,
    open_labels,
    open_plate,
    read_feature_table,
    read_plate_dataset,
)


def _digest(root: Path, sub: str) -> str:
    h = hashlib.sha256()
    for p in sorted((root / sub).rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    path = tmp_path_factory.mktemp("cells") / "p.zarr"
    simulate_plate(path, cell_line="CL2", rows=1, cols=2, timepoints=3, size=128, seed=5)
    return path


def test_measure_links_and_writes_tables(plate, cluster_client, tmp_path):
    before = {s: _digest(plate, f"A/1/0/labels/{s}") for s in ("gt_cyto", "gt_nuclei")}
    result = measure_plate(str(plate), labels="gt_cyto", nuclei="gt_nuclei",
                           client=cluster_client, link_labels=True, region=64)
    assert result.ok and len(result.done) == 6
    image = open_plate(plate).field("A/1/0")
    # the simulator's nuclei carry their cell's ID: linking reproduces them exactly
    nuc_name, cyt_name = linked_names("gt_cyto")
    linked = open_labels(image, nuc_name)
    gt_nuclei, gt_cyto = (open_labels(image, n) for n in ("gt_nuclei", "gt_cyto"))
    for level in range(len(linked.shapes)):
        assert np.array_equal(linked.read(level), gt_nuclei.read(level)), level
        cyt = open_labels(image, cyt_name).read(level)
        cells = gt_cyto.read(level)
        assert np.array_equal(cyt, np.where(gt_nuclei.read(level) != 0, 0, cells))
    # sources untouched
    assert before == {s: _digest(plate, f"A/1/0/labels/{s}") for s in ("gt_cyto", "gt_nuclei")}
    # tables: one row per cell and timepoint; ngio reads the field's table
    table = read_feature_table(image, "gt_cyto_features")
    for t in range(3):
        ids = np.unique(gt_cyto.read()[t])[1:]
        assert table.loc[table["t"] == t, "label"].tolist() == ids.tolist()
    ngio = pytest.importorskip("ngio")
    nt = ngio.open_ome_zarr_plate(str(plate)).get_image("A", "1", "0").get_table(
        "gt_cyto_features")
    assert nt.reference_label == "gt_cyto" and len(nt.dataframe) == len(table)
    # the plate-level dataset without this package: pandas, polars, DuckDB
    folder = plate / "measurements" / "gt_cyto_features"
    by_pandas = pd.read_parquet(folder)
    assert len(by_pandas) == len(read_plate_dataset(str(plate), "gt_cyto_features"))
    assert set(by_pandas["well"]) == {"A1", "A2"}
    pl = pytest.importorskip("polars")
    assert pl.scan_parquet(str(folder / "*.parquet")).collect().height == len(by_pandas)
    duckdb = pytest.importorskip("duckdb")
    n = duckdb.sql(f"SELECT count(*) FROM '{folder}/*.parquet'").fetchall()[0][0]
    assert n == len(by_pandas)
    # a measured readout: the translocation reporter's N/C ratio exists for linked cells
    col = ratio_column("translocation-reporter")
    linked_cells = by_pandas[by_pandas["n_nuclei"] == 1]
    assert linked_cells[col].notna().mean() > 0.8  # (NaN: no cytoplasm above background)
    assert (linked_cells[col].dropna() > 0).all()
    raw = linked_cells[raw_ratio_column("translocation-reporter")]
    assert raw.notna().all() and (raw > 0).all()
    flagged = result.flagged()
    assert flagged["cells_without_nucleus"] == int((by_pandas["n_nuclei"] == 0).sum())

    # a rerun skips everything; a second table from one region equals the tiled one
    again = measure_plate(str(plate), labels="gt_cyto", nuclei="gt_nuclei",
                          client=cluster_client, link_labels=True)
    assert again.done == [] and len(again.skipped) == 6
    measure_plate(str(plate), labels="gt_cyto", nuclei="gt_nuclei", table="whole",
                  client=cluster_client, region=1024)
    pd.testing.assert_frame_equal(read_plate_dataset(str(plate), "whole"),
                                  read_plate_dataset(str(plate), "gt_cyto_features"))
    # linking and measuring a field of one region read its planes (and link them) once
    measure_plate(str(plate), labels="gt_cyto", nuclei="gt_nuclei", table="whole_linked",
                  client=cluster_client, link_labels=True, overwrite=True, region=1024)
    pd.testing.assert_frame_equal(read_plate_dataset(str(plate), "whole_linked"),
                                  read_plate_dataset(str(plate), "gt_cyto_features"))
    # (its smaller levels made from level 0 in memory: the same pyramid as the tiled run's)
    for level in range(len(linked.shapes)):
        assert np.array_equal(open_labels(image, nuc_name).read(level),
                              gt_nuclei.read(level)), level
        assert np.array_equal(open_labels(image, cyt_name).read(level),
                              np.where(gt_nuclei.read(level) != 0, 0, gt_cyto.read(level)))


def test_each_field_is_recorded_as_soon_as_its_units_end(plate, cluster_client):
    """A field's completion records and quality metrics are written when its last unit
    finishes, not after the whole run: by the last unit's progress call, every field has
    them."""
    from structfree_dask.cells.quality import QUALITY_ATTRIBUTE
    from structfree_dask.io import completed_timepoints, table_attrs

    opened = open_plate(plate)
    seen = []

    def progress(done, total):
        if done < total:
            return
        for path in ("A/1/0", "A/2/0"):
            image = opened.field(path)
            linked = [open_labels(image, n) for n in linked_names("gt_cyto")]
            seen.append(([completed_timepoints(lb) for lb in linked],
                         sorted(table_attrs(image, "early").get(QUALITY_ATTRIBUTE, {}))))

    result = measure_plate(str(plate), labels="gt_cyto", nuclei="gt_nuclei", table="early",
                           client=cluster_client, link_labels=True, overwrite=True,
                           progress=progress)
    assert result.ok and len(result.done) == 6
    assert seen == [([{0, 1, 2}, {0, 1, 2}], ["0", "1", "2"])] * 2


def test_new_timepoints_only_and_bad_input(plate, cluster_client):
    first = measure_plate(str(plate), labels="gt_cyto", table="grow", client=cluster_client,
                          timepoints=[0, 1], wells=["A/1"])
    assert sorted(first.done) == [("A/1/0", 0), ("A/1/0", 1)]
    # without nuclei nothing is said about nuclei: no count, no flag, no warning
    assert first.flagged() == {} and first.warnings() == []
    assert all(set(c) == {"cells", "quality"} for c in first.counts.values())
    assert all("cells_without_nucleus" not in c["quality"] for c in first.counts.values())
    image = open_plate(plate).field("A/1/0")
    part = plate / "A/1/0/tables/grow/table.parquet/t00000.parquet"
    stamp = part.stat().st_mtime_ns
    more = measure_plate(str(plate), labels="gt_cyto", table="grow", client=cluster_client,
                         wells=["A/1"])
    assert more.done == [("A/1/0", 2)] and part.stat().st_mtime_ns == stamp
    assert feature_table_timepoints(image, "grow") == {0, 1, 2}
    # without nuclei: no nucleus, so no ratio
    df = read_feature_table(image, "grow")
    assert (df["n_nuclei"] == 0).all() and df[ratio_column("translocation-reporter")].isna().all()
    # a table of that name measured otherwise is taken
    with pytest.raises(TableExistsError, match="grow"):
        measure_plate(str(plate), labels="gt_nuclei", table="grow", client=cluster_client)
    with pytest.raises(KeyError, match="no label image 'nope'"):
        link_plate(str(plate), nuclei="nope", cells="gt_cyto", client=cluster_client)
    with pytest.raises(KeyError, match="channel"):
        measure_plate(str(plate), labels="gt_cyto", table="x", channels=["nope"],
                      client=cluster_client)
    with pytest.raises(ValueError, match="do not exist"):
        measure_plate(str(plate), labels="gt_cyto", table="x", timepoints=[7],
                      client=cluster_client)
    assert not (plate / "A/1/0/tables/x").exists()  # nothing written before validation


def test_zero_cells_give_valid_empty_tables(tmp_path, cluster_client):
    from structfree_dask.io import create_plate

    path = tmp_path / "empty.zarr"
    img = np.zeros((2, 1, 64, 64), np.uint16)
    with create_plate(path, rows=["A"], columns=["1"]) as w:
        w.write_field("A", "1", 0, img, axes="tcyx", channel_names=["rep"],
                      labels={"cells": np.zeros((2, 64, 64), np.uint32),
                              "nuc": np.zeros((2, 64, 64), np.uint32)})
    result = measure_plate(str(path), labels="cells", nuclei="nuc", client=cluster_client)
    assert result.ok and len(result.done) == 2
    df = read_plate_dataset(str(path), "cells_features")
    assert len(df) == 0 and "rep__nc_ratio" in df.columns


def test_label_images_that_do_not_fit_are_refused_before_anything_is_written(
        tmp_path, cluster_client):
    """Nuclei and cells of different timepoint counts (e.g. written by another tool before
    timepoints were appended), or labels of another size than the field: one error each,
    nothing written, sources untouched."""
    from structfree_dask.io import create_plate

    path = tmp_path / "p.zarr"
    ones = np.ones((2, 64, 64), np.uint32)
    with create_plate(path, rows=["A"], columns=["1"]) as w:
        w.write_field("A", "1", 0, np.zeros((2, 1, 64, 64), np.uint16), axes="tcyx",
                      channel_names=["rep"], labels={"cells": ones, "short": ones,
                                                     "small": ones})
    image = open_plate(path).field("A/1/0")
    open_labels(image, "short").open_array(0).resize((1, 1, 64, 64))
    for level in range(len(open_labels(image, "small").shapes)):
        arr = open_labels(image, "small").open_array(level)
        arr.resize((*arr.shape[:2], arr.shape[2] // 2, arr.shape[3] // 2))
    before = _digest(path, "A/1/0")
    with pytest.raises(ValueError, match="'cells' and 'short' of field 'A/1/0' differ in shape"):
        link_plate(str(path), nuclei="short", cells="cells", client=cluster_client)
    with pytest.raises(ValueError, match="differ in shape"):
        measure_plate(str(path), labels="cells", nuclei="short", client=cluster_client)
    with pytest.raises(ValueError, match="'small' does not match its field's size"):
        measure_plate(str(path), labels="small", client=cluster_client)
    assert _digest(path, "A/1/0") == before
    assert not (path / "A/1/0/tables").exists()


def test_measuring_after_linking_reads_the_linked_nuclei(tmp_path, cluster_client):
    """measure reads what link wrote (one linking); --overwrite links afresh from the sources."""
    path = tmp_path / "p.zarr"
    simulate_plate(path, cell_line="CL2", timepoints=2, size=96, seed=3)
    link_plate(str(path), nuclei="gt_nuclei", cells="gt_cyto", client=cluster_client)
    image = open_plate(path).field("A/1/0")
    nuc_name, _ = linked_names("gt_cyto")
    linked = open_labels(image, nuc_name)
    # curate the linked image: the nucleus of one cell at t=0 is removed
    plane = linked.read()[0, 0]
    cell = int(np.unique(plane[plane > 0])[0])
    import zarr

    level0 = zarr.open_array(str(path / "A/1/0/labels" / nuc_name / "0"), mode="r+")
    level0[0, 0] = np.where(plane == cell, 0, plane)
    result = measure_plate(str(path), labels="gt_cyto", nuclei="gt_nuclei", table="read",
                           client=cluster_client)
    assert result.ok and len(result.done) == 2
    read = read_feature_table(image, "read").set_index(["t", "label"])
    fresh = measure_plate(str(path), labels="gt_cyto", nuclei="gt_nuclei", table="fresh",
                          link_labels=False, overwrite=True, client=cluster_client)
    assert fresh.ok
    again = read_feature_table(image, "fresh").set_index(["t", "label"])
    assert read.loc[(0, cell), "nucleus_area_px"] == 0  # the curated linked image was read
    assert again.loc[(0, cell), "nucleus_area_px"] > 0  # linked afresh from the sources
    others = ~read.index.isin([(0, cell)])
    assert others.sum() == len(read) - 1
    pd.testing.assert_frame_equal(read[others], again[others])
    assert np.array_equal(open_labels(image, nuc_name).read()[0, 0],
                          np.where(plane == cell, 0, plane))  # measuring wrote no links


def test_a_checked_plan_is_run_as_it_is_and_only_for_its_request(tmp_path, cluster_client):
    from structfree_dask.cells.plate_measure import check_cells

    path = tmp_path / "p.zarr"
    simulate_plate(path, cell_line="CL2", timepoints=2, size=64, seed=1)
    plan = check_cells(str(path), labels="gt_cyto", nuclei="gt_nuclei", table="t",
                       link_labels=False, channels=[1], timepoints=[1])
    assert [(f.image.path, f.timepoints) for f in plan.fields] == [("A/1/0", [1])]
    with pytest.raises(ValueError, match="checked for another request"):
        measure_plate(str(path), labels="gt_cyto", nuclei="gt_nuclei", table="t",
                      link_labels=False, channels=[1], timepoints=[0], plan=plan,
                      client=cluster_client)
    assert not (path / "A/1/0/tables/t").exists()  # refused before anything was written
    result = measure_plate(str(path), labels="gt_cyto", nuclei="gt_nuclei", table="t",
                           link_labels=False, channels=(1,), timepoints=[1], plan=plan,
                           client=cluster_client)
    assert result.ok and result.done == [("A/1/0", 1)]
    assert feature_table_timepoints(open_plate(path).field("A/1/0"), "t") == {1}


def test_nuclei_like_their_cells_are_flagged_and_kept_with_the_table(tmp_path, cluster_client,
                                                                    capsys):
    """A nuclei model that finds whole cells: the table says so and the command warns."""
    from structfree_dask.cells.quality import FLAGS, QUALITY_ATTRIBUTE
    from structfree_dask.cli import main
    from structfree_dask.io import table_attrs, write_labels

    path = tmp_path / "p.zarr"
    simulate_plate(path, cell_line="CL2", timepoints=2, size=96, seed=6)
    image = open_plate(path).field("A/1/0")
    whole = open_labels(image, "gt_cyto").read()
    write_labels(image, "whole", whole)  # "nuclei" that are the cells themselves
    result = measure_plate(str(path), labels="gt_cyto", nuclei="whole", link_labels=False,
                           client=cluster_client)
    assert result.quality == {"A/1/0": {0: ["nuclei_like_cells"], 1: ["nuclei_like_cells"]}}
    assert result.warnings() == [f"{FLAGS['nuclei_like_cells']} (A/1/0 t=0,1)"]
    kept = table_attrs(open_plate(path).field("A/1/0"), "gt_cyto_features")[QUALITY_ATTRIBUTE]
    assert kept["0"]["flags"] == ["nuclei_like_cells"] and kept["1"]["nucleus_fraction"] == 1.0
    good = measure_plate(str(path), labels="gt_cyto", nuclei="gt_nuclei", table="good",
                         link_labels=False, client=cluster_client)
    assert good.quality == {"A/1/0": {0: [], 1: []}} and good.warnings() == []
    # the nuclei of the cells cut by the field's edge missing (outside the field): no flag
    nuclei = open_labels(image, "gt_nuclei").read()
    planes = whole.reshape(-1, *whole.shape[-2:])
    cut = nuclei.reshape(planes.shape).copy()
    for plane, nuc in zip(planes, cut, strict=True):
        edge = np.unique(np.concatenate([plane[0], plane[-1], plane[:, 0], plane[:, -1]]))
        nuc[np.isin(plane, edge[edge > 0])] = 0
    write_labels(image, "cut", cut.reshape(nuclei.shape))
    cut_result = measure_plate(str(path), labels="gt_cyto", nuclei="cut", table="cut",
                               link_labels=False, client=cluster_client)
    metrics = table_attrs(open_plate(path).field("A/1/0"), "cut")[QUALITY_ATTRIBUTE]
    assert all(m["cells_without_nucleus"] == 0 and m["cells_checked"] < m["cells"]
               for m in metrics.values())
    assert cut_result.quality == {"A/1/0": {0: [], 1: []}}
    capsys.readouterr()
    assert main(["measure", str(path), "--labels", "gt_cyto", "--nuclei", "whole",
                 "--table", "cli", "--no-link", "--no-progress", "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {FLAGS['nuclei_like_cells']} (A/1/0 t=0,1)" in err


def test_the_channel_with_implausible_ratios_is_named_with_the_checks(tmp_path, cluster_client):
    """A channel whose nuclei are far brighter than any reporter makes them: the checks say
    which channel raised the flag."""
    import zarr

    from structfree_dask.cells.quality import FLAGS, QUALITY_ATTRIBUTE
    from structfree_dask.io import table_attrs

    path = tmp_path / "p.zarr"
    simulate_plate(path, cell_line="CL2", timepoints=2, size=96, seed=6)
    image = open_plate(path).field("A/1/0")
    nuclei = open_labels(image, "gt_nuclei").read() > 0  # (t, c=1, z, y, x)
    arr = zarr.open_array(str(path / "A" / "1" / "0" / "0"), mode="r+")
    first_channel = arr[:, :1]
    first_channel[nuclei] = np.iinfo(arr.dtype).max  # saturated nuclei: ratios far above 20
    arr[:, :1] = first_channel
    result = measure_plate(str(path), labels="gt_cyto", nuclei="gt_nuclei", link_labels=False,
                           client=cluster_client)
    kept = table_attrs(open_plate(path).field("A/1/0"), "gt_cyto_features")[QUALITY_ATTRIBUTE]
    first, *others = image.channel_names
    for t, m in kept.items():
        assert m["implausible_channels"].startswith(f"{first}: ")
        assert not any(name + ":" in m["implausible_channels"] for name in others)
        assert m["implausible_ratios"] > 0
        assert "implausible_ratios" in result.quality["A/1/0"][int(t)]
    # the warning line names that channel, and only it
    [line] = [w for w in result.warnings() if w.startswith(FLAGS["implausible_ratios"])]
    assert line.endswith(f"(A/1/0 t=0,1: {first})")
    assert result.implausible["A/1/0"] == {int(t): m["implausible_channels"]
                                           for t, m in kept.items()}

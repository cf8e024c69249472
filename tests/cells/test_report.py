"""The offline HTML report of a plate's per-cell table, on a tiny simulated plate."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from structfree_dask import simulate_plate
from structfree_dask.cells.columns import (
    COMPARTMENTS,
    SHAPE_COLUMNS,
    intensity_column,
    ratio_column,
)
from structfree_dask.cells.report import (
    REPORT_PAGE,
    WELL_PAGES,
    cells_per_well,
    default_report_dir,
    readout_per_well,
    time_step_h,
    write_report,
)
from structfree_dask.io import (
    create_feature_table,
    open_labels,
    open_plate,
    plate_dataset,
    plate_part_name,
    write_parquet,
)

READOUT = "translocation-reporter"


def _cell_rows(info, t: int, image: np.ndarray, cyto: np.ndarray, nuclei: np.ndarray) -> list:
    from skimage.measure import regionprops

    row, column, field = info.path.split("/")
    out = []
    for p in regionprops(cyto):
        cell = cyto == p.label
        nucleus = cell & (nuclei > 0)
        parts = {"cell": cell, "nucleus": nucleus, "cytoplasm": cell & ~nucleus}
        rec = {"well": row + column, "row": row, "column": column, "field": int(field), "t": t,
               "label": int(p.label), "track_id": -1, "parent_track_id": -1,
               "area_px": int(p.area), "area_um2": float(p.area), "centroid_y": p.centroid[0],
               "centroid_x": p.centroid[1], "centroid_y_um": p.centroid[0],
               "centroid_x_um": p.centroid[1], "eccentricity": p.eccentricity,
               "solidity": p.solidity, "major_axis_px": p.axis_major_length,
               "minor_axis_px": p.axis_minor_length,
               "touches_edge": bool(cell[0].any() or cell[-1].any() or cell[:, 0].any()
                                    or cell[:, -1].any()),
               "n_nuclei": len(np.unique(nuclei[nucleus])), "nucleus_area_px": int(nucleus.sum())}
        for c, channel in enumerate(info.channel_names):
            for name in COMPARTMENTS:
                v = image[c][parts[name]].astype(float)
                rec[intensity_column(channel, name, "mean")] = v.mean() if v.size else np.nan
                rec[intensity_column(channel, name, "median")] = (np.median(v) if v.size
                                                                  else np.nan)
                rec[intensity_column(channel, name, "integrated")] = v.sum()
            cyto_mean = rec[intensity_column(channel, "cytoplasm", "mean")]
            rec[ratio_column(channel)] = (rec[intensity_column(channel, "nucleus", "mean")]
                                          / cyto_mean if cyto_mean > 0 else np.nan)
        out.append(rec)
    return out


def _measure(store: Path) -> pd.DataFrame:
    plate = open_plate(store)
    rows = []
    for path in plate.field_paths:
        info = plate.field(path)
        image = np.asarray(info.open_array(0)[...])
        cyto = open_labels(info, "gt_cyto").read(0)[:, 0]
        nuclei = open_labels(info, "gt_nuclei").read(0)[:, 0]
        for t in range(info.n_timepoints):
            rows += _cell_rows(info, t, image[t], cyto[t], nuclei[t])
    df = pd.DataFrame(rows)
    assert set(SHAPE_COLUMNS) <= set(df.columns)
    return df


def _write_dataset(store: Path, name: str, df: pd.DataFrame, schema: pd.DataFrame) -> None:
    """One Parquet part per (field, timepoint) of the plate, as the pipeline writes them."""
    plate = open_plate(store)
    for path in plate.field_paths:
        row, column, field = path.split("/")
        for t in range(plate.field(path).n_timepoints):
            part = df[(df["well"] == row + column) & (df["field"] == int(field)) & (df["t"] == t)]
            part = part if len(part) else schema.iloc[:0]
            write_parquet(pa.Table.from_pandas(part, preserve_index=False),
                          f"{plate_dataset(str(store), name)}/{plate_part_name(path, t)}")


def _files(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """A 1 x 2 plate of 3 timepoints with a 'cells' dataset and an empty 'nothing' one."""
    store = simulate_plate(tmp_path_factory.mktemp("plate") / "p.zarr", cell_line="CL1",
                           rows=1, cols=2, timepoints=3, size=64)
    full = _measure(store)
    df = full[~((full["well"] == "A2") & (full["t"] == 1))].copy()  # a timepoint without cells
    df.loc[df.index[0], ratio_column(READOUT)] = np.nan  # a cell without cytoplasm
    df.loc[df.index[1], "n_nuclei"] = 0
    df.loc[df.index[2:4], "n_nuclei"] = 2
    _write_dataset(store, "cells", df, full)
    plate = open_plate(store)  # the fields' tables name the label image the rows describe
    for path in plate.field_paths:
        create_feature_table(plate.field(path), "cells", reference_label="gt_cyto")
    _write_dataset(store, "nothing", full.iloc[:0], full)
    return store, df


def test_report_page_figures_and_counts(campaign, tmp_path, caplog):
    from PIL import Image

    store, df = campaign
    before = _files(store)
    with caplog.at_level(logging.INFO, logger="structfree_dask.cells.report"):
        page = write_report(store, table="cells", labels="gt_cyto", output=tmp_path / "r",
                            flagged={"nuclei outside any cell": 7})
    assert page == tmp_path / "r" / REPORT_PAGE
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "<script" not in text and "http" not in text  # opens offline
    wells = re.findall(r'href="(well-[^"]+)"', text)
    assert wells == ["well-A-1.html", "well-A-2.html"]
    linked = set(re.findall(r'src="([^"]+)"', text))
    for name in wells:  # the pages of the wells: figures, fields; offline too
        well = (page.parent / name).read_text()
        assert "<script" not in well and "http" not in well and 'href="report.html"' in well
        assert "the table is not tracked" in well
        linked |= set(re.findall(r'src="([^"]+)"', well))
    pngs = {p.name for p in page.parent.glob("*.png")}
    assert linked == pngs
    assert {"cells_per_well.png", "readout.png", "thumb-A-1-0.png", "thumb-A-2-0.png",
            "well-A-1.png", "well-A-2.png"} <= pngs
    for name in pngs:
        with Image.open(page.parent / name) as im:
            im.verify()
            assert im.format == "PNG"
    assert "A1" in text and "A2" in text and READOUT in text
    assert f"(n_nuclei = 0)</td><td>{int((df['n_nuclei'] == 0).sum())}</td>" in text
    assert f"(n_nuclei &gt;= 2)</td><td>{int((df['n_nuclei'] >= 2).sum())}</td>" in text
    assert "nuclei outside any cell</td><td>7</td>" in text
    assert "outlines of gt_cyto (cells, yellow)." in text  # no gt_cyto_nuclei in this plate
    assert "<td>time between timepoints</td><td>3 h</td>" in text  # the simulator's step
    assert str(page) in caplog.text
    counts = pd.read_csv(page.parent / "cells_per_well.csv")
    assert counts.query("well == 'A2' and t == 1")["n_cells"].tolist() == [0]
    assert counts["n_cells"].sum() == len(df)
    assert _files(store) == before  # nothing written into the plate


def test_readout_defaults_and_bad_channel(campaign, tmp_path):
    store, _ = campaign
    with pytest.raises(ValueError, match="'GFP'.*channels: .*translocation-reporter"):
        write_report(store, table="cells", readout="GFP", output=tmp_path / "bad")
    page = write_report(store, table="cells", readout="ER", output=tmp_path / "er",
                        thumbnails=0)
    text = page.read_text()
    assert "Translocation readout: ER" in text and "thumb-" not in text
    page = write_report(store, table="cells", output=tmp_path / "default", thumbnails=1)
    text = page.read_text()
    assert f"Translocation readout: {READOUT}" in text
    assert "outlines of gt_cyto" in text  # from the fields' feature table
    with pytest.raises(FileNotFoundError, match="no dataset 'absent'.*; it has: .*cells"):
        write_report(store, table="absent", output=tmp_path / "x")


def test_empty_table_gives_a_valid_page(campaign, tmp_path, monkeypatch):
    store, _ = campaign
    before = _files(store)
    monkeypatch.chdir(tmp_path)
    page = write_report(store, table="nothing", thumbnails=1)
    # the default folder: beside the plate (not in the current folder)
    assert page.resolve() == (Path(store).parent / "p-report" / REPORT_PAGE).resolve()
    assert not (tmp_path / "p-report").exists()
    text = page.read_text()
    assert "has no cells" in text and text.rstrip().endswith("</html>")
    assert set(re.findall(r'src="([^"]+)"', text)) == {"thumb-A-1-0.png"}
    assert "no label image outlined" in text  # no feature table to say which labels
    assert _files(store) == before


def test_helpers_handle_empty_and_nan():
    df = pd.DataFrame({"well": ["B3"] * 3, "row": "B", "column": "3", "t": [0, 0, 2],
                       "label": [1, 2, 1], ratio_column("R"): [np.nan, np.nan, 2.0]})
    stats = readout_per_well(df, "R")
    assert stats["n"].tolist() == [0, 1] and np.isnan(stats["median"].iloc[0])
    assert cells_per_well(df)["n_cells"].tolist() == [2, 1]
    assert cells_per_well(df.iloc[:0]).empty
    assert default_report_dir(Path("/data/run/plate.zarr")) == Path("/data/run/plate-report")


def test_output_inside_the_plate_is_refused(campaign):
    store, _ = campaign
    with pytest.raises(ValueError, match="inside the plate"):
        write_report(store, table="cells", output=Path(store) / "report")


def test_the_report_shows_the_quality_checks(tmp_path, cluster_client):
    """Flags kept with the tables, and fields whose drift was not measured, are shown."""
    from structfree_dask import simulate_plate
    from structfree_dask.cells.plate_measure import measure_plate
    from structfree_dask.cells.plate_track import track_plate
    from structfree_dask.cells.quality import FLAGS
    from structfree_dask.cells.report import quality_rows, write_report
    from structfree_dask.io import open_labels, open_plate, write_labels

    path = tmp_path / "p.zarr"
    simulate_plate(path, cell_line="CL2", timepoints=2, size=96, seed=6)
    image = open_plate(path).field("A/1/0")
    write_labels(image, "whole", open_labels(image, "gt_cyto").read())
    measure_plate(str(path), labels="gt_cyto", nuclei="whole", link_labels=False,
                  client=cluster_client)
    track_plate(str(path), table="gt_cyto_features", client=cluster_client)
    rows = quality_rows(open_plate(path), "gt_cyto_features")
    assert rows[["field", "t", "flags", "registered"]].to_dict("records") == [
        {"field": "A/1/0", "t": 0, "flags": "nuclei_like_cells", "registered": "yes"},
        {"field": "A/1/0", "t": 1, "flags": "nuclei_like_cells", "registered": "yes"}]
    page = write_report(str(path), table="gt_cyto_features", output=tmp_path / "r",
                        thumbnails=0)
    html = page.read_text()
    assert "<h2>Quality checks</h2>" in html and FLAGS["nuclei_like_cells"] in html
    assert (tmp_path / "r" / "quality.csv").read_text().count("nuclei_like_cells") == 2
    # the same cells measured without nuclei: no readout, no nucleus flag or count
    measure_plate(str(path), labels="gt_cyto", table="bare", client=cluster_client)
    page = write_report(str(path), table="bare", output=tmp_path / "b", thumbnails=0)
    html = page.read_text()
    assert "none (measured without nuclei)" in html and "measured without nuclei: no cell " \
        "has a nucleus / cytoplasm ratio" in html
    assert "no cell is flagged for its nuclei" in html and "cells without nucleus" not in html
    assert "readout_per_well.csv" not in html and "<b>cells_without_nucleus</b>" not in html
    # metrics kept by an earlier measuring, which judged the absent nuclei, are not shown
    from structfree_dask.cells.quality import QUALITY_ATTRIBUTE
    from structfree_dask.io import table_attrs, update_table_attrs

    kept = table_attrs(image, "bare")[QUALITY_ATTRIBUTE]
    old = {t: {**m, "cells_without_nucleus": m["cells"], "flags": ["cells_without_nucleus"]}
           for t, m in kept.items()}
    update_table_attrs(image, "bare", **{QUALITY_ATTRIBUTE: old})
    rows = quality_rows(open_plate(path), "bare")
    assert "cells_without_nucleus" not in rows.columns and (rows["flags"] == "").all()


def _hrefs(page: Path) -> list[str]:
    return re.findall(r'href="([^"]+)"', page.read_text())


def test_well_pages_of_a_tracked_plate(tracked_plate, tmp_path):
    """A page per well: tracks over time, cells, every field with cell and nucleus outlines."""
    from structfree_dask.io import read_plate_dataset

    store, table = tracked_plate
    df = read_plate_dataset(str(store), table)
    page = write_report(str(store), table=table, output=tmp_path / "r", thumbnails=1)
    assert [h for h in _hrefs(page) if h.startswith("well-")] == ["well-A-1.html",
                                                                  "well-A-2.html"]
    assert "A page for each of the 2 wells" in page.read_text()
    for well, name in (("A1", "well-A-1.html"), ("A2", "well-A-2.html")):
        text = (page.parent / name).read_text()
        assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
        assert "<script" not in text and "http" not in text  # offline: nothing fetched
        assert _hrefs(page.parent / name) == [REPORT_PAGE]
        images = re.findall(r'src="([^"]+)"', text)
        assert images == [name.replace(".html", ".png"), f"thumb-A-{well[1]}-0.png",
                          f"thumb-A-{well[1]}-1.png"]  # both fields of the well
        assert all((page.parent / i).is_file() for i in images)
        rows = df[df["well"] == well]
        tracks = len(rows.loc[rows["track_id"] >= 0, ["field", "track_id"]].drop_duplicates())
        assert f"<td>tracks</td><td>{tracks}</td>" in text and tracks > 0
        assert f"<td>cells (all timepoints)</td><td>{len(rows)}</td>" in text
        assert "the readout of each track" in text
        assert "gt_cyto (cells, yellow) and gt_cyto_nuclei (nuclei, light blue)" in text


def test_well_pages_are_capped_and_stale_ones_removed(campaign, tmp_path):
    store, _ = campaign
    out = tmp_path / "r"
    write_report(store, table="cells", output=out, thumbnails=0)
    assert {p.name for p in out.glob("well-*")} == {"well-A-1.html", "well-A-1.png",
                                                    "well-A-2.html", "well-A-2.png"}
    (out / "notes.txt").write_text("mine")
    page = write_report(store, table="cells", output=out, thumbnails=0, well_pages=1)
    assert {p.name for p in out.glob("well-*")} == {"well-A-1.html", "well-A-1.png"}
    assert (out / "notes.txt").read_text() == "mine"  # only the report's own files go
    text = page.read_text()
    assert "Pages for the first 1 of the 2 wells, in plate order" in text
    assert '<a href="well-A-1.html">A1</a>' in text and "<td>A2</td>" in text
    write_report(store, table="cells", output=out, thumbnails=0, well_pages=0)
    assert not list(out.glob("well-*")) and "<h2>Wells</h2>" not in page.read_text()
    assert not list(out.glob("thumb-*"))  # the well pages' thumbnails went with them
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="well_pages must be an integer >= 0"):
            write_report(store, table="cells", output=out, well_pages=bad)
    assert WELL_PAGES == 96  # the documented default (docs/cells.md)


def test_time_step_from_the_image_metadata(campaign):
    from types import SimpleNamespace

    store, _ = campaign
    assert time_step_h(open_plate(store).field("A/1/0")) == 3.0  # simulator: 3 h, unit hour
    assert time_step_h(SimpleNamespace(pixel_size={"t": 90.0}, units={"t": "second"})) == 0.025
    for info in (SimpleNamespace(pixel_size={"y": 1.0}, units={}),  # no t axis
                 SimpleNamespace(pixel_size={"t": 1.0}, units={"y": "micrometer"}),  # no unit
                 SimpleNamespace(pixel_size={"t": 2.0}, units={"t": "frame"}),
                 SimpleNamespace(pixel_size={"t": 0.0}, units={"t": "hour"})):
        assert time_step_h(info) is None

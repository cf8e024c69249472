"""Figures of the plate report, drawn from a small measured table and saved as PNG."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from PIL import Image
from skimage.segmentation import find_boundaries

from structfree_dask.cells._report_figures import (
    RATIO,
    plate_maps,
    readout_plate,
    spread,
    thumbnail,
    well_matrix,
    well_over_time,
)
from structfree_dask.cells.columns import ratio_column
from structfree_dask.cells.report import cells_per_well, readout_per_well
from structfree_dask.io import open_labels, open_plate, read_plate_dataset
from structfree_dask.pipeline.normalize import normalize, percentile_bounds

ROWS, COLS = ["A", "B"], ["1", "2", "3"]
READOUT = "translocation-reporter"
OUTLINE = (1.0, 0.85, 0.1)


def _save(fig, path, dpi=50) -> np.ndarray:
    """Save a figure as PNG; check its size in pixels; return its pixels."""
    fig.savefig(path, dpi=dpi)
    with Image.open(path) as im:
        assert im.format == "PNG"
        width, height = fig.get_size_inches() * dpi
        assert im.size == (round(width), round(height))
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.std() > 10  # something was drawn
    return pixels


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def _tick_labels(axis) -> list:
    """The tick labels an axis draws (inside its view, visible, not empty)."""
    lo, hi = sorted(axis.get_view_interval())
    ticks = axis.get_major_ticks(len(axis.get_majorticklocs()))
    return [label for tick in ticks if lo - 1e-9 <= tick.get_loc() <= hi + 1e-9
            for label in (tick.label1, tick.label2) if label.get_visible() and label.get_text()]


def _readable(fig) -> int:
    """Check that no two tick labels of an axis overlap and every label is in the figure.

    Returns the number of tick labels checked.
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox.padded(1)
    n = 0
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = _tick_labels(axis)
            n += len(labels)
            boxes = [label.get_window_extent(renderer) for label in labels]
            for a, b in itertools.combinations(boxes, 2):
                assert not a.overlaps(b), (axis.axis_name, ax.get_title())
        for text in [*_tick_labels(ax.xaxis), *_tick_labels(ax.yaxis), ax.xaxis.label,
                     ax.yaxis.label, ax.title]:
            if text.get_visible() and text.get_text():
                box = text.get_window_extent(renderer)
                assert frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1), \
                    text.get_text()
    return n


@pytest.fixture(scope="module")
def counts(measured_plate):
    """Cells per well (plate layout, NaN for B3) and per well x t (B3 absent)."""
    _, df = measured_plate
    per_well = cells_per_well(df)
    matrix = per_well.pivot_table(index=["row", "column"], columns="t", values="n_cells",
                                  aggfunc="sum")
    layout = pd.MultiIndex.from_product([ROWS, COLS], names=["row", "column"])
    return matrix.reindex(layout), matrix


def test_spread_keeps_first_and_last_evenly():
    assert spread(list("abc"), 5) == ["a", "b", "c"]
    assert spread(list(range(25)), 4) == [0, 8, 16, 24]
    assert spread(list(range(10)), 2) == [0, 9]
    assert spread(list(range(100)), 8) == [0, 14, 28, 42, 57, 71, 85, 99]
    assert spread(list(range(3)), 0) == [] and spread([], 3) == []
    many = spread(list(range(1000)), 25)
    assert len(many) == 25 == len(set(many)) and many == sorted(many)


def test_plate_maps_one_panel_per_timepoint_with_counts_written(counts, measured_plate,
                                                                   tmp_path):
    layout, _ = counts
    _, df = measured_plate
    fig = plate_maps(layout, ROWS, COLS)
    panels = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["t = 0", "t = 1", "t = 2"]
    vmax = np.nanmax(layout.to_numpy())
    for ax, t in zip(panels, [0, 1, 2], strict=True):
        grid = ax.images[0].get_array()
        assert grid.shape == (2, 3)
        assert grid.mask.tolist() == [[False] * 3, [False, False, True]]  # B3: no well data
        assert grid.filled(-1).ravel().tolist() == layout[t].fillna(-1).tolist()
        assert ax.images[0].get_clim() == (0, vmax)  # one scale for every panel
        assert _texts(ax) == [f"{v:.0f}" for v in layout[t].dropna()]
        assert [x.get_text() for x in ax.get_xticklabels()] == COLS
        assert [y.get_text() for y in ax.get_yticklabels()] == ROWS
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("plate column", "plate row")
    assert _texts(panels[1])[1] == "0"  # A2 has no cell at t = 1
    assert sum(int(s) for ax in panels for s in _texts(ax)) == len(df)
    colorbars = [ax for ax in fig.axes if ax.get_ylabel() == "cells"]
    assert len(colorbars) == 1
    ticks = colorbars[0].get_yticks()
    assert np.array_equal(ticks, ticks.round())  # whole cells on the colour bar
    _readable(fig)
    _save(fig, tmp_path / "maps.png")


def test_plate_maps_of_a_384_well_plate_stay_small(tmp_path):
    rows = [chr(ord("A") + i) for i in range(16)]
    cols = [str(j) for j in range(1, 25)]
    index = pd.MultiIndex.from_product([rows, cols])
    values = np.arange(384 * 25, dtype=float).reshape(384, 25) % 97
    values[5] = np.nan  # a well without data
    fig = plate_maps(pd.DataFrame(values, index=index, columns=range(25)), rows, cols)
    panels = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["t = 0", "t = 8", "t = 16", "t = 24"]
    assert all(not ax.texts for ax in panels)  # no numbers on so many wells
    assert panels[0].images[0].get_array().shape == (16, 24)
    assert panels[0].images[0].get_array().mask.sum() == 1
    width, height = fig.get_size_inches()
    assert width <= 18.0 and height <= 11.0
    _save(fig, tmp_path / "maps384.png", dpi=20)


def test_well_matrix_of_counts(counts, tmp_path):
    _, matrix = counts
    fig = well_matrix(matrix, "cells", ".0f", 0)
    ax, bar = fig.axes
    image = ax.images[0]
    assert image.get_array().shape == (5, 3)  # wells with cells x timepoints
    np.testing.assert_array_equal(image.get_array().filled(-1),
                                  matrix.fillna(-1).to_numpy())
    assert image.get_clim()[0] == 0
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A1", "A2", "A3", "B1", "B2"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    assert ax.get_xlabel() == "timepoint" and ax.get_ylabel() == "well"
    assert bar.get_ylabel() == "cells"
    assert [t.get_text() for t in ax.texts] == [f"{v:.0f}" for v in matrix.to_numpy().ravel()]
    assert ax.texts[4].get_text() == "0"  # A2 at t = 1: no cell
    # one white line between plate rows A and B
    lines = [ln for ln in ax.lines if ln.get_color() == "white"]
    assert len(lines) == 1 and lines[0].get_ydata()[0] == 2.5
    _save(fig, tmp_path / "matrix.png")


def test_well_matrix_of_a_large_plate_has_no_numbers_and_thinned_ticks(tmp_path):
    index = [(r, str(c)) for r in "ABCDEFGHIJKLMNOP" for c in range(1, 25)]
    values = pd.DataFrame(np.linspace(0.5, 2.0, 384 * 30).reshape(384, 30),
                          index=pd.MultiIndex.from_tuples(index), columns=range(30))
    fig = well_matrix(values, "median N/C ratio", ".2f")
    ax = fig.axes[0]
    assert not ax.texts
    assert len(ax.get_yticks()) == 64 and len(ax.get_xticks()) == 15
    assert len([ln for ln in ax.lines if ln.get_color() == "white"]) == 15
    assert ax.images[0].get_clim() == pytest.approx((0.5, 2.0))  # default: the data's range
    assert fig.get_size_inches()[1] <= 20.0
    _save(fig, tmp_path / "large.png", dpi=20)


def test_readout_plate_draws_a_band_per_well_with_cells(measured_plate, tmp_path):
    _, df = measured_plate
    stats = readout_per_well(df, READOUT)
    fig = readout_plate(stats, ROWS, COLS, READOUT)
    (ax,) = fig.axes
    title = ax.get_title().replace("\n", " ")
    assert title.startswith(f"{READOUT}: nucleus/cytoplasm ratio per well")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("plate column", "plate row")
    assert "t 0-2 left to right" in title
    lo, hi = np.nanmin(stats[["q25", "q75"]]), np.nanmax(stats[["q25", "q75"]])
    assert f"ratio {lo:.2f}-{hi:.2f} bottom to top" in title
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 5  # an interquartile band per well of the table
    medians = [ln for ln in ax.lines if ln.get_marker() == "."]
    wells = set(zip(df["row"], df["column"], strict=True))
    assert len(medians) == 5  # B3 is not in the table
    for line in medians:
        x, y = line.get_xdata(), line.get_ydata()
        assert len(x) == 3 and np.all(np.diff(x) > 0)  # every timepoint, left to right
        i, j = int(np.floor(np.nanmin(y))), int(np.floor(x[0]))
        assert (ROWS[i], COLS[j]) in wells
        assert x[0] == pytest.approx(j + 0.1) and x[-1] == pytest.approx(j + 0.9)
        finite = y[np.isfinite(y)]
        assert np.all((finite >= i + 0.1 - 1e-9) & (finite <= i + 0.9 + 1e-9))
        assert np.isnan(y).sum() == ((ROWS[i], COLS[j]) == ("A", "2"))  # A2: no cell at t=1
    background = ax.images[0].get_array()
    assert background.shape == (2, 3)
    assert background[1, 2] == pytest.approx(0.88) and (background.ravel()[:5] == 1.0).all()
    assert ax.get_xlim() == (0, 3) and ax.get_ylim() == (2, 0)
    _save(fig, tmp_path / "readout.png")


def test_readout_plate_at_one_timepoint(tmp_path):
    df = pd.DataFrame({"well": ["A1", "A1", "A1", "A2"], "row": "A",
                       "column": ["1", "1", "1", "2"], "t": 4, "label": [1, 2, 3, 1],
                       "R__nc_ratio": [0.5, 1.0, 2.0, np.nan]})
    stats = readout_per_well(df, "R")
    fig = readout_plate(stats, ["A"], ["1", "2"], "R")
    ax = fig.axes[0]
    title = ax.get_title().replace("\n", " ")
    assert "In each well: t 4, ratio 0.75-1.50" in title and "dashed: ratio 1" in title
    assert len(ax.lines) == 2  # a point per well (A2's is NaN: no finite ratio)
    assert ax.lines[0].get_xdata().tolist() == [0.5] and ax.lines[1].get_xdata().tolist() == [1.5]
    assert np.isnan(ax.lines[1].get_ydata()).all()
    # A1's median ratio, 1.0, a third of the way from 0.75 (cell bottom) to 1.5 (top)
    assert ax.lines[0].get_ydata()[0] == pytest.approx(0.9 - 0.8 * (1.0 - 0.75) / 0.75)
    assert ax.images[0].get_array().tolist() == [[1.0, 0.88]]  # A2: no cell with a ratio
    _save(fig, tmp_path / "one.png")


def test_thumbnail_of_a_field_with_outlines(measured_plate, tmp_path):
    store, _ = measured_plate
    info = open_plate(store).field("B/2/0")
    fig = thumbnail(info, 1, "gt_cyto")
    assert [ax.get_title() for ax in fig.axes] == ["B/2/0  t = 0", "B/2/0  t = 2"]
    labels = open_labels(info, "gt_cyto").read(0)
    for ax, t in zip(fig.axes, (0, 2), strict=True):
        rgb = np.asarray(ax.images[0].get_array())
        assert rgb.shape == (64, 64, 3)
        edge = find_boundaries(labels[t, 0], mode="inner")
        assert edge.any()
        assert np.all(rgb[edge] == np.array(OUTLINE, rgb.dtype))
        plane = np.asarray(info.open_array(0)[t, 1], dtype=np.float32)
        gray = np.clip(normalize(plane, *percentile_bounds(plane)), 0, 1)
        np.testing.assert_allclose(rgb[~edge], np.repeat(gray[~edge][:, None], 3, axis=1))
    _save(fig, tmp_path / "thumb.png")


def test_thumbnail_uses_a_small_level_and_the_channel(pyramid_plate, tmp_path):
    info = open_plate(pyramid_plate).field("A/1/0")
    assert [lv.shape[-2:] for lv in info.levels] == [(600, 300), (300, 150), (150, 75)]
    fig = thumbnail(info, 2, None)
    assert len(fig.axes) == 2
    level1 = np.asarray(info.open_array(1)[1, 2], dtype=np.float32)  # >= 256 px: level 1
    rgb = np.asarray(fig.axes[1].images[0].get_array())
    assert rgb.shape == (300, 150, 3)
    gray = np.clip(normalize(level1, *percentile_bounds(level1)), 0, 1)
    np.testing.assert_allclose(rgb, np.repeat(gray[..., None], 3, axis=-1))  # no outline
    _save(fig, tmp_path / "level.png")


def test_thumbnail_without_that_label_image_warns_and_draws_the_image(measured_plate, caplog):
    store, _ = measured_plate
    info = open_plate(store).field("A/1/0")
    with caplog.at_level(logging.WARNING, logger="structfree_dask.cells._report_figures"):
        fig = thumbnail(info, 0, "absent")
    assert len(fig.axes) == 2
    rgb = np.asarray(fig.axes[0].images[0].get_array())
    assert np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 1] == rgb[..., 2])  # gray
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one per timepoint shown
    assert "no outlines of absent in A/1/0 at t=0" in warnings[0].getMessage()
    assert "no label image 'absent'" in warnings[0].getMessage()


def test_figures_give_the_time_in_hours_where_the_step_is_known(counts, measured_plate):
    layout, matrix = counts
    _, df = measured_plate
    maps = plate_maps(layout, ROWS, COLS, step_h=0.5)
    titles = [ax.get_title() for ax in maps.axes if ax.images and ax.get_title()]
    assert titles == ["t = 0 (0 h)", "t = 1 (0.5 h)", "t = 2 (1 h)"]
    fig = well_matrix(matrix, "cells", ".0f", 0, step_h=3.0)
    ax, bar = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel(), bar.get_ylabel()) == ("time (h)", "well", "cells")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "3", "6"]
    fig = readout_plate(readout_per_well(df, READOUT), ROWS, COLS, READOUT, step_h=3.0)
    title = fig.axes[0].get_title().replace("\n", " ")
    assert "In each well: time 0-6 h left to right" in title and "t 0-2" not in title
    fig = well_matrix(matrix, f"median {RATIO}", ".2f")
    ax, bar = fig.axes
    assert ax.get_xlabel() == "timepoint"
    assert bar.get_ylabel().replace("\n", " ") == "median nucleus/cytoplasm ratio"
    _readable(fig)  # the long colour bar label is wrapped to fit


def test_figures_of_a_384_well_plate_stay_readable():
    rows = [chr(ord("A") + i) for i in range(16)]
    cols = [str(j) for j in range(1, 25)]
    index = pd.MultiIndex.from_product([rows, cols], names=["row", "column"])
    values = pd.DataFrame(np.arange(384 * 30, dtype=float).reshape(384, 30) % 97,
                          index=index, columns=range(30))
    assert _readable(plate_maps(values, rows, cols, step_h=0.25)) >= 4 * (16 + 24)
    assert _readable(well_matrix(values, f"median {RATIO}", ".2f", step_h=0.25)) >= 64 + 15
    stats = values.stack().rename("median").reset_index().rename(columns={"level_2": "t"})
    stats = stats.assign(q25=stats["median"] - 1, q75=stats["median"] + 1, n=5)
    assert _readable(readout_plate(stats, rows, cols, READOUT, step_h=0.25)) >= 16 + 24


def _well(df: pd.DataFrame, well: str) -> pd.DataFrame:
    return df[df["well"] == well]


def test_well_over_time_draws_one_line_per_track(tracked_plate, tmp_path):
    store, table = tracked_plate
    df = _well(read_plate_dataset(str(store), table), "A1")
    fig = well_over_time(df, [0, 1, 2], READOUT, step_h=3.0)
    readout, cells = fig.axes
    assert (readout.get_xlabel(), readout.get_ylabel()) == ("time (h)", RATIO)
    assert (cells.get_xlabel(), cells.get_ylabel()) == ("time (h)", "cells")
    (tracks,) = [c for c in readout.collections if isinstance(c, LineCollection)]
    ratio = ratio_column(READOUT)
    keys = df.loc[df["track_id"] >= 0, ["field", "track_id"]].drop_duplicates()
    drawn = df[(df["track_id"] >= 0) & df[ratio].notna()][["field", "track_id"]]
    drawn = sorted(set(map(tuple, drawn.to_numpy())))  # tracks with a ratio
    assert len(tracks.get_segments()) == len(drawn) > 1
    assert len(drawn) > df["track_id"].nunique()  # track IDs are per field: lines too
    hidden = len(keys) - len(drawn)
    assert readout.get_title().endswith(
        f"({len(drawn)} tracks" + (f"; {hidden} more without a ratio)" if hidden else ")"))
    for (field, track), segment in zip(drawn, tracks.get_segments(), strict=True):
        rows = df[(df["field"] == field) & (df["track_id"] == track)].sort_values("t")
        rows = rows[rows[ratio].notna()]  # the line joins the points with a ratio
        if (rows["parent_track_id"] < 0).all():  # (a daughter starts at her mother)
            np.testing.assert_allclose(segment[:, 0], rows["t"] * 3.0)
            np.testing.assert_allclose(segment[:, 1], rows[ratio])
    total = [ln for ln in cells.lines if ln.get_label() == "well"][0]
    assert total.get_ydata().tolist() == df.groupby("t").size().reindex([0, 1, 2]).tolist()
    assert {ln.get_label() for ln in cells.lines} == {"well", "field 0", "field 1"}
    assert [t.get_text() for t in readout.get_xticklabels()] == ["0", "3", "6"]
    _readable(fig)
    _save(fig, tmp_path / "tracks.png")


def test_well_over_time_of_an_untracked_well_shows_distributions(measured_plate, tmp_path):
    _, df = measured_plate
    well = _well(df, "A2")  # no cell at t = 1
    assert (well["track_id"] == -1).all()
    fig = well_over_time(well, [0, 1, 2], READOUT)
    readout, cells = fig.axes
    assert (readout.get_xlabel(), readout.get_ylabel()) == ("timepoint", RATIO)
    assert (cells.get_xlabel(), cells.get_ylabel()) == ("timepoint", "cells")
    assert not [c for c in readout.collections if isinstance(c, LineCollection)]
    assert "not tracked" in readout.get_title()
    (median,) = [ln for ln in readout.lines if ln.get_label() == "median"]
    assert median.get_xdata().tolist() == [0.0, 2.0]
    expected = well.groupby("t")[ratio_column(READOUT)].median()
    np.testing.assert_allclose(median.get_ydata(), expected.to_numpy())
    (total,) = [ln for ln in cells.lines if ln.get_label() == "well"]
    n = well.groupby("t").size()
    assert total.get_ydata().tolist() == [n[0], 0, n[2]]
    _readable(fig)
    _save(fig, tmp_path / "boxes.png")


def test_well_over_time_joins_daughters_and_handles_no_cells():
    column = ratio_column("R")
    df = pd.DataFrame({"field": [0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1],
                       "t": [0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2],
                       "track_id": [1, 1, 2, 2, 3, 3, 1, -1, 2, 2, 2],
                       "parent_track_id": [-1, -1, 1, 1, 1, 1, -1, -1, -1, -1, -1],
                       column: [1.0, 1.2, 1.5, 1.6, 0.9, 0.8, 2.0, 3.0, 1.0, np.nan, 1.4]})
    fig = well_over_time(df, [0, 1, 2, 3], "R", step_h=0.5)
    readout = fig.axes[0]
    (tracks,) = [c for c in readout.collections if isinstance(c, LineCollection)]
    segments = [s.tolist() for s in tracks.get_segments()]
    assert segments == [[[0.0, 1.0], [0.5, 1.2]],  # field 0, track 1: the mother
                        [[0.5, 1.2], [1.0, 1.5], [1.5, 1.6]],  # her daughters
                        [[0.5, 1.2], [1.0, 0.9], [1.5, 0.8]],
                        [[0.0, 2.0]],  # field 1, track 1: another cell
                        [[0.0, 1.0], [1.0, 1.4]]]  # joined over a missing ratio
    assert readout.get_title() == "R: one line per track (5 tracks)"
    loose = [c for c in readout.collections if c.get_label() == "not tracked"]
    assert len(loose) == 1 and loose[0].get_offsets().tolist() == [[0.5, 3.0]]
    empty = well_over_time(df.iloc[:0], [0, 1], "R")
    assert [t.get_text() for t in empty.axes[0].texts] == ["no cell with a ratio"]
    assert empty.axes[1].lines[-1].get_ydata().tolist() == [0, 0]
    alone = well_over_time(df, [0, 1, 2, 3], None)
    assert [ax.get_ylabel() for ax in alone.axes] == ["cells"]
    _readable(fig)


def test_well_over_time_of_many_timepoints_thins_the_time_ticks():
    rng = np.random.default_rng(0)
    ts = list(range(120))
    df = pd.DataFrame({"field": 0, "t": np.repeat(ts, 3), "track_id": np.tile([1, 2, 3], 120),
                       "parent_track_id": -1, ratio_column("R"): rng.uniform(0.5, 2, 360)})
    fig = well_over_time(df, ts, "R", step_h=0.25)
    _readable(fig)
    assert 3 <= len(_tick_labels(fig.axes[0].xaxis)) <= 12


def test_thumbnail_outlines_nuclei_under_the_cells(tracked_plate):
    store, _ = tracked_plate
    info = open_plate(store).field("A/1/0")
    fig = thumbnail(info, 1, "gt_cyto", "gt_cyto_nuclei", step_h=3.0)
    assert [ax.get_title() for ax in fig.axes] == ["A/1/0  t = 0 (0 h)", "A/1/0  t = 2 (6 h)"]
    rgb = np.asarray(fig.axes[0].images[0].get_array())
    cells = find_boundaries(open_labels(info, "gt_cyto").read(0)[0, 0], mode="inner")
    nuclei = find_boundaries(open_labels(info, "gt_cyto_nuclei").read(0)[0, 0], mode="inner")
    assert np.all(rgb[cells] == np.array(OUTLINE, rgb.dtype))
    assert (nuclei & ~cells).any()
    assert np.all(rgb[nuclei & ~cells] == np.array((0.2, 0.8, 1.0), rgb.dtype))

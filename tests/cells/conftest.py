"""Small simulated plates shared by the tests of the cells package."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from structfree_dask import simulate_plate
from structfree_dask.cells.measure import measure_cells
from structfree_dask.io import open_labels, open_plate


@pytest.fixture(scope="session")
def pyramid_plate(tmp_path_factory):
    """One field of 600 x 300 px, 2 timepoints, 3 pyramid levels, with gt labels.

    The labels' level 0 is chunked 512 px along y, so regions can cross a chunk border.
    """
    return simulate_plate(tmp_path_factory.mktemp("pyramid") / "p.zarr", cell_line="CL1",
                          size=(600, 300), timepoints=2, seed=1)


@pytest.fixture(scope="session")
def measured_plate(tmp_path_factory):
    """A 2 x 3 plate (64 px, 3 timepoints) and its per-cell table, measured on gt labels.

    Well B3 is left out of the table (a well of the layout without cells) and well A2
    has no cell at t = 1. Returns ``(store, table)``; the table has the plate keys
    (``well``, ``row``, ``column``, ``field``) and every measurement column.
    """
    store = simulate_plate(tmp_path_factory.mktemp("measured") / "p.zarr", cell_line="CL1",
                           rows=2, cols=3, timepoints=3, size=64, seed=3)
    plate = open_plate(store)
    parts = []
    for path in plate.field_paths:
        row, column, field = path.split("/")
        info = plate.field(path)
        image = np.asarray(info.open_array(0)[...])
        cells = open_labels(info, "gt_cyto").read(0)[:, 0]
        nuclei = open_labels(info, "gt_nuclei").read(0)[:, 0]
        for t in range(info.n_timepoints):
            owned = np.unique(cells[t])[1:]
            df = measure_cells(cells[t], nuclei[t], image[t], owned=owned,
                               channel_names=info.channel_names, pixel_size_um=(1.0, 1.0),
                               field_shape=cells[t].shape, n_nuclei=np.ones(len(owned)))
            df["t"] = t
            parts.append(df.assign(well=row + column, row=row, column=column,
                                   field=int(field)))
    table = pd.concat(parts, ignore_index=True)
    table = table[(table["well"] != "B3") & ~((table["well"] == "A2") & (table["t"] == 1))]
    keys = ["well", "row", "column", "field"]
    return store, table[keys + [c for c in table.columns if c not in keys]].reset_index(
        drop=True)


@pytest.fixture(scope="session")
def tracked_plate(tmp_path_factory, cluster_client):
    """A 1 x 2 plate of 2 fields per well (64 px, 3 timepoints), measured and tracked.

    Measured on the gt labels with their nuclei linked (``gt_cyto_nuclei`` written),
    then tracked. Returns ``(store, table)``; the table is ``gt_cyto_features``.
    """
    from structfree_dask.cells.plate_measure import measure_plate
    from structfree_dask.cells.plate_track import track_plate

    store = simulate_plate(tmp_path_factory.mktemp("tracked") / "p.zarr", cell_line="CL1",
                           rows=1, cols=2, fields=2, timepoints=3, size=64, seed=2)
    measure_plate(str(store), labels="gt_cyto", nuclei="gt_nuclei", client=cluster_client)
    track_plate(str(store), table="gt_cyto_features", client=cluster_client)
    return store, "gt_cyto_features"


def _centroid_table(labels: np.ndarray) -> pd.DataFrame:
    """Rows (label, t, centroid_y, centroid_x, area_px) of a (t, y, x) label stack."""
    from skimage.measure import regionprops_table

    parts = []
    for t, plane in enumerate(labels):
        props = regionprops_table(plane, properties=("label", "centroid", "area"))
        parts.append(pd.DataFrame({"label": props["label"], "t": t,
                                   "centroid_y": props["centroid-0"],
                                   "centroid_x": props["centroid-1"],
                                   "area_px": props["area"]}))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="session")
def field():
    """A CL1 confocal field, 160 px, 10 timepoints: its cell labels and centroid table."""
    from structfree_dask.simulate import simulate_field

    f = simulate_field("CL1", size=160, timepoints=10, seed=0)
    return f.cyto, _centroid_table(f.cyto)

"""Per-cell measurements of linked objects: shape, position and per-channel intensities.

:func:`measure_cells` measures the cells a region owns on a window that holds them
whole (pure function on arrays; scikit-image's ``regionprops`` computes shape, position
and intensity). Each channel is measured in the whole cell, its nucleus and its
cytoplasm (mean, median, integrated = sum), and the nucleus / cytoplasm ratio of the
means is given per channel. Column names are those of :mod:`.columns`.

Examples
--------
>>> cells = np.zeros((6, 6), np.uint32); cells[1:5, 1:5] = 1
>>> linked = np.zeros_like(cells); linked[2:4, 2:4] = 1
>>> image = np.ones((1, 6, 6), np.float32); image[0, 2:4, 2:4] = 3
>>> df = measure_cells(cells, linked, image, owned=np.array([1]), channel_names=["rep"],
...                    pixel_size_um=(0.5, 0.5), field_shape=(6, 6), n_nuclei=np.array([1]))
>>> df[["label", "area_px", "area_um2", "rep__nc_ratio", "touches_edge"]].to_dict("records")
[{'label': 1, 'area_px': 16, 'area_um2': 4.0, 'rep__nc_ratio': 3.0, 'touches_edge': False}]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .columns import (
    COMPARTMENTS,
    SHAPE_COLUMNS,
    STATISTICS,
    TRACK_COLUMNS,
    intensity_column,
    ratio_column,
)

__all__ = ["column_dtypes", "empty_measurements", "measure_cells"]

_INT = {"label": "int64", "t": "int32", "area_px": "int64", "n_nuclei": "int32",
        "nucleus_area_px": "int64", "track_id": "int64", "parent_track_id": "int64"}


def column_dtypes(channel_names: Sequence[str]) -> dict[str, str]:
    """Every column of a measurement table and its dtype, in table order.

    Examples
    --------
    >>> list(column_dtypes(["a"]))[:4]
    ['label', 't', 'area_px', 'area_um2']
    >>> len(column_dtypes(["a", "b"])) - len(column_dtypes([]))
    20
    """
    cols: dict[str, str] = {"label": "int64", "t": "int32"}
    for name in SHAPE_COLUMNS:
        cols[name] = _INT.get(name, "bool" if name == "touches_edge" else "float64")
    for ch in channel_names:
        for comp in COMPARTMENTS:
            for stat in STATISTICS:
                cols[intensity_column(ch, comp, stat)] = "float64"
        cols[ratio_column(ch)] = "float64"
    for name in TRACK_COLUMNS:
        cols[name] = "int64"
    return cols


def empty_measurements(channel_names: Sequence[str]) -> pd.DataFrame:
    """Return a measurement table with no rows (every column, with its dtype)."""
    dtypes = column_dtypes(channel_names)
    return pd.DataFrame({k: pd.Series([], dtype=v) for k, v in dtypes.items()})


def _median(mask: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    return np.median(intensity[mask], axis=0)


def _intensity_props(labels: np.ndarray, intensity: np.ndarray, n_channels: int) -> pd.DataFrame:
    from skimage.measure import regionprops_table

    props = regionprops_table(labels, intensity_image=intensity,
                              properties=("label", "area", "intensity_mean"),
                              extra_properties=(_median,))
    out = {"label": props["label"].astype(np.int64), "area": props["area"].astype(np.int64)}
    for j in range(n_channels):
        suffix = f"-{j}"
        out[f"mean{j}"] = np.asarray(props[f"intensity_mean{suffix}"], np.float64)
        out[f"median{j}"] = np.asarray(props[f"_median{suffix}"], np.float64)
    return pd.DataFrame(out).set_index("label")


def measure_cells(cells: np.ndarray, linked: np.ndarray, image: np.ndarray, *,
                  owned: np.ndarray, channel_names: Sequence[str],
                  pixel_size_um: tuple[float, float], field_shape: tuple[int, int],
                  n_nuclei: np.ndarray, offset: tuple[int, int] = (0, 0)) -> pd.DataFrame:
    """Measure the owned cells of a window.

    Parameters
    ----------
    cells : numpy.ndarray
        ``(y, x)`` cell labels of the window (every owned cell whole).
    linked : numpy.ndarray
        ``(y, x)`` linked nuclei of the window (a nucleus carries its cell's ID).
    image : numpy.ndarray
        ``(c, y, x)`` intensities of the window, one plane per channel.
    owned : numpy.ndarray
        IDs of the cells to measure (others in the window are ignored).
    channel_names : sequence of str
        One name per channel of ``image``.
    pixel_size_um : (float, float)
        Pixel size along y and x in micrometres.
    field_shape : (int, int)
        Size of the whole field, for ``touches_edge``.
    n_nuclei : numpy.ndarray
        Nuclei linked to each owned cell (same order as ``owned``).
    offset : (int, int)
        Field coordinates of the window's first pixel.

    Returns
    -------
    pandas.DataFrame
        One row per owned cell present in the window, columns of :func:`column_dtypes`
        (``t`` 0, tracks -1); NaN where a compartment is empty (a cell with no nucleus
        has no nucleus intensities and no ratio).
    """
    from skimage.measure import regionprops_table

    if image.ndim != 3 or image.shape[1:] != cells.shape or linked.shape != cells.shape:
        raise ValueError(
            f"expected cells and linked (y, x) and image (c, y, x) of one window; got "
            f"{cells.shape}, {linked.shape} and {image.shape}"
        )
    if image.shape[0] != len(channel_names):
        raise ValueError(f"{image.shape[0]} channels but {len(channel_names)} channel names")
    owned = np.asarray(owned, np.int64)
    keep = np.isin(cells, owned)
    if not keep.any():
        return empty_measurements(channel_names)
    # scikit-image sizes its per-object lists by the largest ID: measure on IDs 1..n (memory
    # by the number of cells, not by their IDs) and give the rows their own IDs back
    ids = np.unique(cells[keep]).astype(np.int64)
    cells_owned = np.where(keep, np.searchsorted(ids, cells) + 1, 0).astype(np.int64)
    nuc = np.where(keep & (linked == cells), cells_owned, 0)
    cyt = np.where(keep & (linked != cells), cells_owned, 0)
    intensity = np.moveaxis(np.asarray(image, np.float64), 0, -1)
    shape = regionprops_table(
        cells_owned,
        properties=("label", "area", "centroid", "eccentricity", "solidity",
                    "axis_major_length", "axis_minor_length", "bbox"),
    )
    seq = shape["label"].astype(np.int64)
    labels = ids[seq - 1]
    py, px = pixel_size_um
    cy = shape["centroid-0"] + offset[0]
    cx = shape["centroid-1"] + offset[1]
    y0 = shape["bbox-0"] + offset[0]
    x0 = shape["bbox-1"] + offset[1]
    y1 = shape["bbox-2"] + offset[0]
    x1 = shape["bbox-3"] + offset[1]
    n_lut = dict(zip(owned.tolist(), np.asarray(n_nuclei).tolist(), strict=True))
    n_ch = len(channel_names)
    parts = {name: _intensity_props(lab, intensity, n_ch).reindex(seq)
             for name, lab in (("cell", cells_owned), ("nucleus", nuc), ("cytoplasm", cyt))}
    out: dict[str, object] = {
        "label": labels,
        "t": np.zeros(len(labels), np.int32),
        "area_px": shape["area"].astype(np.int64),
        "area_um2": shape["area"] * py * px,
        "centroid_y": cy,
        "centroid_x": cx,
        "centroid_y_um": cy * py,
        "centroid_x_um": cx * px,
        "eccentricity": shape["eccentricity"],
        "solidity": shape["solidity"],
        "major_axis_px": shape["axis_major_length"],
        "minor_axis_px": shape["axis_minor_length"],
        "touches_edge": (y0 <= 0) | (x0 <= 0) | (y1 >= field_shape[0]) | (x1 >= field_shape[1]),
        "n_nuclei": np.array([n_lut.get(int(v), 0) for v in labels], np.int32),
        "nucleus_area_px": parts["nucleus"]["area"].fillna(0).to_numpy(np.int64),
    }
    for j, ch in enumerate(channel_names):
        for comp in COMPARTMENTS:
            p = parts[comp]
            mean = p[f"mean{j}"].to_numpy(np.float64)
            out[intensity_column(ch, comp, "mean")] = mean
            out[intensity_column(ch, comp, "median")] = p[f"median{j}"].to_numpy(np.float64)
            out[intensity_column(ch, comp, "integrated")] = mean * p["area"].to_numpy(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (out[intensity_column(ch, "nucleus", "mean")]
                     / out[intensity_column(ch, "cytoplasm", "mean")])
        out[ratio_column(ch)] = np.where(np.isfinite(ratio), ratio, np.nan)
    for name in TRACK_COLUMNS:
        out[name] = np.full(len(labels), -1, np.int64)
    df = pd.DataFrame(out)
    return df.astype(column_dtypes(channel_names))[list(column_dtypes(channel_names))]

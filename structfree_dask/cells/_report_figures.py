"""Figures of the plate report (:mod:`.report`): plate maps, well x time matrices, thumbnails.

Each function returns a matplotlib Figure on an Agg canvas (no pyplot, no global
backend change) sized for plates from 1 x 1 to 16 x 24 wells and 1 to ~25 timepoints.
"""

from __future__ import annotations

import logging
import math
import textwrap
from typing import Any

import numpy as np
import pandas as pd

from ..io import ImageInfo, open_labels
from ..pipeline.normalize import normalize, percentile_bounds

__all__ = ["plate_maps", "readout_plate", "spread", "thumbnail", "well_matrix"]

logger = logging.getLogger(__name__)

_THUMB_PX = 256  # thumbnails come from the smallest pyramid level at least this large
_OUTLINE = (1.0, 0.85, 0.1)


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _clip(x: float, lo: float, hi: float) -> float:
    return float(min(max(x, lo), hi))


def spread(values: list[Any], k: int) -> list[Any]:
    """Return at most ``k`` of the values, evenly spread, first and last included.

    Examples
    --------
    >>> spread(list(range(25)), 4)
    [0, 8, 16, 24]
    """
    if len(values) <= k:
        return list(values)
    return [values[i] for i in np.unique(np.linspace(0, len(values) - 1, k).round().astype(int))]


def plate_maps(counts: pd.DataFrame, rows: list[str], cols: list[str]) -> Any:
    """Draw cells per well in plate layout at a few timepoints, on one colour scale.

    Parameters
    ----------
    counts : pandas.DataFrame
        Index: every (row, column) of the ``rows`` x ``cols`` layout in row-major order
        (NaN where the plate has no well); columns: timepoints.
    rows, cols : list of str
    """
    nr, nc = len(rows), len(cols)
    shown = spread(list(counts.columns), 8 if nr * nc <= 96 else 4)
    w, h = _clip(0.32 * nc + 0.8, 1.8, 8.5), _clip(0.3 * nr + 0.7, 1.2, 5.5)
    ncols = max(1, min(len(shown), 4, int(17 // w)))
    fig = _figure(w * ncols + 1.0, h * math.ceil(len(shown) / ncols))
    axes = np.atleast_1d(fig.subplots(math.ceil(len(shown) / ncols), ncols, squeeze=False)).ravel()
    values = counts.to_numpy(dtype=float)
    vmax = max(1.0, float(np.nanmax(values))) if np.isfinite(values).any() else 1.0
    image = None
    for ax, t in zip(axes, shown, strict=False):
        grid = counts[t].to_numpy(dtype=float).reshape(nr, nc)
        image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=0, vmax=vmax)
        ax.set_facecolor("0.85")
        ax.set_title(f"t = {t}", fontsize=8)
        ax.set_xticks(range(nc), cols, fontsize=6 if nc > 12 else 7)
        ax.set_yticks(range(nr), rows, fontsize=6 if nr > 8 else 7)
        ax.tick_params(length=0, labeltop=True, labelbottom=False)
        for (i, j), v in np.ndenumerate(grid):
            if nr * nc <= 96 and math.isfinite(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if v < 0.6 * vmax else "black")
    for ax in axes[len(shown):]:
        ax.set_axis_off()
    fig.colorbar(image, ax=axes[: len(shown)].tolist(), label="cells",
                 shrink=0.9 if len(shown) <= ncols else 0.6)
    return fig


def well_matrix(values: pd.DataFrame, label: str, fmt: str, vmin: float | None = None) -> Any:
    """Draw a well x timepoint heat map (NaN grey), thin lines between plate rows.

    Parameters
    ----------
    values : pandas.DataFrame
        Index: (row, column) of each well in plate order; columns: timepoints.
    label : str
        Colour bar label.
    fmt : str
        Format of the numbers written in the cells (small matrices only).
    vmin : float, optional
        Bottom of the colour scale (default: the smallest value).
    """
    n_w, n_t = values.shape
    fig = _figure(_clip(n_t * 0.4 + 2.5, 4.0, 12.0), _clip(0.17 * n_w + 1.3, 2.2, 20.0))
    ax = fig.subplots()
    data = values.to_numpy(dtype=float)
    image = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", aspect="auto", vmin=vmin,
                      interpolation="nearest")
    ax.set_facecolor("0.85")
    step_w, step_t = math.ceil(n_w / 64), math.ceil(n_t / 25)
    ax.set_yticks(range(0, n_w, step_w), [f"{r}{c}" for r, c in values.index][::step_w],
                  fontsize=6 if n_w > 24 else 8)
    ax.set_xticks(range(0, n_t, step_t), [str(t) for t in values.columns][::step_t], fontsize=7)
    ax.set_xlabel("timepoint")
    ax.set_ylabel("well")
    plate_rows = [r for r, _ in values.index]
    for i in range(1, n_w):
        if plate_rows[i] != plate_rows[i - 1] and n_w > len(set(plate_rows)):
            ax.axhline(i - 0.5, color="white", lw=0.6)
    if n_w * n_t <= 150:
        finite = data[np.isfinite(data)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for (i, j), v in np.ndenumerate(data):
            if math.isfinite(v):
                ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=6,
                        color="white" if v < mid else "black")
    fig.colorbar(image, ax=ax, label=label, shrink=0.6 if n_w > 40 else 1.0)
    return fig


def readout_plate(stats: pd.DataFrame, rows: list[str], cols: list[str], channel: str) -> Any:
    """Draw the readout's median and IQR band over time as a sparkline in each well's cell.

    One axes for the whole plate (hundreds of small axes take minutes to draw); every
    well has the same time and ratio scale, given in the title.

    Parameters
    ----------
    stats : pandas.DataFrame
        :func:`~structfree_dask.cells.report.readout_per_well`.
    rows, cols : list of str
        The plate layout.
    channel : str
    """
    nr, nc = len(rows), len(cols)
    width = _clip(0.9 * nc + 1.5, 4.0, 22.0)
    fig = _figure(width, _clip(0.7 * nr + 1.4, 2.6, 14.0))
    ax = fig.subplots()
    ts = sorted(int(t) for t in stats["t"].unique())
    bands = stats[["q25", "q75"]].to_numpy(dtype=float)
    lo, hi = (np.nanmin(bands), np.nanmax(bands)) if np.isfinite(bands).any() else (0.0, 1.0)
    lo, hi = (lo - 0.5, hi + 0.5) if hi - lo < 1e-9 else (lo, hi)
    background = np.full((nr, nc), 0.88)  # grey unless the well has cells
    for (r, c), sub in stats.sort_values("t").groupby(["row", "column"]):
        i, j = rows.index(r), cols.index(c)
        background[i, j] = 1.0 if sub["n"].sum() else background[i, j]
        x = j + (0.5 if len(ts) == 1 else 0.1 + 0.8 * (sub["t"].to_numpy() - ts[0])
                 / (ts[-1] - ts[0]))
        y = {k: i + 0.9 - 0.8 * (sub[k].to_numpy(dtype=float) - lo) / (hi - lo)
             for k in ("median", "q25", "q75")}
        ax.fill_between(x, y["q25"], y["q75"], color="C0", alpha=0.3, lw=0)
        ax.plot(x, y["median"], color="C0", lw=1.0, marker="." if len(ts) < 8 else None, ms=3)
        if len(ts) == 1:
            ax.vlines(x, y["q25"], y["q75"], color="C0", lw=2, alpha=0.5)
    ax.imshow(background, cmap="gray", vmin=0, vmax=1, extent=(0, nc, nr, 0), aspect="auto")
    if lo < 1.0 < hi:
        one = np.arange(nr) + 0.9 - 0.8 * (1.0 - lo) / (hi - lo)
        ax.hlines(one, np.zeros(nr), np.full(nr, nc), colors="0.6", lw=0.5, linestyles="--")
    ax.vlines(range(nc + 1), 0, nr, colors="0.7", lw=0.5)
    ax.hlines(range(nr + 1), 0, nc, colors="0.7", lw=0.5)
    ax.set_xticks(np.arange(nc) + 0.5, cols, fontsize=7)
    ax.set_yticks(np.arange(nr) + 0.5, rows, fontsize=7)
    ax.tick_params(length=0, labeltop=True, labelbottom=False)
    ax.set(xlim=(0, nc), ylim=(nr, 0))
    when = f"t {ts[0]}-{ts[-1]} left to right" if len(ts) > 1 else f"t {ts[0]}"
    text = (f"{channel}: nucleus / cytoplasm ratio per well (median, interquartile band). "
            f"In each well: {when}, ratio {lo:.2f}-{hi:.2f} bottom to top"
            + ("; dashed: ratio 1" if lo < 1.0 < hi else "") + "; grey: no cell.")
    ax.set_title(textwrap.fill(text, int(width * 15)), fontsize=8)
    return fig


def _level(info: ImageInfo) -> int:
    """Return the smallest pyramid level with at least ``_THUMB_PX`` pixels along y or x."""
    best = 0
    for i, lvl in enumerate(info.levels):
        if max(s for ax, s in zip(info.axes, lvl.shape, strict=True) if ax in "yx") >= _THUMB_PX:
            best = i
    return best


def _label_plane(info: ImageInfo, name: str, t: int, z: int, shape: tuple[int, ...]) -> Any:
    """Read the label plane at (t, z) onto ``shape`` (None, logged, when unreadable)."""
    try:
        lab = open_labels(info, name)
        yx = [tuple(s for ax, s in zip(info.axes, sh, strict=True) if ax in "yx")
              for sh in lab.shapes]
        fits = [i for i, s in enumerate(yx) if s[0] >= shape[0] and s[1] >= shape[1]]
        level = min(fits, key=lambda i: yx[i][0] * yx[i][1]) if fits else 0
        plane = np.asarray(lab.open_array(level, mode="r")[info.plane_index(t, z)])
    except (KeyError, IndexError, ValueError, FileNotFoundError) as err:
        logger.warning("report: no outlines of %s in %s at t=%d: %s", name, info.path, t, err)
        return None
    if plane.shape != shape:  # nearest neighbour onto the image's grid
        plane = plane[np.ix_(np.arange(shape[0]) * plane.shape[0] // shape[0],
                             np.arange(shape[1]) * plane.shape[1] // shape[1])]
    return plane


def thumbnail(info: ImageInfo, channel: int, labels: str | None) -> Any:
    """Draw a field's first and last timepoint, contrast-stretched, with label outlines.

    Parameters
    ----------
    info : ImageInfo
        The field (read at its smallest level of at least 256 pixels, middle z plane).
    channel : int
        Channel index.
    labels : str or None
        Label image whose outlines are drawn (none when None or unreadable).
    """
    from skimage.segmentation import find_boundaries

    level, z = _level(info), info.sizes["z"] // 2
    arr = info.open_array(level)
    ts = sorted({0, info.n_timepoints - 1})
    fig = _figure(2.8 * len(ts), 3.0)
    for ax, t in zip(np.atleast_1d(fig.subplots(1, len(ts))), ts, strict=True):
        plane = np.asarray(arr[info.plane_index(t, z, channel)], dtype=np.float32)
        gray = np.clip(normalize(plane, *percentile_bounds(plane)), 0.0, 1.0)
        rgb = np.repeat(gray[..., None], 3, axis=-1)
        outline = _label_plane(info, labels, t, z, plane.shape) if labels else None
        if outline is not None:
            rgb[find_boundaries(outline, mode="inner")] = _OUTLINE
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(f"{info.path or 'image'}  t = {t}", fontsize=8)
        ax.set_axis_off()
    return fig

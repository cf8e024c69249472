"""Figures of the plate report (:mod:`.report`): plate maps, well x time matrices, thumbnails.

Each function returns a matplotlib Figure on an Agg canvas (no pyplot, no global
backend change) sized for plates from 1 x 1 to 16 x 24 wells and 1 to ~25 timepoints.
Time is in hours where the caller knows the time step (``step_h``), else in timepoints;
ratios are the nucleus / cytoplasm ratio (:data:`RATIO`), counts are ``cells``.
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
from .columns import ratio_column

__all__ = ["RATIO", "plate_maps", "readout_plate", "spread", "thumbnail", "time_label",
           "time_text", "well_matrix", "well_over_time"]

logger = logging.getLogger(__name__)

#: Axis label of the readout.
RATIO = "nucleus/cytoplasm ratio"
_THUMB_PX = 256  # thumbnails come from the smallest pyramid level at least this large
_OUTLINE = (1.0, 0.85, 0.1)  # cells: yellow
_NUCLEUS_OUTLINE = (0.2, 0.8, 1.0)  # nuclei: light blue


def _figure(width: float, height: float, fixed: bool = False) -> Any:
    """Return a figure; ``fixed`` keeps set margins (drawn faster than a constrained layout)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=None if fixed else "constrained")
    FigureCanvasAgg(fig)
    return fig


def _clip(x: float, lo: float, hi: float) -> float:
    return float(min(max(x, lo), hi))


def _hours(h: float) -> str:
    return f"{round(float(h), 2):g}"


def time_label(step_h: float | None) -> str:
    """Return the label of a time axis: hours where the time step is known.

    Examples
    --------
    >>> time_label(0.5), time_label(None)
    ('time (h)', 'timepoint')
    """
    return "time (h)" if step_h else "timepoint"


def time_text(t: int, step_h: float | None) -> str:
    """Name a timepoint, with its time in hours where the time step is known.

    Examples
    --------
    >>> time_text(3, 0.5), time_text(3, None)
    ('t = 3 (1.5 h)', 't = 3')
    """
    return f"t = {t} ({_hours(t * step_h)} h)" if step_h else f"t = {t}"


def _times(ts: Any, step_h: float | None) -> np.ndarray:
    """Return the x positions of timepoints: hours, or the timepoints themselves."""
    return np.asarray(ts, dtype=float) * (step_h or 1.0)


def _time_axis(ax: Any, ts: list[int], step_h: float | None) -> None:
    """Label a time axis; tick every timepoint when there are few, else round times."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel(time_label(step_h))
    if 0 < len(ts) <= 10:
        x = _times(ts, step_h)
        ax.set_xticks(x, [_hours(v) for v in x], fontsize=8)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", integer=not step_h,
                                               steps=[1, 2, 2.5, 3, 5, 6, 10]))


def _plate_axes(ax: Any, fontsize: int = 7) -> None:
    """Label the axes of a plate layout drawn with column ticks on top."""
    ax.set_xlabel("plate column", fontsize=fontsize)
    ax.xaxis.set_label_position("top")
    ax.set_ylabel("plate row", fontsize=fontsize)


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


def plate_maps(counts: pd.DataFrame, rows: list[str], cols: list[str],
               step_h: float | None = None) -> Any:
    """Draw cells per well in plate layout at a few timepoints, on one colour scale.

    Parameters
    ----------
    counts : pandas.DataFrame
        Index: every (row, column) of the ``rows`` x ``cols`` layout in row-major order
        (NaN where the plate has no well); columns: timepoints.
    rows, cols : list of str
    step_h : float, optional
        Hours between timepoints (the panels' titles then give the time).
    """
    from matplotlib.ticker import MaxNLocator

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
        ax.set_title(time_text(t, step_h), fontsize=8)
        ax.set_xticks(range(nc), cols, fontsize=6 if nc > 12 else 7)
        ax.set_yticks(range(nr), rows, fontsize=6 if nr > 8 else 7)
        ax.tick_params(length=0, labeltop=True, labelbottom=False)
        _plate_axes(ax, 6)
        for (i, j), v in np.ndenumerate(grid):
            if nr * nc <= 96 and math.isfinite(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if v < 0.6 * vmax else "black")
    for ax in axes[len(shown):]:
        ax.set_axis_off()
    bar = fig.colorbar(image, ax=axes[: len(shown)].tolist(), label="cells",
                       shrink=0.9 if len(shown) <= ncols else 0.6)
    bar.ax.yaxis.set_major_locator(MaxNLocator(nbins="auto", integer=True))
    fig.suptitle("cells per well", fontsize=9)
    return fig


def well_matrix(values: pd.DataFrame, label: str, fmt: str, vmin: float | None = None,
                step_h: float | None = None, integer: bool = False) -> Any:
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
    step_h : float, optional
        Hours between timepoints: the columns are then labelled in hours.
    integer : bool
        Whole numbers only on the colour bar (counts).
    """
    from matplotlib.ticker import MaxNLocator

    n_w, n_t = values.shape
    height = _clip(0.17 * n_w + 1.3, 2.4, 20.0)
    fig = _figure(_clip(n_t * 0.4 + 2.5, 4.0, 12.0), height)
    ax = fig.subplots()
    data = values.to_numpy(dtype=float)
    image = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", aspect="auto", vmin=vmin,
                      interpolation="nearest")
    ax.set_facecolor("0.85")
    step_w, step_t = math.ceil(n_w / 64), math.ceil(n_t / 25)
    ax.set_yticks(range(0, n_w, step_w), [f"{r}{c}" for r, c in values.index][::step_w],
                  fontsize=6 if n_w > 24 else 8)
    times = [_hours(t * step_h) if step_h else str(t) for t in values.columns]
    ax.set_xticks(range(0, n_t, step_t), times[::step_t], fontsize=7,
                  rotation=90 if max(map(len, times), default=0) > 4 else 0)
    ax.set_xlabel(time_label(step_h))
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
    bar = fig.colorbar(image, ax=ax, shrink=0.6 if n_w > 40 else 1.0)
    bar.set_label(textwrap.fill(label, int((height - 0.8) * 72 / 5)), fontsize=8)
    if integer:
        bar.ax.yaxis.set_major_locator(MaxNLocator(nbins="auto", integer=True))
    return fig


def readout_plate(stats: pd.DataFrame, rows: list[str], cols: list[str], channel: str,
                  step_h: float | None = None) -> Any:
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
    step_h : float, optional
        Hours between timepoints (the title then gives the time span in hours).
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
    _plate_axes(ax)
    ax.set(xlim=(0, nc), ylim=(nr, 0))
    if step_h:
        span = _hours(ts[0] * step_h) + (f"-{_hours(ts[-1] * step_h)}" if len(ts) > 1 else "")
        when = f"time {span} h" + (" left to right" if len(ts) > 1 else "")
    else:
        when = f"t {ts[0]}-{ts[-1]} left to right" if len(ts) > 1 else f"t {ts[0]}"
    text = (f"{channel}: {RATIO} per well (median, interquartile band). "
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


def thumbnail(info: ImageInfo, channel: int, labels: str | None, nuclei: str | None = None,
              step_h: float | None = None) -> Any:
    """Draw a field's first and last timepoint, contrast-stretched, with label outlines.

    Parameters
    ----------
    info : ImageInfo
        The field (read at its smallest level of at least 256 pixels, middle z plane).
    channel : int
        Channel index.
    labels : str or None
        Label image whose outlines are drawn in yellow (none when None or unreadable).
    nuclei : str, optional
        Label image of the nuclei, outlined in light blue under the cells' outlines.
    step_h : float, optional
        Hours between timepoints (the titles then give the time).
    """
    from skimage.segmentation import find_boundaries

    level, z = _level(info), info.sizes["z"] // 2
    arr = info.open_array(level)
    ts = sorted({0, info.n_timepoints - 1})
    fig = _figure(2.8 * len(ts), 3.0, fixed=True)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.9, wspace=0.05)
    for ax, t in zip(np.atleast_1d(fig.subplots(1, len(ts))), ts, strict=True):
        plane = np.asarray(arr[info.plane_index(t, z, channel)], dtype=np.float32)
        gray = np.clip(normalize(plane, *percentile_bounds(plane)), 0.0, 1.0)
        rgb = np.repeat(gray[..., None], 3, axis=-1)
        for name, colour in ((nuclei, _NUCLEUS_OUTLINE), (labels, _OUTLINE)):
            outline = _label_plane(info, name, t, z, plane.shape) if name else None
            if outline is not None:
                rgb[find_boundaries(outline, mode="inner")] = colour
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(f"{info.path or 'image'}  {time_text(t, step_h)}", fontsize=8)
        ax.set_axis_off()
    return fig


# ----------------------------------------------------------------------------- one well


def _tracks(df: pd.DataFrame) -> dict[tuple[Any, int], pd.DataFrame]:
    """Return the rows of each track, keyed by (field, track_id) and sorted by time."""
    rows = df[df["track_id"] >= 0].assign(field=df.get("field", 0))
    return {(f, int(k)): g.sort_values("t") for (f, k), g in rows.groupby(["field", "track_id"])}


def _track_points(key: tuple[Any, int], rows: pd.DataFrame,
                  tracks: dict[tuple[Any, int], pd.DataFrame], column: str,
                  step_h: float | None) -> np.ndarray:
    """Return a track's (time, ratio) points, from its mother's last point if it divided.

    Rows without a finite ratio are left out (the line joins the points around them).
    """
    start = rows["t"].iloc[0]
    parent = int(rows["parent_track_id"].iloc[0]) if "parent_track_id" in rows else -1
    rows = rows[np.isfinite(rows[column].to_numpy(dtype=float))]
    points = np.column_stack([_times(rows["t"], step_h), rows[column].to_numpy(dtype=float)])
    mother = tracks.get((key[0], parent))
    if mother is not None:
        before = mother[(mother["t"] < start)
                        & np.isfinite(mother[column].to_numpy(dtype=float))]
        if len(before):
            last = before.iloc[-1]
            start = [_times([last["t"]], step_h)[0], float(last[column])]
            points = np.vstack([start, points])
    return points


def _track_panel(ax: Any, df: pd.DataFrame, column: str, step_h: float | None) -> str:
    """Draw one line per track with a ratio (daughters start at their mother); say so."""
    from matplotlib.collections import LineCollection

    tracks = _tracks(df)
    shown = {k: g for k, g in tracks.items() if np.isfinite(g[column].to_numpy(float)).any()}
    lines = [_track_points(k, g, tracks, column, step_h) for k, g in shown.items()]
    colours = [f"C{i % 10}" for i in range(len(lines))]
    ax.add_collection(LineCollection(lines, colors=colours, linewidths=0.9, alpha=0.8,
                                     label="tracks"), autolim=True)
    own = [int(np.isfinite(g[column].to_numpy(float)).sum()) for g in shown.values()]
    dots = [(c, pts[-n:]) for c, pts, n in zip(colours, lines, own, strict=True)]
    if dots:
        ax.scatter(np.concatenate([d[:, 0] for _, d in dots]),
                   np.concatenate([d[:, 1] for _, d in dots]), s=5, zorder=3,
                   c=[c for c, d in dots for _ in range(len(d))])
    loose = df[df["track_id"] < 0]
    if len(loose):
        ax.scatter(_times(loose["t"], step_h), loose[column], s=5, color="0.5",
                   label="not tracked")
    ax.autoscale_view()
    hidden = len(tracks) - len(shown)
    return f"one line per track ({len(lines)} tracks" + (
        f"; {hidden} more without a ratio)" if hidden else ")")


def _box_panel(ax: Any, df: pd.DataFrame, column: str, ts: list[int],
               step_h: float | None) -> None:
    """Draw the ratio's distribution at each timepoint (box plots) and its median."""
    x = _times(ts, step_h)
    values = [df.loc[df["t"] == t, column].to_numpy(dtype=float) for t in ts]
    values = [v[np.isfinite(v)] for v in values]
    keep = [i for i, v in enumerate(values) if v.size]
    if not keep:
        ax.text(0.5, 0.5, "no cell with a ratio", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
        return
    width = 0.6 * (float(np.min(np.diff(x))) if len(x) > 1 else 1.0)
    ax.boxplot([values[i] for i in keep], positions=x[keep], widths=width, manage_ticks=False,
               flierprops={"markersize": 2})
    ax.plot(x[keep], [np.median(values[i]) for i in keep], color="C1", lw=1.2, label="median")
    ax.set_xlim(x[0] - width, x[-1] + width)


def _count_panel(ax: Any, df: pd.DataFrame, ts: list[int], step_h: float | None) -> None:
    """Draw the well's cells per timepoint (all fields, and each field when several)."""
    from matplotlib.ticker import MaxNLocator

    x = _times(ts, step_h)
    per_field = (df.assign(field=df.get("field", 0)).groupby(["t", "field"]).size()
                 .unstack("field") if len(df) else pd.DataFrame(index=ts)).reindex(ts).fillna(0)
    if per_field.shape[1] > 1:
        for i, f in enumerate(per_field.columns):
            ax.plot(x, per_field[f], lw=0.8, color=f"C{i % 10}", alpha=0.7, label=f"field {f}")
    total = per_field.sum(axis=1)
    ax.plot(x, total, color="k", marker="o", ms=3, lw=1.4, label="well")
    if per_field.shape[1] > 1:
        ax.legend(fontsize=6, ncols=min(4, per_field.shape[1] + 1))
    ax.set_ylim(0, max(1.0, float(total.max()) if len(total) else 0.0) * 1.12)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("cells")
    ax.set_title("cells in the well per timepoint", fontsize=8)


def well_over_time(df: pd.DataFrame, ts: list[int], channel: str | None,
                   step_h: float | None = None) -> Any:
    """Draw one well's readout over time above its cell count.

    The readout has one line per track where the rows are tracked (``track_id`` >= 0;
    a daughter's line starts at its mother's last point, rows not tracked are grey
    dots), else a box plot per timepoint (quartiles, whiskers at 1.5 IQR) and the median.

    Parameters
    ----------
    df : pandas.DataFrame
        The well's rows of a plate-level dataset (``t``, ``field``, ``track_id``,
        ``parent_track_id`` and the channel's ratio column).
    ts : list of int
        Every timepoint of the plate (a timepoint without cells counts 0).
    channel : str or None
        The readout channel; None draws the count alone.
    step_h : float, optional
        Hours between timepoints (time axes in hours, else in timepoints).
    """
    panels = 2 if channel else 1
    height = 2.7 * panels + 0.3
    fig = _figure(7.0, height, fixed=True)  # margins in inches: room for the labels
    fig.subplots_adjust(left=0.9 / 7.0, right=0.97, bottom=0.55 / height,
                        top=1 - 0.3 / height, hspace=0.9 / 2.7)
    axes = np.atleast_1d(fig.subplots(panels, 1, sharex=True, squeeze=False)).ravel()
    if channel:
        column, ax = ratio_column(channel), axes[0]
        data = df.assign(**{column: df[column].astype(float).replace([np.inf, -np.inf],
                                                                      np.nan)})
        if "track_id" in data and (data["track_id"] >= 0).any():
            ax.set_title(f"{channel}: {_track_panel(ax, data, column, step_h)}", fontsize=8)
        else:
            _box_panel(ax, data, column, ts, step_h)
            ax.set_title(f"{channel} per timepoint (not tracked): box = quartiles, "
                         "line = median", fontsize=8)
        ax.set_ylabel(RATIO)
    _count_panel(axes[-1], df, ts, step_h)
    for ax in axes:
        _time_axis(ax, ts, step_h)
        ax.tick_params(labelbottom=True)
        ax.grid(alpha=0.3, lw=0.5)
    return fig

"""Tracks of cells over time: laptrack links cells between timepoints, with divisions.

The tracker is :class:`laptrack.LapTrack` (Jaqaman et al. 2008: frame-to-frame linking by
linear assignment, then gap closing and splitting between track segments); merging is off.
This module only turns a per-cell table into laptrack's input and its graph back into
track columns; :mod:`.track_scores` gives a tracked table's links and scores them against
ground truth, :mod:`.geff_export` writes its graph as
`geff <https://liveimagetrackingtools.org/geff>`_.

Definitions
-----------
track
    One cell's life between divisions: the rows ``(t, label)`` of one cell from its first
    timepoint (or its birth at a division) to its last one (or its own division). A track
    may jump over up to ``max_gap`` timepoints where the cell was missed. Its rows share a
    ``track_id`` (``>= 1``).
division
    A cell at ``t`` linked to two cells at ``t + 1``: its track ends there and each
    daughter starts a new track whose ``parent_track_id`` is the mother's ``track_id``
    (``-1`` for tracks without a mother).
link
    ``((t, label), (t2, label2))``: two consecutive rows of one track (``t2 = t + 1``
    unless the track jumps over a gap). A division link joins a mother's last row to a
    daughter's first row.

Track IDs are given in order of first appearance (by ``t``, then ``label``), so the same
table (in any row order) always gives the same IDs; appending timepoints (``previous=``)
keeps every earlier ID.

Costs
-----
Costs are squared distances in pixels, scaled by the cells' size where the table has
``area_px``: the limits (``max_distance``, ``division_distance``) are meant for a cell of
the typical radius (``radius``), and a larger cell's grow in proportion to its radius
(``sqrt(area_px / pi)``), so a large cell whose centroid jumps as it rounds up or changes
shape keeps its track while small cells keep the tight limit. A mother may place a
daughter within ``division_distance`` (1.5 times ``max_distance`` by default: daughters lie
about half a mother's radius from her, plus their own motion), grown the same way for a
large mother. The costs of starting or ending a track are fixed (not estimated from the
data as laptrack does by default), so the links between two timepoints do not depend on
which other timepoints are tracked with them; gap closing and divisions are decided jointly
over the timepoints tracked together, so tracking in pieces usually, not always, decides
them as tracking at once does.

Where the masks' overlaps are given (``overlaps``: the IoU of two cells' registered masks
at consecutive timepoints, which :mod:`.plate_track` takes from the planes it registers),
a link's cost is multiplied by ``1 - OVERLAP_WEIGHT * IoU``: of two cells about as far,
the one that still covers the cell is preferred (cells moving about their radius between
timepoints in a crowd). Pairs without a measured overlap keep the distance alone.

A link between two cells whose areas differ more than :data:`SIZE_CHANGE` (4) times costs
more in proportion to the ratio beyond it: a fragment of a cell that vanishes (almost
hidden under a neighbour, or leaving the field) does not go on as the whole cell beside it,
such as a daughter born there.

Divisions need evidence, and each daughter goes to the mother with the best of it
(:mod:`.divisions`): laptrack's divisions are decided again from its links. A mother's two
daughters must lie on either side of her (their midpoint within :data:`DIVISION_MIDPOINT`
of her radius from her centroid, and the nearer daughter at least
:data:`DIVISION_SYMMETRY` times as far from her as the other), or, where a cut by the
field's edge moves the centroids, overlap her registered mask; a mother that still covers
one of the two as much as a cell going on covers itself went on as that cell. A cell that
enters at the field's edge, or comes into view, beside another is then not taken for a
daughter: the cell beside it keeps its track and the newcomer starts its own.

Examples
--------
A cell that moves right and divides at ``t = 2``:

>>> import pandas as pd
>>> table = pd.DataFrame({
...     "label": [1, 1, 1, 2, 3, 2, 3],
...     "t": [0, 1, 2, 3, 3, 4, 4],
...     "centroid_y": [10.0, 10.0, 10.0, 6.0, 14.0, 6.0, 14.0],
...     "centroid_x": [10.0, 12.0, 14.0, 14.0, 14.0, 15.0, 15.0],
... })
>>> tracked = track_cells(table, max_distance=8.0)
>>> tracked["track_id"].tolist(), tracked["parent_track_id"].tolist()
([1, 1, 1, 2, 3, 2, 3], [-1, -1, -1, 1, 1, 1, 1])
>>> from structfree_dask.cells.track_scores import track_links
>>> sorted(track_links(tracked).divisions)
[((2, 1), (3, 2)), ((2, 1), (3, 3))]
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..config import LABEL_DTYPE
from .columns import KEYS, TRACK_COLUMNS
from .divisions import DIVISION_MIDPOINT, DIVISION_SYMMETRY, assign_divisions

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

__all__ = [
    "DIVISION_FACTOR",
    "DIVISION_MIDPOINT",
    "DIVISION_SYMMETRY",
    "OVERLAP_WEIGHT",
    "SIZE_CHANGE",
    "TRACKER_VERSION",
    "POSITION_COLUMNS",
    "check_rows",
    "median_step",
    "relabel_by_track",
    "track_cells",
]

logger = logging.getLogger(__name__)

_LABEL, _T = KEYS
_TRACK, _PARENT = TRACK_COLUMNS
#: Columns of a cell's position (pixels) that tracking reads, in (y, x) order.
POSITION_COLUMNS = ("centroid_y", "centroid_x")
_NONE = -1
_RADIUS = "_radius"
#: Column of a cell's area (pixels) that scales the costs, where the table has it.
AREA_COLUMN = "area_px"
#: Default largest mother-daughter distance, as a multiple of ``max_distance`` (grown in
#: proportion for a mother larger than the typical radius).
DIVISION_FACTOR = 1.5
#: Largest ratio of two cells' areas at which a link costs its distance alone: beyond it
#: the cost is multiplied by the ratio over this one (areas 8 times apart: twice the
#: cost), so a fragment of a cell that vanishes (hidden under a neighbour, or leaving the
#: field) does not go on as the whole cell beside it.
SIZE_CHANGE = 4.0

#: Version of the tracker (its costs and how divisions are decided), recorded with a
#: tracked table: a table tracked by another version is not continued (2: divisions given
#: to their mothers by :mod:`.divisions`, the size-change cost; 3: a mother that still
#: covers a "daughter" goes on as her, a daughter on her mother's mask is within reach).
TRACKER_VERSION = 3

#: How much a link's overlap lowers its cost: the cost is multiplied by
#: ``1 - OVERLAP_WEIGHT * IoU`` of the two cells' registered masks.
OVERLAP_WEIGHT = 0.5

#: The IoU of two cells' registered masks, keyed ``(t, label, t2, label2)`` with ``t < t2``.
Overlaps = Mapping[tuple[int, int, int, int], float]


# --------------------------------------------------------------------------------------------
# tracking


def track_cells(
    table: pd.DataFrame,
    *,
    max_distance: float,
    previous: pd.DataFrame | None = None,
    max_gap: int = 1,
    division_distance: float | None = None,
    radius: float | None = None,
    overlaps: Overlaps | None = None,
) -> pd.DataFrame:
    """Track cells over timepoints with laptrack and fill ``track_id`` and ``parent_track_id``.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per cell and timepoint, with at least ``t``, ``label``, ``centroid_y`` and
        ``centroid_x`` (pixels); ``(t, label)`` must be unique. With ``area_px`` the
        costs are scaled by the cells' size (see Costs above). Other columns are kept.
        Rows whose centroid is not finite are not tracked (``-1`` in both track columns).
    max_distance : float
        Largest distance in pixels a cell of the typical radius (``radius``) moves between
        two timepoints (and across a gap); a larger cell's limit grows in proportion to its
        radius. The caller derives it from the cell size and the motion (about a cell radius
        is a good start: :func:`.plate_track.motion_limit`).
    previous : pandas.DataFrame, optional
        Rows of earlier timepoints, already tracked (with ``track_id`` and
        ``parent_track_id``): the rows of ``table`` (all later than these) are tracked
        continuing from them. Their track IDs are kept: a track that goes on keeps its ID,
        new tracks get IDs above the largest one in ``previous``. Only the last
        ``max_gap + 1`` timepoints of ``previous`` are used.
    max_gap : int
        Number of consecutive timepoints a cell may be missed and still keep its track
        (gap closing); 0 disables gap closing.
    division_distance : float, optional
        Largest distance in pixels between a mother at ``t`` and a daughter at ``t + 1``
        (for a mother larger than ``radius``, that times her radius over ``radius``);
        0 disables divisions. The default,
        ``DIVISION_FACTOR * max_distance``, allows for daughters' centroids lying about
        half a radius from their mother's plus their own motion; the divisions found must
        still show the evidence described above.
    radius : float, optional
        The typical cell radius in pixels that ``max_distance`` and ``division_distance``
        are meant for: a cell larger than that may move (or place its daughters) further
        in proportion to its radius. Default: ``max_distance`` (the limits grow only for
        cells larger than the limit itself). Only used where the table has ``area_px``.
    overlaps : mapping, optional
        IoU of two cells' masks with the stage drift removed, keyed ``(t, label, t2,
        label2)`` (``t < t2``); a link's cost is multiplied by ``1 - OVERLAP_WEIGHT * IoU``,
        and a mother's overlap with a daughter weighs in the divisions (:mod:`.divisions`).
        Pairs not in it (and every pair when it is not given) keep the distance alone.

    Returns
    -------
    pandas.DataFrame
        A copy of ``table`` (same rows, same order, same index) with ``track_id`` and
        ``parent_track_id`` (``int64``) set.

    Raises
    ------
    ValueError
        Missing columns, duplicate ``(t, label)`` rows, a non-positive ``max_distance``,
        a negative ``max_gap`` or ``division_distance``, a non-positive ``radius``, or
        ``table`` rows not later than every row of ``previous``.

    Notes
    -----
    Per pair of consecutive timepoints laptrack builds a dense distance matrix, so memory
    grows as the product of the two cell counts (8 bytes per pair), and the size-scaled
    cost is a Python function called once per pair (1.4 microseconds each measured: 1.4 s
    for two timepoints of 1 000 cells). Its gap closing visits
    every track segment with pandas (about a millisecond each), so tracking many
    timepoints at once is cheaper than appending them one by one: each append tracks the
    last ``max_gap + 1`` earlier timepoints again.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"t": [0, 0, 1, 1], "label": [1, 2, 7, 5],
    ...                       "centroid_y": [5.0, 40.0, 41.0, 6.0],
    ...                       "centroid_x": [5.0, 40.0, 40.0, 5.0]})
    >>> track_cells(table, max_distance=10.0)["track_id"].tolist()
    [1, 2, 2, 1]

    Appending a timepoint keeps the IDs:

    >>> done = track_cells(table, max_distance=10.0)
    >>> more = pd.DataFrame({"t": [2], "label": [1], "centroid_y": [42.0],
    ...                      "centroid_x": [40.0]})
    >>> track_cells(more, max_distance=10.0, previous=done)["track_id"].tolist()
    [2]
    """
    params = _Params.of(max_distance, max_gap, division_distance, radius, overlaps)
    check_rows(table, "table")
    out = table.copy()
    out[_TRACK] = np.full(len(out), _NONE, dtype=np.int64)
    out[_PARENT] = np.full(len(out), _NONE, dtype=np.int64)
    context, next_id = _context(previous, table, params.max_gap)
    new = _trackable(table)
    if new.empty:
        return out
    graph_rows = _combine(context, new)
    edges = _laptrack_edges(graph_rows, params)
    track, parent = _assign(graph_rows, edges, next_id)
    is_new = graph_rows["_row"].to_numpy() >= 0
    rows = graph_rows["_row"].to_numpy()[is_new]
    out.iloc[rows, out.columns.get_loc(_TRACK)] = track[is_new]
    out.iloc[rows, out.columns.get_loc(_PARENT)] = parent[is_new]
    logger.debug("tracked %d cells at %d timepoints: %d tracks", len(new),
                 new[_T].nunique(), len(np.unique(track[is_new])))
    return out


def median_step(table: pd.DataFrame) -> float:
    """Return the median distance from a cell to the nearest cell of the next timepoint.

    A measure of how far cells move between timepoints (in the table's coordinates: pass
    registered centroids), robust to cells entering and leaving; 0 with fewer than two
    timepoints. It saturates at about the distance between neighbours.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"t": [0, 0, 1, 1], "label": [1, 2, 1, 2],
    ...                       "centroid_y": [0.0, 50.0, 3.0, 54.0],
    ...                       "centroid_x": [0.0, 0.0, 4.0, 3.0]})
    >>> median_step(table)
    5.0
    """
    from scipy.spatial import cKDTree

    rows = _trackable(table)
    pos = rows[list(POSITION_COLUMNS)].to_numpy()
    t = rows[_T].to_numpy()
    steps = []
    times = np.unique(t)
    for before, after in zip(times[:-1], times[1:], strict=True):
        steps.append(cKDTree(pos[t == after]).query(pos[t == before])[0])
    return float(np.median(np.concatenate(steps))) if steps else 0.0


@dataclass(frozen=True)
class _Params:
    """Checked tracking parameters."""

    max_distance: float
    max_gap: int
    division_distance: float
    radius: float
    overlaps: Overlaps | None = None

    @classmethod
    def of(cls, max_distance: float, max_gap: int, division_distance: float | None,
           radius: float | None = None, overlaps: Overlaps | None = None) -> _Params:
        if not (_is_number(max_distance) and math.isfinite(max_distance) and max_distance > 0):
            raise ValueError(f"max_distance must be a positive number of pixels, "
                             f"got {max_distance!r}")
        if isinstance(max_gap, bool) or not isinstance(max_gap, int | np.integer) \
                or max_gap < 0:
            raise ValueError(f"max_gap must be an integer >= 0, got {max_gap!r}")
        if division_distance is None:
            division_distance = DIVISION_FACTOR * max_distance
        if not (_is_number(division_distance) and math.isfinite(division_distance)
                and division_distance >= 0):
            raise ValueError(f"division_distance must be a number of pixels >= 0, "
                             f"got {division_distance!r}")
        if radius is None:
            radius = max_distance
        if not (_is_number(radius) and math.isfinite(radius) and radius > 0):
            raise ValueError(f"radius must be a positive number of pixels, got {radius!r}")
        return cls(float(max_distance), int(max_gap), float(division_distance), float(radius),
                   overlaps or None)

    def tracker(self) -> object:
        """Return the laptrack tracker: fixed costs, squared distances scaled by cell size.

        Coordinates are ``(y, x, radius, t, label)``; a radius of 0 (no area known) leaves
        the distance unscaled.
        """
        from laptrack import LapTrack

        cost = self.max_distance**2
        split = self.division_distance**2
        link = partial(_link_cost, reference=self.radius, overlaps=self.overlaps or {})
        return LapTrack(
            metric=link, cutoff=cost, track_start_cost=cost, track_end_cost=cost,
            gap_closing_metric=link,
            gap_closing_cutoff=cost if self.max_gap else False,
            gap_closing_max_frame_count=self.max_gap + 1,
            splitting_metric=partial(_split_cost, reference=self.radius),
            splitting_cutoff=split if self.division_distance else False,
            merging_cutoff=False,
            segment_start_cost=cost, segment_end_cost=cost,
            no_splitting_cost=max(cost, split), no_merging_cost=cost,
        )


def _link_cost(a: np.ndarray, b: np.ndarray, reference: float, overlaps: Overlaps) -> float:
    """Return the squared distance of two cells ``(y, x, radius, t, label)``, scaled.

    Divided by the square of the larger radius over ``reference`` where that is more than
    1 (a cell twice the reference radius may move twice the limit), multiplied by the
    ratio of the two cells' areas over :data:`SIZE_CHANGE` where that is more than 1, and
    by ``1 - OVERLAP_WEIGHT * IoU`` where ``overlaps`` has the pair.
    """
    ya, xa, ra, ta, la = a.tolist()  # one conversion: called once per pair of cells
    yb, xb, rb, tb, lb = b.tolist()
    dy, dx = ya - yb, xa - xb
    small, large = (ra, rb) if ra < rb else (rb, ra)
    scale = reference / max(reference, large)
    cost = (dy * dy + dx * dx) * scale * scale
    if small > 0 and (large / small) ** 2 > SIZE_CHANGE:
        cost *= (large / small) ** 2 / SIZE_CHANGE
    if overlaps:
        key = ((int(ta), int(la), int(tb), int(lb)) if ta < tb
               else (int(tb), int(lb), int(ta), int(la)))
        iou = overlaps.get(key)
        if iou:
            cost *= 1.0 - OVERLAP_WEIGHT * iou
    return cost


def _split_cost(daughter: np.ndarray, mother: np.ndarray, reference: float) -> float:
    """Return the squared mother-daughter distance, scaled by the mother's size.

    Divided by the square of her radius over ``reference`` where that is more than 1
    (laptrack gives the segment's start first, then the mother).
    """
    dy, dx = float(daughter[0] - mother[0]), float(daughter[1] - mother[1])
    scale = reference / max(reference, float(mother[2]))
    return (dy * dy + dx * dx) * scale * scale


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_rows(table: pd.DataFrame, name: str, extra: tuple[str, ...] = ()) -> None:
    """Check that a table has the columns tracking reads and one row per ``(t, label)``.

    Raises
    ------
    ValueError
        Naming the missing columns, or the first duplicated ``(t, label)``.
    """
    need = (_T, _LABEL, *POSITION_COLUMNS, *extra)
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}")
    if table.duplicated([_T, _LABEL]).any():
        dup = table.loc[table.duplicated([_T, _LABEL]), [_T, _LABEL]].iloc[0].tolist()
        raise ValueError(f"{name} has more than one row for (t, label) = {tuple(dup)}")


def _trackable(table: pd.DataFrame) -> pd.DataFrame:
    """Return the rows to track: t, label, position, radius and ``_row`` (row in ``table``)."""
    pos = table[list(POSITION_COLUMNS)].to_numpy(dtype=np.float64)
    ok = np.isfinite(pos).all(axis=1)
    if not ok.all():
        logger.debug("%d rows without a finite centroid are not tracked", int((~ok).sum()))
    if AREA_COLUMN in table.columns:
        area = pd.to_numeric(table[AREA_COLUMN], errors="coerce").to_numpy(dtype=np.float64)
        radius = np.sqrt(np.where(np.isfinite(area) & (area > 0), area, 0.0) / np.pi)
    else:
        radius = np.zeros(len(table))
    return pd.DataFrame({
        _T: table[_T].to_numpy(dtype=np.int64)[ok],
        _LABEL: table[_LABEL].to_numpy(dtype=np.int64)[ok],
        POSITION_COLUMNS[0]: pos[ok, 0],
        POSITION_COLUMNS[1]: pos[ok, 1],
        _RADIUS: radius[ok],
        "_row": np.flatnonzero(ok),
        _TRACK: _NONE,
        _PARENT: _NONE,
        "_pred": _NONE,
    })


def _context(previous: pd.DataFrame | None, table: pd.DataFrame,
             max_gap: int) -> tuple[pd.DataFrame, int]:
    """Return the rows of ``previous`` new rows may link to, and the first free track ID.

    The rows are those of the last ``max_gap + 1`` timepoints (a track ending there can
    still reach the first new timepoint), with ``_row = -1`` and ``_pred`` the position
    (in the returned frame) of the row before it in its track, or of its mother's last
    row, where that row is also there.
    """
    if previous is None or previous.empty:
        return _trackable(table.iloc[:0]), 1
    check_rows(previous, "previous", TRACK_COLUMNS)
    last_t = int(previous[_T].max())
    if len(table) and int(table[_T].min()) <= last_t:
        raise ValueError(f"table starts at t = {int(table[_T].min())}, not after the last "
                         f"tracked timepoint of previous (t = {last_t})")
    prev = previous.loc[previous[_TRACK].to_numpy() >= 1]
    if prev.empty:
        return _trackable(table.iloc[:0]), 1
    if prev.duplicated([_TRACK, _T]).any():
        raise ValueError("previous has a track with more than one row at a timepoint")
    next_id = int(prev[_TRACK].max()) + 1
    ctx = _trackable(prev)
    ctx[_TRACK] = prev[_TRACK].to_numpy(dtype=np.int64)[ctx["_row"].to_numpy()]
    ctx[_PARENT] = prev[_PARENT].to_numpy(dtype=np.int64)[ctx["_row"].to_numpy()]
    ctx = ctx.sort_values([_TRACK, _T], ignore_index=True)
    same = np.r_[False, ctx[_TRACK].to_numpy()[1:] == ctx[_TRACK].to_numpy()[:-1]]
    pred = np.where(same, np.arange(len(ctx)) - 1, _NONE)
    first = np.flatnonzero(~same)
    last = np.r_[first[1:] - 1, len(ctx) - 1] if len(ctx) else first
    last_of = dict(zip(ctx[_TRACK].to_numpy()[last], last, strict=True))
    for i in first:
        mother = last_of.get(int(ctx.at[i, _PARENT]))
        if mother is not None and ctx.at[mother, _T] < ctx.at[i, _T]:
            pred[i] = mother
    ctx["_pred"] = pred
    ctx["_row"] = _NONE
    keep = ctx[_T].to_numpy() >= last_t - max_gap
    index = np.cumsum(keep) - 1
    ctx["_pred"] = np.where((pred >= 0) & keep[np.maximum(pred, 0)],
                            index[np.maximum(pred, 0)], _NONE)
    return ctx.loc[keep].reset_index(drop=True), next_id


def _combine(context: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Context and new rows sorted by (t, label), with ``_pred`` pointing at new positions."""
    rows = pd.concat([context, new], ignore_index=True)
    order = np.lexsort((rows[_LABEL].to_numpy(), rows[_T].to_numpy()))
    rows = rows.iloc[order].reset_index(drop=True)
    where = np.empty(len(order), dtype=np.int64)
    where[order] = np.arange(len(order))
    pred = rows["_pred"].to_numpy()
    rows["_pred"] = np.where(pred >= 0, where[np.maximum(pred, 0)], _NONE)
    return rows


def _laptrack_edges(rows: pd.DataFrame, params: _Params) -> list[tuple[int, int]]:
    """Return laptrack's links between ``rows`` (sorted by t, label) as row positions.

    The links between rows of earlier timepoints (``_row < 0``) are given to laptrack as
    known; of its answer only the links to new rows are returned, divisions without
    evidence (:func:`_evident`) turned into a mother going on as her nearer "daughter".
    """
    t = rows[_T].to_numpy()
    t0 = int(t.min())
    frame = t - t0
    starts = np.searchsorted(frame, np.arange(int(frame.max()) + 2))
    index = np.arange(len(rows)) - starts[frame]
    pos = rows[[*POSITION_COLUMNS, _RADIUS, _T, _LABEL]].to_numpy(dtype=np.float64)
    coords = [pos[starts[f]:starts[f + 1]] for f in range(len(starts) - 1)]
    node = list(zip(frame.tolist(), index.tolist(), strict=True))
    known = [(node[p], node[i]) for i, p in enumerate(rows["_pred"].to_numpy()) if p >= 0]
    graph: nx.DiGraph = params.tracker().predict(  # type: ignore[attr-defined]
        coords, connected_edges=known or None, split_merge_validation=False)
    position = {n: i for i, n in enumerate(node)}
    is_new = rows["_row"].to_numpy() >= 0
    edges = sorted((position[a], position[b]) for a, b in graph.edges())
    edges = [(a, b) for a, b in edges if is_new[b]]
    return assign_divisions(edges, pos, is_new, reference=params.radius,
                            division_distance=params.division_distance,
                            overlaps=params.overlaps)


def _assign(rows: pd.DataFrame, edges: list[tuple[int, int]],
            next_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Track and parent IDs of ``rows`` (sorted by t, label) from the links to new rows."""
    track = rows[_TRACK].to_numpy(dtype=np.int64).copy()
    parent = rows[_PARENT].to_numpy(dtype=np.int64).copy()
    preds: dict[int, list[int]] = {}
    n_out = np.zeros(len(rows), dtype=np.int64)
    for a, b in edges:
        preds.setdefault(b, []).append(a)
        n_out[a] += 1
    for i in np.flatnonzero(rows["_row"].to_numpy() >= 0):
        p = preds.get(int(i), [])
        if len(p) == 1 and n_out[p[0]] == 1:  # the same cell
            track[i], parent[i] = track[p[0]], parent[p[0]]
            continue
        track[i], next_id = next_id, next_id + 1
        if len(p) == 1:  # a daughter
            parent[i] = track[p[0]]
        elif len(p) > 1:
            logger.warning("%d tracks merge at t=%d, label %d: a new track starts there",
                           len(p), rows.at[i, _T], rows.at[i, _LABEL])
    return track, parent


# --------------------------------------------------------------------------------------------
# label images


def relabel_by_track(labels: np.ndarray, rows_at_t: pd.DataFrame) -> np.ndarray:
    """Return a label plane whose cells carry their ``track_id`` instead of their label.

    Parameters
    ----------
    labels : numpy.ndarray
        Label image of one timepoint (any shape), 0 = background.
    rows_at_t : pandas.DataFrame
        The tracked rows of that timepoint (``label`` and ``track_id``).

    Returns
    -------
    numpy.ndarray
        ``uint32``, same shape; 0 for background and for cells without a row or without a
        track (``track_id`` -1).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> plane = np.array([[0, 4, 4], [9, 9, 0]])
    >>> rows = pd.DataFrame({"label": [4, 9], "track_id": [12, 3]})
    >>> relabel_by_track(plane, rows).tolist()
    [[0, 12, 12], [3, 3, 0]]
    """
    missing = [c for c in (_LABEL, _TRACK) if c not in rows_at_t.columns]
    if missing:
        raise ValueError(f"rows_at_t lacks the column(s) {missing}")
    if rows_at_t[_LABEL].duplicated().any():
        raise ValueError("rows_at_t has more than one row for a label")
    ids = rows_at_t[_TRACK].to_numpy(dtype=np.int64)
    if len(ids) and ids.max() > np.iinfo(LABEL_DTYPE).max:
        raise ValueError(f"track IDs above {np.iinfo(LABEL_DTYPE).max} do not fit a label image")
    order = np.argsort(rows_at_t[_LABEL].to_numpy(dtype=np.int64), kind="stable")
    keys = rows_at_t[_LABEL].to_numpy(dtype=np.int64)[order]
    values = np.where(ids[order] > 0, ids[order], 0).astype(LABEL_DTYPE)
    lab = np.asarray(labels)
    out = np.zeros(lab.shape, dtype=LABEL_DTYPE)
    if not len(keys):
        return out
    flat = lab.astype(np.int64, copy=False)
    at = np.minimum(np.searchsorted(keys, flat), len(keys) - 1)
    hit = (keys[at] == flat) & (flat != 0)
    out[hit] = values[at[hit]]
    return out

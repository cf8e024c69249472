"""Tracking a measured plate on a Dask cluster, one field per task.

A task reads its field's table, tracks the rows not tracked yet (continuing from the
tracked ones, whose IDs never change: a nightly run that appends timepoints keeps every
earlier track ID), rewrites the rows of those timepoints with ``track_id`` and
``parent_track_id``, writes the track graph as geff (``<field>/tracks/<table>``) and,
optionally, a tracked label image in which a cell keeps its ID over time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..io import (
    ImageInfo,
    completed_timepoints,
    create_labels,
    finalize_labels,
    join,
    label_record,
    list_tables,
    mark_done,
    open_labels,
    open_plate,
    read_feature_table,
    table_attrs,
    write_label_region,
)
from .columns import TRACK_COLUMNS
from .planes import level_shape, read_labels, regions
from .run import REGION, write_rows
from .tracking import relabel_by_track, track_cells, write_geff

__all__ = ["TrackResult", "cell_radius", "check_tracks", "track_plate", "tracked_name",
           "tracks_location"]

logger = logging.getLogger(__name__)


def tracked_name(labels: str) -> str:
    """Return the tracked label image's name for a cell label image.

    Examples
    --------
    >>> tracked_name("cyto")
    'cyto_tracked'
    """
    return f"{labels}_tracked"


def tracks_location(image: ImageInfo, table: str) -> str:
    """Return where a field's track graph (geff) is written: ``<field>/tracks/<table>``."""
    return join(image.url, "tracks", table)


@dataclass(frozen=True)
class _FieldJob:
    image: ImageInfo
    table: str
    labels: str
    plate_store: str
    max_distance: float | None
    tracked: str | None
    region: int


@dataclass
class TrackResult:
    """What a tracking run did.

    Attributes
    ----------
    tracks : dict
        Field path -> (tracks, divisions, timepoints tracked in this run).
    failed : list of (str, str)
        (field path, error).
    """

    tracks: dict[str, tuple[int, int, list[int]]] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no field failed."""
        return not self.failed


def cell_radius(table: Any) -> float:
    """Return the median cell radius in pixels (``sqrt(area / pi)``), at least 1.

    Examples
    --------
    >>> import pandas as pd
    >>> round(cell_radius(pd.DataFrame({"area_px": [314.0, 400.0, 100.0]})), 2)
    10.0
    """
    if len(table) == 0:
        return 1.0
    return max(1.0, math.sqrt(float(np.median(table["area_px"])) / math.pi))


def _write_tracked(job: _FieldJob, rows: Any, ts: list[int]) -> None:
    assert job.tracked is not None
    src = open_labels(job.image, job.labels)
    out = open_labels(job.image, job.tracked)
    axes = job.image.axes
    for t in ts:
        at_t = rows[rows["t"] == t]
        for level in range(len(out.shapes)):
            ny, nx = level_shape(out, level)
            chunk = out.chunks[level][axes.index("y")]
            size = max(chunk, job.region // chunk * chunk)
            for ys, xs in regions(ny, nx, size):
                plane = read_labels(src, t, ys, xs, level)
                region = {"t": slice(t, t + 1), "y": ys, "x": xs}
                write_label_region(out, region, relabel_by_track(plane, at_t), level=level)


def track_field(job: _FieldJob) -> tuple[int, int, list[int]]:
    """Track the untracked rows of one field; return (tracks, divisions, timepoints)."""
    df = read_feature_table(job.image, job.table)
    if len(df) == 0:
        return 0, 0, []
    tracked = df["track_id"] >= 0
    previous = df[tracked] if tracked.any() else None
    new = df[~tracked]
    if previous is not None and len(new) and new["t"].min() <= previous["t"].max():
        previous, new = None, df  # rows measured again among tracked ones: track afresh
    ts = sorted(int(t) for t in new["t"].unique())
    if ts:
        radius = job.max_distance or cell_radius(df)
        done = track_cells(new.drop(columns=list(TRACK_COLUMNS)), max_distance=radius,
                           previous=previous)
        columns = list(df.columns)
        for t in ts:
            rows = done[done["t"] == t][columns].reset_index(drop=True)
            write_rows(job.image, job.table, job.plate_store, t, rows)
        df = read_feature_table(job.image, job.table)
        if job.tracked is not None:
            _write_tracked(job, df, ts)
    px = job.image.pixel_size
    dt = px.get("t")
    write_geff(tracks_location(job.image, job.table), df[df["track_id"] >= 0],
               pixel_size_um=px.get("y"), time_interval_h=dt, overwrite=True)
    n_tracks = int(df.loc[df["track_id"] >= 0, "track_id"].nunique())
    n_div = int(df.loc[df["parent_track_id"] >= 0, "parent_track_id"].nunique())
    return n_tracks, n_div, ts


def check_tracks(plate: str, table: str, wells: Sequence[str] | None = None
                 ) -> tuple[str, list[tuple[ImageInfo, str]]]:
    """Check that every selected field has the table; return the store and (field, labels).

    Raises
    ------
    KeyError
        A field without the table, an unknown well.
    """
    opened = open_plate(plate)
    fields = [opened.field(p) for p in opened.select(list(wells) if wells else None)]
    out = []
    for image in fields:
        if table not in list_tables(image):
            raise KeyError(f"field {image.path or image.store!r} has no table {table!r}; it "
                           f"has {list_tables(image) or 'none'} (measure the plate first)")
        attrs = table_attrs(image, table)
        region = str(attrs.get("region", {}).get("path", ""))
        out.append((image, region.rsplit("/", 1)[-1]))
    return opened.store, out


def track_plate(plate: str, *, table: str, tracked_labels: bool = False,
                max_distance: float | None = None, client: Any = None,
                wells: Sequence[str] | None = None, overwrite: bool = False,
                progress: Callable[[int, int], None] | None = None) -> TrackResult:
    """Track the cells of a measured plate, field by field.

    Parameters
    ----------
    plate : str
        OME-Zarr plate (a path or a URL) measured by
        :func:`structfree_dask.cells.run.measure_plate`.
    table : str
        The measurement table (e.g. ``cyto_features``).
    tracked_labels : bool
        Also write ``labels/<labels>_tracked``: the table's label image relabelled by
        track ID, so that a cell keeps its ID over time.
    max_distance : float, optional
        Largest move of a cell between timepoints, in pixels (default: the field's median
        cell radius).
    client, wells, progress
        As for :func:`structfree_dask.cells.run.measure_plate` (``progress`` counts fields).
    overwrite : bool
        Replace a tracked label image made from another label image.

    Returns
    -------
    TrackResult

    Raises
    ------
    KeyError
        A field without the table, an unknown well.
    FileExistsError
        The tracked label image exists from other labels and ``overwrite`` is False.
    """
    from ..engine.cluster import close_client, local_client, stream_outcomes

    if max_distance is not None and not (math.isfinite(max_distance) and max_distance > 0):
        raise ValueError(f"max_distance: expected a positive number of pixels; got "
                         f"{max_distance!r}")
    store, fields = check_tracks(plate, table, wells)
    jobs = []
    for image, labels in fields:
        name = None
        if tracked_labels:
            name = tracked_name(labels)
            record = {"tracked": {"labels": labels, "table": table}}
            if name in image.labels and not overwrite:
                if label_record(open_labels(image, name)).get("tracked") != record["tracked"]:
                    raise FileExistsError(
                        f"label image {name!r} of field {image.path!r} exists and is not the "
                        f"tracking of {table!r}; pass overwrite=True (--overwrite)")
            else:
                create_labels(image, name, overwrite=overwrite, record=record)
        jobs.append(_FieldJob(image, table, labels, store, max_distance, name, REGION))
    result = TrackResult()
    own = client is None
    if own and jobs:
        client = local_client()
    try:
        stream = stream_outcomes(client, track_field, jobs,
                                 key=lambda j: f"track-{j.image.path.replace('/', '-')}")
        with closing(stream) as outcomes:
            for i, (job, (value, error)) in enumerate(outcomes, 1):
                if error is not None:
                    result.failed.append((job.image.path, error))
                    logger.error("tracking %s failed: %s", job.image.path, error)
                else:
                    result.tracks[job.image.path] = value
                    if job.tracked is not None:
                        label = open_labels(job.image, job.tracked)
                        ts = sorted(set(value[2]) | completed_timepoints(label))
                        mark_done(label, ts)
                        finalize_labels(label)
                if progress is not None:
                    progress(i, len(jobs))
    finally:
        if own and client is not None:
            close_client(client)
    return result

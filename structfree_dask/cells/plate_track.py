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
from typing import Any, NamedTuple

import numpy as np

from ..config import DEFAULT_CELLS_REGION, CellsSettings, tracked_name
from ..io import (
    ImageInfo,
    check_label_target,
    check_table_targets,
    checked_tree,
    completed_timepoints,
    create_labels,
    extend_timepoints,
    finalize_labels,
    join,
    label_group_exists,
    label_record,
    list_tables,
    mark_done,
    open_complete_labels,
    open_labels,
    open_plate,
    read_feature_table,
    table_attrs,
    update_table_attrs,
    well_annotations,
    write_label_region,
)
from ..runtime.result import PlateRun
from ..runtime.resume import Resume, decide_resume
from .columns import TRACK_COLUMNS
from .geff_export import write_geff
from .planes import level_shape, read_labels, regions
from .quality import warnings as quality_warnings
from .registration import Shift, content_shift, drift, mask_spectrum, registered_overlaps
from .table_rows import well_of, write_rows
from .tracking import TRACKER_VERSION, median_step, relabel_by_track, track_cells

__all__ = ["MOTION_FACTOR", "TrackPlan", "TrackResult", "cell_radius", "check_max_distance",
           "check_tracks", "motion_limit", "track_plate", "tracked_name", "tracks_location"]

logger = logging.getLogger(__name__)

#: Table attribute holding the settings the table's rows were tracked with.
_TRACKING = "structfree_dask_tracking"
#: The default distance limit is at least this many times the cells' median step.
MOTION_FACTOR = 2.5
#: Table attribute holding each timepoint's stage drift step (``{t: [dy, dx, registered]}``).
DRIFT_ATTRIBUTE = "structfree_dask_drift"
#: Largest side in pixels of the planes the drift is measured on (a coarser pyramid level
#: for larger fields).
REGISTRATION_SIDE = 1024


def tracks_location(image: ImageInfo, table: str) -> str:
    """Return where a field's track graph (geff) is written: ``<field>/tracks/<table>``."""
    return join(image.url, "tracks", table)


def _tracks_path(image: ImageInfo, table: str) -> str:
    return f"{image.path + '/' if image.path else ''}tracks/{table}"


@dataclass(frozen=True)
class _FieldJob:
    image: ImageInfo
    table: str
    labels: str
    plate_store: str
    max_distance: float | None
    tracked: str | None
    region: int
    #: Track every row afresh (the tracking settings changed, with overwrite).
    retrack: bool = False
    #: Timepoints whose tracked labels are written and recorded already.
    labels_done: frozenset[int] = frozenset()
    #: Gap closing and divisions (:func:`.tracking.track_cells`).
    max_gap: int = 1
    divisions: bool = True
    #: Drift steps measured by an earlier tracking (``{t: [dy, dx, registered]}``).
    drift: dict[str, list[Any]] | None = None
    #: The plate map's values of the field's well, when the plate has a map (the driver
    #: reads it once): the plate's parts rewritten with track IDs keep its columns.
    annotation: dict[str, Any] | None = None
    annotated: bool = False


@dataclass
class TrackResult(PlateRun):
    """What a tracking run did (:class:`~structfree_dask.runtime.result.PlateRun`).

    Units are ``(field path, None)``: a field is tracked as a whole.

    Attributes
    ----------
    tracks : dict
        Field path -> (tracks, divisions, timepoints tracked in this run).
    """

    tracks: dict[str, tuple[int, int, list[int]]] = field(default_factory=dict)
    #: Field path -> each timepoint's drift step ``{t: [dy, dx, registered]}``.
    drift: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def unregistered(self) -> list[tuple[str, int]]:
        """Return the (field, timepoint)s whose drift could not be measured."""
        return sorted((path, int(t)) for path, steps in self.drift.items()
                      for t, (_, _, ok) in steps.items() if not ok)

    def warnings(self) -> list[str]:
        """Return a ``warning`` line for the timepoints whose drift could not be measured."""
        flagged: dict[str, dict[int, list[str]]] = {}
        for path, t in self.unregistered():
            flagged.setdefault(path, {})[t] = ["unregistered"]
        return quality_warnings(flagged)


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


def motion_limit(table: Any) -> float:
    """Return the default largest move of a cell between timepoints, in pixels.

    The larger of the median cell radius and :data:`MOTION_FACTOR` times the median step
    (:func:`.tracking.median_step`). ``table`` holds the rows in registered coordinates.
    Cells that move less than about half their radius keep the radius as their limit;
    faster ones get a limit from their own motion.

    Examples
    --------
    >>> import pandas as pd
    >>> slow = pd.DataFrame({"t": [0, 1], "label": [1, 1], "area_px": [314.0, 314.0],
    ...                      "centroid_y": [20.0, 21.0], "centroid_x": [20.0, 20.0]})
    >>> round(motion_limit(slow), 2)
    10.0
    >>> fast = slow.assign(centroid_y=[20.0, 36.0])
    >>> motion_limit(fast)
    40.0
    """
    return max(cell_radius(table), MOTION_FACTOR * median_step(table))


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


def _drift_steps(job: _FieldJob, timepoints: list[int], known: dict[str, list[Any]]
                 ) -> tuple[dict[int, list[Any]], dict[tuple[int, int, int, int], float]]:
    """Return each timepoint's content shift from the one before, and the masks' overlaps.

    The shifts are ``{t: [dy, dx, registered]}``, measured on the cell masks at the first
    pyramid level no larger than :data:`REGISTRATION_SIDE` px; shifts already measured
    (``known``) are kept. A timepoint that cannot be registered (empty, out of focus) gets
    no shift, and the next one is registered against the last timepoint that was, so one
    bad timepoint does not lose the drift of those after it. The overlaps are the IoU of
    the cells of each timepoint measured now and of the timepoint before it, on the same
    planes with that step's shift removed (:func:`.registration.registered_overlaps`),
    keyed ``(t_before, label, t, label)``.
    """
    label = open_labels(job.image, job.labels)
    ny0, nx0 = level_shape(label, 0)
    level = next((lv for lv in range(len(label.shapes))
                  if max(level_shape(label, lv)) <= REGISTRATION_SIDE), len(label.shapes) - 1)
    ny, nx = level_shape(label, level)
    steps: dict[int, list[Any]] = {}
    overlaps: dict[tuple[int, int, int, int], float] = {}
    planes: dict[int, np.ndarray] = {}  # the reference's, the one before and the current
    spectra: dict[int, np.ndarray] = {}  # their masks' spectra (each computed once)

    def plane(u: int) -> np.ndarray:
        if u not in planes:
            planes[u] = read_labels(label, u, slice(0, ny), slice(0, nx), level)
        return planes[u]

    def spectrum(u: int) -> np.ndarray:
        if u not in spectra:
            spectra[u] = mask_spectrum(plane(u))
        return spectra[u]

    reference = None  # the last timepoint registered (or the first)
    for i, t in enumerate(timepoints):
        if i == 0:
            steps[t] = [0.0, 0.0, True]
        elif str(t) in known:
            steps[t] = list(known[str(t)])
        else:
            assert reference is not None
            shift = content_shift(plane(reference), plane(t),
                                  (spectrum(reference), spectrum(t)))
            # the shift spans reference -> t; the steps between them are already counted
            between = [steps[u] for u in timepoints[timepoints.index(reference) + 1:i]]
            dy = shift.dy * ny0 / ny - sum(float(v[0]) for v in between)
            dx = shift.dx * nx0 / nx - sum(float(v[1]) for v in between)
            steps[t] = [dy, dx, shift.registered] if shift.registered else [0.0, 0.0, False]
            before = timepoints[i - 1]
            step = Shift(steps[t][0] * ny / ny0, steps[t][1] * nx / nx0, steps[t][2])
            pairs = registered_overlaps(plane(before), plane(t), step)
            overlaps.update({(before, a, t, b): v for (a, b), v in pairs.items()})
        if steps[t][2]:
            reference = t
        for u in [u for u in planes if u not in (reference, t)]:
            del planes[u]
            spectra.pop(u, None)
    return steps, overlaps


def _registered(rows: Any, offsets: dict[int, tuple[float, float]]) -> Any:
    """Return the rows with their centroids in the first timepoint's frame (drift removed)."""
    out = rows.copy()
    t = rows["t"].astype(int)
    out["centroid_y"] = rows["centroid_y"] - t.map(lambda u: offsets[u][0])
    out["centroid_x"] = rows["centroid_x"] - t.map(lambda u: offsets[u][1])
    return out


def track_field(job: _FieldJob) -> tuple[int, int, list[int], list[int], dict[str, list]]:
    """Track the untracked rows of one field, in registered coordinates.

    Returns (tracks, divisions, timepoints tracked, timepoints of the tracked labels
    written, each timepoint's drift step ``{t: [dy, dx, registered]}``).
    """
    checked_tree(job.image.store, _tracks_path(job.image, job.table))
    df = read_feature_table(job.image, job.table)
    if len(df) == 0:
        return 0, 0, [], [], {}
    tracked = df["track_id"] >= 0
    previous = df[tracked] if tracked.any() and not job.retrack else None
    new = df[~tracked] if previous is not None else df
    if previous is not None and len(new) and new["t"].min() <= previous["t"].max():
        previous, new = None, df  # rows measured again among tracked ones: track afresh
    ts = sorted(int(t) for t in new["t"].unique())
    known = (job.drift or {}) if previous is not None else {}
    steps, overlaps = _drift_steps(job, sorted(int(t) for t in df["t"].unique()), known)
    offsets = drift({t: (s[0], s[1]) for t, s in steps.items()})
    if ts:
        registered = _registered(df, offsets)  # every row once; new and previous from it
        limit = job.max_distance or motion_limit(registered)
        done = track_cells(registered.loc[new.index].drop(columns=list(TRACK_COLUMNS)),
                           max_distance=limit, radius=cell_radius(registered),
                           previous=None if previous is None else registered.loc[previous.index],
                           max_gap=job.max_gap,
                           division_distance=None if job.divisions else 0.0,
                           overlaps=overlaps)
        done[["centroid_y", "centroid_x"]] = new[["centroid_y", "centroid_x"]]  # as measured
        write_rows(job.image, job.table, job.plate_store, done[list(df.columns)],
                   job.annotation, job.annotated)
        df = df.copy()  # the table as written, without reading it back
        df.loc[done.index, list(TRACK_COLUMNS)] = done[list(TRACK_COLUMNS)]
    written: list[int] = []
    if job.tracked is not None:
        # the timepoints tracked now, and those tracked earlier whose labels are not written
        # (a first --tracked-labels after tracking, or a run interrupted before its end)
        in_table = {int(t) for t in df["t"].unique()}
        written = sorted(set(ts) | (in_table - set(job.labels_done)))
        _write_tracked(job, df, written)
    px = job.image.pixel_size
    dt = px.get("t")
    write_geff(tracks_location(job.image, job.table), df[df["track_id"] >= 0],
               pixel_size_um=px.get("y"), time_interval_h=dt, overwrite=True)
    n_tracks = int(df.loc[df["track_id"] >= 0, "track_id"].nunique())
    n_div = int(df.loc[df["parent_track_id"] >= 0, "parent_track_id"].nunique())
    return n_tracks, n_div, ts, written, {str(t): v for t, v in steps.items()}


def check_max_distance(max_distance: float | None) -> float | None:
    """Check a largest move between timepoints (the schema's ``max_distance``).

    The same check as a job file's ``cells.max_distance`` and ``--max-distance``
    (:class:`~structfree_dask.config.CellsSettings`).

    Examples
    --------
    >>> check_max_distance(12), check_max_distance(None)
    (12.0, None)
    >>> check_max_distance(1e9)
    Traceback (most recent call last):
    ...
    structfree_dask.config.SettingsError: max_distance: expected a finite number between ...
    """
    return CellsSettings.check_value("max_distance", max_distance)


def tracking_settings(max_distance: float | None, max_gap: int = 1,
                      divisions: bool = True) -> dict[str, Any]:
    """Return the tracking settings a table records (checked; defaults of new ones left out).

    With them the tracker's version (:data:`.tracking.TRACKER_VERSION`): a table tracked
    by another version has other settings.

    Examples
    --------
    >>> tracking_settings(None)
    {'max_distance': None, 'tracker': 3}
    >>> tracking_settings(12, max_gap=0, divisions=False)
    {'max_distance': 12.0, 'max_gap': 0, 'divisions': False, 'tracker': 3}
    """
    out: dict[str, Any] = {"max_distance": check_max_distance(max_distance)}
    gap = CellsSettings.check_value("max_gap", max_gap)
    if gap != 1:
        out["max_gap"] = gap
    if not CellsSettings.check_value("divisions", divisions):
        out["divisions"] = False
    out["tracker"] = TRACKER_VERSION
    return out


def _tracking_record(image: ImageInfo, table: str) -> dict[str, Any] | None:
    rec = table_attrs(image, table).get(_TRACKING)
    return dict(rec) if isinstance(rec, dict) else None


def _tracked_decision(image: ImageInfo, name: str, record: dict[str, Any], overwrite: bool
                      ) -> Resume:
    """Decide what happens to a field's tracked label image (every timepoint is selected)."""
    check_label_target(image, name)
    if not label_group_exists(image, name):
        return Resume("create")
    label = open_complete_labels(image, name)
    if label is None:
        return Resume("recreate")  # an interrupted creation: nothing in it to keep
    rec = label_record(label).get("tracked")
    ours = isinstance(rec, dict)
    diffs = "" if not ours or rec == record else f"tracked: {rec} vs {record}"
    have_t = label.shapes[0][image.axes.index("t")] if "t" in image.axes else 1
    return decide_resume(
        f"label image {name!r} of field {image.path or image.url!r}", exists=True, ours=ours,
        diffs=diffs, done=completed_timepoints(label), present=range(have_t),
        selected=range(image.n_timepoints), overwrite=overwrite, job="tracking",
        rename="table", error=FileExistsError)


@dataclass(frozen=True)
class _FieldPlan:
    image: ImageInfo
    labels: str
    retrack: bool
    tracked: tuple[str, Resume] | None


class TrackPlan(NamedTuple):
    """A checked tracking request (:func:`check_tracks`), for :func:`track_plate` (``plan=``).

    With it, the run does not read the plate's metadata again.
    """

    #: The request it was checked for (refused by a run of another request).
    request: tuple[Any, ...]
    store: str
    fields: list[_FieldPlan]


def check_tracks(plate: str, table: str, wells: Sequence[str] | None = None, *,
                 tracked_labels: bool = False, max_distance: float | None = None,
                 max_gap: int = 1, divisions: bool = True,
                 overwrite: bool = False) -> TrackPlan:
    """Check a tracking request before anything is written; return its plan.

    Raises
    ------
    KeyError
        A field without the table, an unknown well.
    SettingsError
        ``max_distance`` or ``max_gap`` out of bounds
        (:class:`~structfree_dask.config.CellsSettings`).
    FileExistsError
        The table was tracked with other settings, or the tracked label image
        exists from something else, and ``overwrite`` is False.
    UnsafePathError
        A symbolic link on the way to, or inside, the tracks or the tracked labels.
    """
    settings = tracking_settings(max_distance, max_gap, divisions)
    opened = open_plate(plate)
    fields = [opened.field(p) for p in opened.select(list(wells) if wells else None)]
    out = []
    for image in fields:
        if table not in list_tables(image):
            raise KeyError(f"field {image.path or image.store!r} has no table {table!r}; it "
                           f"has {list_tables(image) or 'none'} (measure the plate first)")
        check_table_targets(image, table, opened.store)
        checked_tree(image.store, _tracks_path(image, table))
        attrs = table_attrs(image, table)
        region = str(attrs.get("region", {}).get("path", ""))
        labels = region.rsplit("/", 1)[-1]
        old = _tracking_record(image, table)
        retrack = old is not None and old != settings
        if retrack and not overwrite:
            raise FileExistsError(
                f"table {table!r} of field {image.path or image.url!r} was tracked with other "
                f"settings ({old} vs {settings}); pass overwrite=True (--overwrite) to track "
                "every timepoint again")
        tracked = None
        if tracked_labels:
            name = tracked_name(labels)
            record = {"labels": labels, "table": table}
            decision = _tracked_decision(image, name, record, overwrite or retrack)
            tracked = (name, decision)
        out.append(_FieldPlan(image, labels, retrack, tracked))
    return TrackPlan(_track_request(plate, table, wells, tracked_labels, settings, overwrite),
                     opened.store, out)


def _track_request(plate: str, table: str, wells: Sequence[str] | None, tracked_labels: bool,
                   settings: dict[str, Any], overwrite: bool) -> tuple[Any, ...]:
    """Return what a tracking plan was checked for (a run of another request refuses it)."""
    return (plate, table, None if wells is None else tuple(wells), bool(tracked_labels),
            settings, overwrite)


def track_plate(plate: str, *, table: str, tracked_labels: bool = False,
                max_distance: float | None = None, max_gap: int = 1, divisions: bool = True,
                region: int = DEFAULT_CELLS_REGION, client: Any = None,
                wells: Sequence[str] | None = None, overwrite: bool = False,
                progress: Callable[[int, int], None] | None = None,
                plan: TrackPlan | None = None) -> TrackResult:
    """Track the cells of a measured plate, field by field.

    Parameters
    ----------
    plate : str
        OME-Zarr plate (a path or a URL) measured by
        :func:`structfree_dask.cells.plate_measure.measure_plate`.
    table : str
        The measurement table (e.g. ``cyto_features``).
    tracked_labels : bool
        Also write ``labels/<labels>_tracked``: the table's label image relabelled by
        track ID, so that a cell keeps its ID over time. Timepoints tracked earlier whose
        tracked labels are missing are written too.
    max_distance : float, optional
        Largest move of a cell between timepoints, in pixels (default: the field's median
        cell radius), within ``limits.MAX_DISTANCE``.
    max_gap : int
        Timepoints a track may skip where its cell was missed (0: no gap closing).
    divisions : bool
        Link daughters to their mother (False: a daughter starts a new track).
    region : int
        Side in pixels of the regions read when writing tracked labels.

        The table records ``max_distance``, ``max_gap``, ``divisions`` and the tracker's
        version (:data:`.tracking.TRACKER_VERSION`): tracking again with other values, or
        a table tracked by another version, needs ``overwrite``, and then tracks every
        timepoint afresh.
    client, wells, progress
        As for :func:`structfree_dask.cells.plate_measure.measure_plate` (``progress``
        counts fields).
    plan : TrackPlan, optional
        What :func:`check_tracks` returned for this request: the plate is not read again.
    overwrite : bool
        Track every timepoint again when ``max_distance`` changed; replace a tracked label
        image made from another label image.

    Returns
    -------
    TrackResult

    Raises
    ------
    KeyError
        A field without the table, an unknown well.
    SettingsError
        A setting out of its bounds (a ``ValueError``).
    FileExistsError
        Other tracking settings, or a tracked label image from other labels, and
        ``overwrite`` is False.
    """
    from ..runtime.cluster import close_client, local_client, stream_outcomes

    settings = tracking_settings(max_distance, max_gap, divisions)
    request = _track_request(plate, table, wells, tracked_labels, settings, overwrite)
    if plan is None:
        plan = check_tracks(plate, table, wells, tracked_labels=tracked_labels,
                            max_distance=max_distance, max_gap=max_gap, divisions=divisions,
                            overwrite=overwrite)
    elif plan.request != request:
        raise ValueError(f"the plan given was checked for another request ({plan.request}); "
                         "check this one with check_tracks")
    store, plans = plan.store, plan.fields
    region = CellsSettings.check_value("region", region)
    jobs = []
    annotations = well_annotations(store)
    for plan in plans:
        image, name, labels_done = plan.image, None, frozenset[int]()
        if plan.tracked is not None:
            name, decision = plan.tracked
            if decision.action == "resume":
                extend_timepoints(open_labels(image, name))  # a growing time-lapse
                labels_done = frozenset(decision.kept)
            else:
                create_labels(image, name, overwrite=decision.action == "recreate",
                              record={"tracked": {"labels": plan.labels, "table": table}})
        known = table_attrs(image, table).get(DRIFT_ATTRIBUTE)
        jobs.append(_FieldJob(image, table, plan.labels, store, settings["max_distance"], name,
                              region, plan.retrack, labels_done, max_gap=max_gap,
                              divisions=divisions,
                              drift=dict(known) if isinstance(known, dict) else None,
                              annotation=well_of(annotations, image.path),
                              annotated=annotations is not None))
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
                    result.fail(job.image.path, None, error)
                    logger.error("tracking %s failed: %s", job.image.path, error)
                else:
                    result.tracks[job.image.path] = value[:3]
                    result.drift[job.image.path] = value[4]
                    result.done.append((job.image.path, None))
                    update_table_attrs(job.image, table,
                                       **{_TRACKING: settings, DRIFT_ATTRIBUTE: value[4]})
                    if job.tracked is not None:
                        label = open_labels(job.image, job.tracked)
                        mark_done(label, sorted(set(value[3]) | set(job.labels_done)))
                        finalize_labels(label)
                if progress is not None:
                    progress(i, len(jobs))
    finally:
        if own and client is not None:
            close_client(client)
    return result

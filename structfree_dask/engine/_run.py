"""Driver side: planning (checks before any write), label actions, :func:`segment`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .._provenance import software_versions
from ..backbones import ModelSpec
from ..config import SegmentationConfig
from ..io import (
    ImageInfo,
    LabelExistsError,
    LabelImage,
    check_label_target,
    check_store,
    check_writable,
    completed_timepoints,
    create_labels,
    extend_timepoints,
    finalize_labels,
    label_record,
    mark_done,
    metadata_errors,
    open_labels,
    open_plate,
    unmark_done,
)
from ..pipeline.segment import check_rescale, field_geometry, resolve_models
from ._graph import Unit, unit_graph
from .cluster import TASKS_PER_THREAD, gpu_resources, in_flight_window

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a run did."""

    done: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, int]] = field(default_factory=list)
    failed: list[tuple[str, int, str]] = field(default_factory=list)
    cells: dict[str, int] = field(default_factory=dict)
    cut_cells: int = 0
    seconds: float = 0.0
    megapixel_channels: float = 0.0
    model_sha256: list[str] = field(default_factory=list)
    #: Seconds from the start of the run to the first finished unit (None: none finished).
    first_unit_seconds: float | None = None
    #: Most units that were in flight at once (the stream's window).
    max_in_flight: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed


def _select_timepoints(n: int, timepoints: slice | Sequence[int] | None) -> list[int]:
    if timepoints is None:
        return list(range(n))
    if isinstance(timepoints, slice):
        return list(range(n))[timepoints]
    bad = [t for t in timepoints if not 0 <= int(t) < n]
    if bad:
        raise ValueError(f"timepoint(s) {bad} do not exist; the data has {n} (0..{n - 1})")
    return sorted({int(t) for t in timepoints})


def _one(values: list[Any]) -> Any:
    return values[0] if len(set(values)) == 1 else values


def _run_record(cfg: SegmentationConfig, specs: tuple[ModelSpec, ...], channels: tuple[int, ...],
                names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "kind": "segmentation",
        "organelle": cfg.organelle,
        "model": _one([sp.name for sp in specs]),
        "model_sha256": _one([sp.sha256 for sp in specs]),
        "channels": list(channels),
        "channel_names": list(names),
        "diameter": cfg.diameter or specs[0].diam_mean,
        "fusion": "flow_averaging" if cfg.fusion == "fa" else cfg.fusion,
        "cellprob_threshold": cfg.cellprob_threshold,
        "flow_threshold": cfg.flow_threshold,
        "min_size": cfg.min_size,
        "software": software_versions(),
    }


_RESUME_KEYS = ("kind", "organelle", "model_sha256", "channels", "diameter", "fusion",
                "cellprob_threshold", "flow_threshold", "min_size")


@dataclass(frozen=True)
class _FieldPlan:
    """What a run does with one field, decided before anything is written.

    ``action`` is ``"create"`` (new label image), ``"recreate"`` (``overwrite`` of
    every timepoint it holds) or ``"resume"`` (keep it; ``redo`` lists the done
    timepoints that ``overwrite`` redoes, ``kept`` those that stay done and are skipped).
    """

    info: ImageInfo
    channels: tuple[int, ...]
    timepoints: tuple[int, ...]
    record: dict[str, Any]
    action: str
    redo: tuple[int, ...] = ()
    kept: tuple[int, ...] = ()


def _settings_diffs(old: dict[str, Any], record: dict[str, Any]) -> str:
    diffs = [k for k in _RESUME_KEYS if old.get(k) != record.get(k)]
    return ", ".join(f"{k}: {old.get(k)!r} vs {record.get(k)!r}" for k in diffs)


def _check_chunks(label: LabelImage, cfg: SegmentationConfig) -> None:
    axes, info = label.image.axes, label.image
    have = tuple(label.chunks[0][axes.index(a)] for a in ("y", "x"))
    want = tuple(min(info.sizes[a], cfg.tile_size) for a in ("y", "x"))
    if have != want:
        raise LabelExistsError(
            f"label image {label.name!r} in {info.url} is stored in {have[0]}x{have[1]} px "
            f"chunks, made with tile_size {have[0]}; tile_size {cfg.tile_size} would write "
            f"across its chunks. Rerun with tile_size {have[0]} (--tile-size {have[0]}), or "
            "redo every timepoint with overwrite")


def _label_action(info: ImageInfo, cfg: SegmentationConfig, record: dict[str, Any],
                  tps: list[int]) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """Decide what happens to ``labels/<name>`` of a field, without writing anything.

    Returns ``(action, redo, kept)`` as in :class:`_FieldPlan`; the label image's record
    is read once, here.

    ``overwrite`` works per (field, timepoint): the selected timepoints are redone and
    the others keep their labels and completion records. Settings that differ from
    those of the timepoints kept cannot be applied to part of a label image.

    Raises
    ------
    UnsafePathError
        A symbolic link on the way to, or inside, the label image.
    PermissionError
        The plate cannot be written.
    LabelExistsError
        The label image exists and cannot be resumed or partly redone as asked.
    """
    name = cfg.label_name
    folder = check_label_target(info, name)
    if folder is not None:
        check_writable(folder)
    if not (name in info.labels or _label_group_exists(info, name)):
        return "create", (), ()
    label = open_labels(info, name)
    old = label_record(label)
    segmentation = old.get("kind") == "segmentation"
    have_t = label.shapes[0][info.axes.index("t")] if "t" in info.axes else 1
    if have_t > info.n_timepoints:
        raise ValueError(f"label image {name!r} of {info.url} has {have_t} timepoints but "
                         f"its image only {info.n_timepoints}")
    done = {int(t) for t in old.get("done", ())} if segmentation else set(range(have_t))
    kept = sorted(done - set(tps))
    diffs = _settings_diffs(old, record) if segmentation else ""
    if cfg.overwrite and not kept:
        return "recreate", (), ()
    if not segmentation:
        if cfg.overwrite:
            raise LabelExistsError(
                f"label image {name!r} in {info.url} was not written by a segmentation run; "
                f"overwriting timepoint(s) {tps} alone would discard its other timepoints "
                f"{kept}. Select all its timepoints, or choose another --name")
        raise LabelExistsError(
            f"label image {name!r} already exists in {info.url} and was not written by a "
            "segmentation run; choose another --name or pass --overwrite")
    if diffs:
        if cfg.overwrite:
            raise LabelExistsError(
                f"label image {name!r} in {info.url} keeps timepoint(s) {kept} made with other "
                f"settings ({diffs}); overwrite redoes only the selected timepoints, and one "
                "label image cannot mix settings. Select all its timepoints to redo it "
                "whole, or choose another --name")
        raise LabelExistsError(
            f"label image {name!r} in {info.url} was made with other settings ({diffs}); "
            "pass --overwrite to redo it")
    _check_chunks(label, cfg)
    redo = tuple(sorted(done & set(tps))) if cfg.overwrite else ()
    return "resume", redo, tuple(sorted(done - set(redo)))


def _apply_label_plan(fp: _FieldPlan, cfg: SegmentationConfig) -> LabelImage:
    """Create, recreate or reopen a field's label image as planned."""
    name = cfg.label_name
    if fp.action in ("create", "recreate"):
        return create_labels(fp.info, name, chunk_yx=cfg.tile_size,
                             overwrite=fp.action == "recreate", record=fp.record)
    label = extend_timepoints(open_labels(fp.info, name))  # a growing time-lapse
    if fp.redo:
        unmark_done(label, list(fp.redo))
        logger.info("labels/%s of %s: redoing timepoint(s) %s", name, fp.info.url,
                    list(fp.redo))
    return label


def _label_group_exists(info: ImageInfo, name: str) -> bool:
    import zarr

    try:
        with metadata_errors(info.store, f"{info.path}/labels" if info.path else "labels"):
            group = zarr.open_group(store=info.store, path=info.path, mode="r")
            return "labels" in group and name in group["labels"]  # type: ignore[operator]
    except (FileNotFoundError, KeyError):
        return False


def validate(
    plate: str, config: SegmentationConfig, *, wells: Sequence[str] | None = None,
    timepoints: slice | Sequence[int] | None = None,
) -> list[_FieldPlan]:
    """Check a run's input without writing anything; return its plan.

    Everything that can be known before work starts is checked here, for every
    selected field, so that a bad input stops the run before anything is created.

    Raises
    ------
    KeyError, ValueError, FileNotFoundError, LabelExistsError
        Unknown well, channel or timepoint; an empty selection; a channel given
        twice; a model file that is not Cellpose weights; a diameter that would
        rescale fields beyond :data:`~structfree_dask.limits.RESCALE`; a field
        smaller than one cell; a label image that cannot be resumed or redone as
        asked.
    PermissionError
        A read-only plate, or a symbolic link on the way to the label image
        (:class:`~structfree_dask.io.UnsafePathError`).
    """
    return _plan(plate, config, resolve_models(config), wells, timepoints)


def _describe_selection(timepoints: slice | Sequence[int] | None) -> str:
    if isinstance(timepoints, slice):
        start = "" if timepoints.start is None else timepoints.start
        stop = "" if timepoints.stop is None else timepoints.stop
        return f"{start}:{stop}"
    return str(list(timepoints or []))


def _plan(plate: str, config: SegmentationConfig, specs: tuple[ModelSpec, ...],
          wells: Sequence[str] | None, timepoints: slice | Sequence[int] | None,
          ) -> list[_FieldPlan]:
    spec = specs[0]
    check_rescale(config, spec)
    pl = open_plate(plate)
    check_store(pl.store, write=True)  # an object store that refuses writes: stop here
    infos = list(pl.fields(list(wells) if wells is not None else None))
    if not infos:
        raise ValueError(f"no fields selected in {plate}")
    plans = []
    for info in infos:
        channels = tuple(info.channel_index(c) for c in config.channels)
        if len(set(channels)) != len(channels):
            raise ValueError(
                f"channels {list(config.channels)} name the same channel of {info.url} more "
                f"than once ({', '.join(f'{i}={n}' for i, n in enumerate(info.channel_names))}"
                "); each channel is averaged once")
        tps = _select_timepoints(info.n_timepoints, timepoints)
        if not tps:
            raise ValueError(
                f"timepoints {_describe_selection(timepoints)} select none of the "
                f"{info.n_timepoints} timepoint(s) of {info.url} (0..{info.n_timepoints - 1})")
        geometry = field_geometry((info.sizes["y"], info.sizes["x"]), config, spec)
        diameter = config.diameter or spec.diam_mean
        if min(geometry.shape) < diameter:
            raise ValueError(f"field {info.url} is {geometry.shape[0]}x{geometry.shape[1]} px, "
                             f"smaller than one cell diameter ({diameter:g} px)")
        record = _run_record(config, specs, channels,
                             tuple(info.channel_names[c] for c in channels))
        action, redo, kept = _label_action(info, config, record, tps)
        plans.append(_FieldPlan(info, channels, tuple(tps), record, action, redo, kept))
    return plans


#: Units in flight per worker thread: enough to keep every thread busy while finished
#: units are recorded and new ones submitted, few enough that the scheduler and the
#: driver hold a bounded graph whatever the number of units (the cluster's rule, as the
#: zoo's tasks).
UNITS_PER_THREAD = TASKS_PER_THREAD
#: Completion records are written in batches: after this many units of a label image ...
MARK_BATCH = 64
#: ... or when a unit finishes this many seconds after the last record was written (the
#: first unit is recorded at once), and at the end.
MARK_SECONDS = 2.0


class _UnitStream:
    """The units of a run, in order, produced as they are needed.

    A field's label image is created (or reopened, grown, its timepoints to redo
    unmarked) when its first unit is taken, not before the run starts; timepoints
    already done are counted as skipped then.
    """

    def __init__(self, plans: list[_FieldPlan], cfg: SegmentationConfig,
                 result: RunResult) -> None:
        self.cfg = cfg
        self.result = result
        self.labels: dict[str, LabelImage] = {}
        self.channels = {fp.info.path: fp.channels for fp in plans}
        self.total = 0
        self._todo: list[tuple[_FieldPlan, list[int]]] = []
        for fp in plans:
            done = set(fp.kept)  # read once, when the field was planned
            todo = [t for t in fp.timepoints if t not in done]
            result.skipped.extend((fp.info.path, t) for t in fp.timepoints if t in done)
            self.total += len(todo)
            self._todo.append((fp, todo))
        self._units = self._generate()

    def _generate(self) -> Iterator[Unit]:
        for fp, todo in self._todo:
            label = _apply_label_plan(fp, self.cfg)
            self.labels[fp.info.path] = label
            for t in todo:
                yield Unit(fp.info, label, t)

    def take(self) -> Unit | None:
        """Return the next unit, or None when every unit was taken."""
        return next(self._units, None)

    def finish(self) -> None:
        """Open the label images of the fields with nothing left to do (to finalize them)."""
        for _ in self._units:
            raise RuntimeError("finish() called with units not taken")


class _Marks:
    """Completion records of finished units, written in batches per label image."""

    def __init__(self, labels: dict[str, LabelImage]) -> None:
        self.labels = labels
        self.pending: dict[str, list[int]] = {}
        self.last: float | None = None  # when records were last written

    def add(self, path: str, t: int) -> None:
        self.pending.setdefault(path, []).append(t)
        if self.last is None or len(self.pending[path]) >= MARK_BATCH or \
                time.monotonic() - self.last >= MARK_SECONDS:
            self.flush()

    def flush(self) -> None:
        for path, tps in self.pending.items():
            mark_done(self.labels[path], tps)
        self.pending.clear()
        self.last = time.monotonic()


def _window(client: Any) -> int:
    """Units to keep in flight: :data:`UNITS_PER_THREAD` per worker thread now."""
    return in_flight_window(client, UNITS_PER_THREAD)


def _run_stream(client: Any, stream: _UnitStream, config: SegmentationConfig,
                specs: tuple[ModelSpec, ...], result: RunResult,
                progress: Callable[[int, int], None] | None, started: float) -> None:
    """Keep a bounded number of units in flight; record them as they finish.

    The window follows the cluster (workers that join or leave), re-read every few
    seconds; completion is recorded in batches, always after all of a unit's writes.
    """
    from dask.base import tokenize

    from .cluster import as_completed_stream

    token = tokenize(asdict(config), [sp.sha256 for sp in specs], time.time_ns())[:8]
    # network and integration ask for a GPU where workers have one (dask-cuda)
    resources = gpu_resources(client)
    marks = _Marks(stream.labels)
    in_flight: dict[str, tuple[Unit, Any]] = {}
    window, window_read = _window(client), time.monotonic()
    finished = as_completed_stream()

    def submit() -> bool:
        unit = stream.take()
        if unit is None:
            return False
        graph = unit_graph(unit, config, specs, stream.channels[unit.info.path], token,
                           resources)
        future = client.compute(graph)
        in_flight[future.key] = (unit, future)
        finished.add(future)
        result.max_in_flight = max(result.max_in_flight, len(in_flight))
        return True

    n_done = 0
    try:
        while len(in_flight) < window and submit():
            pass
        for future in finished:
            unit, _ = in_flight.pop(future.key)
            path, t = unit.info.path, unit.t
            if future.status == "error":
                err = future.exception()
                result.failed.append((path, t, str(err)))
                logger.error("failed %s t=%d: %s", path, t, err)
            else:
                n_cells, n_cut = future.result()
                marks.add(path, t)
                result.done.append((path, t))
                result.cells[f"{path}@t{t}"] = int(n_cells)
                result.cut_cells += int(n_cut)
                if result.first_unit_seconds is None:
                    result.first_unit_seconds = time.perf_counter() - started
            future.release()
            n_done += 1
            if progress is not None:
                progress(n_done, stream.total)
            if time.monotonic() - window_read > 5.0:
                window, window_read = _window(client), time.monotonic()
            while len(in_flight) < window and submit():
                pass
    except BaseException:
        client.cancel([f for _, f in in_flight.values()])  # interrupted: stop the rest
        raise
    finally:
        marks.flush()  # what finished is recorded, whatever happens next


def segment(
    plate: str,
    config: SegmentationConfig,
    *,
    client: Any = None,
    wells: Sequence[str] | None = None,
    timepoints: slice | Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Segment a plate (or a standalone image) and write ``labels/<name>`` into it.

    Parameters
    ----------
    plate : str
        OME-Zarr plate or multiscale image.
    config : SegmentationConfig
    client : distributed.Client, optional
        Where to run. Default: a local cluster made for this call (loopback only).
    wells : sequence of str, optional
        Wells such as ``["A/1", "B/3"]`` (default all).
    timepoints : slice or sequence of int, optional
        Default all.
    progress : callable, optional
        Called as ``progress(done, total)`` each time a (field, timepoint) finishes.

    Returns
    -------
    RunResult

    Raises
    ------
    KeyError
        Unknown well or channel.
    FileNotFoundError
        Unknown model.
    LabelExistsError
        The label image exists (from something else, or other settings) and
        ``overwrite`` is False.
    """
    started = time.perf_counter()
    specs = resolve_models(config)
    plans = _plan(plate, config, specs, wells, timepoints)  # every check before any write
    result = RunResult()
    stream = _UnitStream(plans, config, result)
    labels = stream.labels
    if stream.total:
        own_client = client is None
        if own_client:
            from .cluster import local_client

            client = local_client()
        try:
            _run_stream(client, stream, config, specs, result, progress, started)
        finally:
            if own_client:
                from .cluster import close_client

                close_client(client)
    stream.finish()
    for label in labels.values():  # the label images of this run (created as needed)
        if completed_timepoints(label):
            finalize_labels(label)
    result.seconds = time.perf_counter() - started
    result.model_sha256 = [sp.sha256 for sp in specs]
    sizes_of = {fp.info.path: fp.info.sizes for fp in plans}
    for path, _ in result.done:
        sizes = sizes_of[path]
        result.megapixel_channels += (sizes["y"] * sizes["x"] * sizes["z"]
                                      * len(config.channels)) / 1e6
    if result.cut_cells:
        logger.warning("%d cell(s) touched a task window edge; raise --halo to keep them whole",
                       result.cut_cells)
    return result

"""Driver side: planning (checks before any write), label actions, :func:`segment`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
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
from .cluster import gpu_resources

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
    timepoints that ``overwrite`` redoes).
    """

    info: ImageInfo
    channels: tuple[int, ...]
    timepoints: tuple[int, ...]
    record: dict[str, Any]
    action: str
    redo: tuple[int, ...] = ()


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
                  tps: list[int]) -> tuple[str, tuple[int, ...]]:
    """Decide what happens to ``labels/<name>`` of a field, without writing anything.

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
        return "create", ()
    label = open_labels(info, name)
    old = label_record(label)
    segmentation = old.get("kind") == "segmentation"
    have_t = label.shapes[0][info.axes.index("t")] if "t" in info.axes else 1
    if have_t > info.n_timepoints:
        raise ValueError(f"label image {name!r} of {info.url} has {have_t} timepoints but "
                         f"its image only {info.n_timepoints}")
    done = completed_timepoints(label) if segmentation else set(range(have_t))
    kept = sorted(done - set(tps))
    diffs = _settings_diffs(old, record) if segmentation else ""
    if cfg.overwrite and not kept:
        return "recreate", ()
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
    return "resume", redo


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
        action, redo = _label_action(info, config, record, tps)
        plans.append(_FieldPlan(info, channels, tuple(tps), record, action, redo))
    return plans


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
    from distributed import as_completed

    started = time.perf_counter()
    specs = resolve_models(config)
    plans = _plan(plate, config, specs, wells, timepoints)  # every check before any write
    result = RunResult()
    units: list[Unit] = []
    labels: dict[str, LabelImage] = {}
    for fp in plans:
        label = _apply_label_plan(fp, config)
        labels[fp.info.path] = label
        done = completed_timepoints(label)
        for t in fp.timepoints:
            if t in done:
                result.skipped.append((fp.info.path, t))
            else:
                units.append(Unit(fp.info, label, t))
    channels_of = {fp.info.path: fp.channels for fp in plans}
    if units:
        own_client = client is None
        if own_client:
            from .cluster import local_client

            client = local_client()
        try:
            from dask.base import tokenize

            token = tokenize(asdict(config), [sp.sha256 for sp in specs], time.time_ns())[:8]
            # network and integration ask for a GPU where workers have one (dask-cuda)
            resources = gpu_resources(client)
            graphs = {(u.info.path, u.t): unit_graph(u, config, specs, channels_of[u.info.path],
                                                      token, resources) for u in units}
            futures = client.compute(list(graphs.values()))
            key_of = {f.key: k for f, k in zip(futures, graphs, strict=True)}
            total = len(futures)
            try:
                for n_done, fut in enumerate(as_completed(futures, raise_errors=False), 1):
                    unit_key = key_of[fut.key]
                    if fut.status == "error":
                        err = fut.exception()
                        result.failed.append((unit_key[0], unit_key[1], str(err)))
                        logger.error("failed %s t=%d: %s", unit_key[0], unit_key[1], err)
                    else:
                        mark_done(labels[unit_key[0]], [unit_key[1]])
                        result.done.append(unit_key)
                        n_cells, n_cut = fut.result()
                        result.cells[f"{unit_key[0]}@t{unit_key[1]}"] = int(n_cells)
                        result.cut_cells += int(n_cut)
                    if progress is not None:
                        progress(n_done, total)
            except BaseException:
                client.cancel(futures)  # interrupted: stop the rest, keep what is recorded
                raise
        finally:
            if own_client:
                from .cluster import close_client

                close_client(client)
    for fp in plans:
        label = labels[fp.info.path]
        if completed_timepoints(label):
            finalize_labels(label)
    result.seconds = time.perf_counter() - started
    result.model_sha256 = [sp.sha256 for sp in specs]
    finished = set(result.done)
    for u in units:
        if (u.info.path, u.t) in finished:
            sizes = u.info.sizes
            result.megapixel_channels += (sizes["y"] * sizes["x"] * sizes["z"]
                                          * len(config.channels)) / 1e6
    if result.cut_cells:
        logger.warning("%d cell(s) touched a task window edge; raise --halo to keep them whole",
                       result.cut_cells)
    return result

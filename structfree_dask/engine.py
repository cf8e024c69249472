"""The segmentation engine: builds the Dask graph of a plate and runs it on a Client.

Per (field, timepoint), for each z plane::

    stats (whole field, per channel) ──► flows of each region's lattice tiles, every
    channel alone, accumulated (Flow Averaging) ──► integration of region + halo,
    cells owned by centroid ──► ID offsets (cell counts) ──► chunk-aligned block
    writes ──► pyramid levels ──► done (recorded by the driver)

The engine knows nothing of the CLI; it takes a ``distributed.Client``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from . import __version__, limits
from .backbones import ModelSpec, resolve_model
from .config import FUSIONS, SegmentationConfig
from .io import (
    ImageInfo,
    LabelExistsError,
    LabelImage,
    check_label_target,
    create_labels,
    extend_timepoints,
    finalize_labels,
    label_record,
    mark_done,
    open_labels,
    open_plate,
    unmark_done,
    write_label_region,
)
from .io._labels import completed_timepoints
from .io._ngff import metadata_errors
from .io._safepath import check_writable
from .pipeline.flows import assemble_flows, region_contribution, resample_to_original
from .pipeline.fusion import fuse_masks
from .pipeline.integrate import DEFAULT_FLOW_THRESHOLD, cut_cells, integrate_flows, owned_cells
from .pipeline.normalize import normalize, percentile_bounds, sample_stride
from .pipeline.stitching import OwnedPatch, encode_patch, paste_block, region_offsets
from .pipeline.tiling import FieldGeometry, halo_depth
from .runtime.cluster import gpu_resources
from .runtime.compute_thread import release_free_memory
from .runtime.scratch import DiskArray

__all__ = [
    "RunResult",
    "segment",
    "segment_field_block",
    "validate",
    "segment_array",
    "resolve_models",
]

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


# ----------------------------------------------------------------------------- worker side

_TORCH_READY: dict[str, Any] = {}


def _torch_device() -> Any:
    """Configure torch once per worker process: threads = the worker's thread budget."""
    if "device" not in _TORCH_READY:
        import torch

        from .backbones import pick_device

        threads = None
        try:
            from distributed import get_worker

            threads = get_worker().state.nthreads
        except (ImportError, ValueError, AttributeError):
            threads = None
        torch.set_num_threads(max(1, int(threads or os.cpu_count() or 1)))
        _TORCH_READY["device"] = pick_device()
    return _TORCH_READY["device"]


def _read_window(info: ImageInfo, t: int, z: int, channels: Sequence[int],
                 window: tuple[int, int, int, int]) -> np.ndarray:
    arr = info.open_array(0)
    y0, y1, x0, x1 = window
    planes = []
    for c in channels:
        idx = list(info.plane_index(t, z, c))
        idx[info.axes.index("y")] = slice(y0, y1)
        idx[info.axes.index("x")] = slice(x0, x1)
        planes.append(np.asarray(arr[tuple(idx)]))
    return np.stack(planes)


def _stats_task(info: ImageInfo, t: int, channels: tuple[int, ...]) -> np.ndarray:
    """Percentile bounds per z plane and channel over the whole field: (nz, c, 2)."""
    arr = info.open_array(0)
    nz = info.sizes["z"]
    s = sample_stride((info.sizes["y"], info.sizes["x"]))
    out = np.zeros((nz, len(channels), 2), dtype=np.float64)
    for z in range(nz):
        for k, c in enumerate(channels):
            idx = list(info.plane_index(t, z, c))
            idx[info.axes.index("y")] = slice(None, None, s)
            idx[info.axes.index("x")] = slice(None, None, s)
            try:
                out[z, k] = percentile_bounds(np.asarray(arr[tuple(idx)]))
            except ValueError as err:
                raise ValueError(f"field {info.url} t={t} z={z} channel {c}: {err}") from None
    return out


def _predictor(specs: tuple[ModelSpec, ...], batch_size: int | None) -> Callable[[np.ndarray],
                                                                          np.ndarray]:
    """``predict(tiles)`` for tiles interleaved by channel (tile ``i * c + k``: channel k)."""
    from .backbones import load_model, predict_tiles

    device = _torch_device()
    if len(set(specs)) == 1:
        net = load_model(specs[0], device)
        return lambda tiles: predict_tiles(net, tiles, batch_size=batch_size)
    nets = [load_model(sp, device) for sp in specs]

    def predict(tiles: np.ndarray) -> np.ndarray:
        c = len(nets)
        out = np.empty((len(tiles), 3, *tiles.shape[1:]), dtype=np.float32)
        for k, net in enumerate(nets):
            out[k::c] = predict_tiles(net, tiles[k::c], batch_size=batch_size)
        return out

    return predict


def _flows_task(info: ImageInfo, t: int, z: int, channels: tuple[int, ...], stats: np.ndarray,
                geometry: FieldGeometry, region: tuple[int, int],
                specs: tuple[ModelSpec, ...], batch_size: int | None,
                separate: bool = False) -> Any:
    box = geometry.tiles_box(region)
    if box is None:
        return None
    window = geometry.source_window(box)
    raw = _read_window(info, t, z, channels, window)
    if raw.dtype.kind == "f" and not np.isfinite(raw).all():
        raise ValueError(f"field {info.url} t={t} z={z}: NaN or infinite pixel values "
                         f"in rows {window[0]}:{window[1]}, columns {window[2]}:{window[3]}")
    img = np.stack([normalize(raw[k], *stats[z, k]) for k in range(len(channels))])
    del raw
    con = region_contribution(img, (window[0], window[2]), geometry, region,
                              _predictor(specs, batch_size), separate=separate)
    if con is None:
        return None
    # the sums wait for the next row's integration on local disk, not in memory
    return replace(con, acc=DiskArray(con.acc))


@dataclass(frozen=True)
class _Dynamics:
    niter: int
    cellprob_threshold: float
    flow_threshold: float
    min_size: int
    max_size_px: float
    fusion: str = "fa"

    def labels(self, flows: np.ndarray) -> np.ndarray:
        """Integrate ``(3, h, w)`` flows; ``(c, 3, h, w)``: each channel, then fuse masks."""
        if flows.ndim == 4:
            per_channel = [self.labels(f) for f in flows]
            return fuse_masks(per_channel, method=self.fusion, min_size=self.min_size)
        return integrate_flows(
            flows[:2], flows[2], niter=self.niter, cellprob_threshold=self.cellprob_threshold,
            flow_threshold=self.flow_threshold, min_size=self.min_size,
            max_size_px=self.max_size_px, device=_torch_device())


def _window_labels(geometry: FieldGeometry, region: tuple[int, int], contributions: list[Any],
                   dyn: _Dynamics) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
    """Averaged flows of a region's window and their integration: (window, flows, labels).

    The heap's free pages are given back afterwards (see :mod:`.compute_thread`):
    integration's large temporaries would otherwise stay with the worker. Integration
    runs on the task's own thread, beside the compute thread's forward passes (running
    it there too lowered peak memory by a few percent but cost 25 % of throughput).
    """
    window = geometry.window(region)
    rbox = geometry.rescaled_window(window)
    flows = resample_to_original(assemble_flows(contributions, rbox), rbox, window, geometry)
    try:
        labels = dyn.labels(flows)
    finally:
        release_free_memory()
    return window, flows, labels


def _dynamics(geometry: FieldGeometry, cfg: SegmentationConfig) -> _Dynamics:
    return _Dynamics(
        niter=int(round(200 / geometry.rescale)), cellprob_threshold=cfg.cellprob_threshold,
        flow_threshold=cfg.flow_threshold, min_size=cfg.min_size,
        max_size_px=0.4 * geometry.shape[0] * geometry.shape[1], fusion=cfg.fusion,
    )


def _integrate_task(geometry: FieldGeometry, region: tuple[int, int],
                    contributions: list[Any], dyn: _Dynamics) -> OwnedPatch:
    window, _, labels = _window_labels(geometry, region, contributions, dyn)
    kept, n = owned_cells(labels, (window[0], window[2]), geometry.region_bounds(region))
    n_cut = cut_cells(kept, (window[0], window[2]), geometry.shape)
    return encode_patch(kept, window, n, n_cut)


def _count(patch: OwnedPatch) -> tuple[int, int]:
    return patch.n, patch.n_cut


def _offsets(counts: list[tuple[int, int]]) -> list[int]:
    return region_offsets([c[0] for c in counts])


def _write_task(label: LabelImage, t: int, z: int, block: tuple[int, int, int, int],
                patches: list[tuple[OwnedPatch, int]], offsets: list[int]) -> int:
    pieces = [(p, offsets[i]) for p, i in patches]
    data = paste_block(block, pieces)
    region = {"t": slice(t, t + 1), "z": slice(z, z + 1), "y": slice(block[0], block[1]),
              "x": slice(block[2], block[3])}
    write_label_region(label, region, data)
    return int(data.max(initial=0))


def _pyramid_task(label: LabelImage, t: int, level: int, block: tuple[int, int, int, int],
                  *_deps: Any) -> None:
    axes = label.image.axes
    src_shape, dst_shape = label.shapes[level - 1], label.shapes[level]
    factors = {ax: max(1, round(a / b))
               for ax, a, b in zip(axes, src_shape, dst_shape, strict=True)}
    fy, fx = factors["y"], factors["x"]
    y0, y1, x0, x1 = block
    idx = []
    for ax in axes:
        if ax == "t":
            idx.append(slice(t, t + 1))
        elif ax == "y":
            idx.append(slice(y0 * fy, y1 * fy, fy))
        elif ax == "x":
            idx.append(slice(x0 * fx, x1 * fx, fx))
        elif ax == "z":
            idx.append(slice(None, None, factors["z"]))
        else:
            idx.append(slice(None))
    src = np.asarray(label.open_array(level - 1, mode="r")[tuple(idx)])
    out_shape = [1 if ax == "t" else n for ax, n in zip(axes, dst_shape, strict=True)]
    out_shape[axes.index("y")] = y1 - y0
    out_shape[axes.index("x")] = x1 - x0
    out = np.zeros(out_shape, dtype=src.dtype)
    out[tuple(slice(0, min(a, b)) for a, b in zip(out_shape, src.shape, strict=True))] = src[
        tuple(slice(0, min(a, b)) for a, b in zip(out_shape, src.shape, strict=True))]
    region = {"t": slice(t, t + 1), "y": slice(y0, y1), "x": slice(x0, x1)}
    write_label_region(label, region, out, level=level)


def _unit_done(counts: list[tuple[int, int]], writes: list[int], *_deps: Any) -> tuple[int, int]:
    """Cells and cut cells of a finished (field, timepoint)."""
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


# ----------------------------------------------------------------------------- graph


@dataclass(frozen=True)
class _Unit:
    """One (field, timepoint) to segment."""

    info: ImageInfo
    label: LabelImage
    t: int


def resolve_models(config: SegmentationConfig) -> tuple[ModelSpec, ...]:
    """Resolve the model of each channel of a configuration.

    Raises
    ------
    FileNotFoundError
        Unknown model.
    ValueError
        Per-channel models trained at different diameters (``diam_mean``).
    """
    cache: dict[str | None, ModelSpec] = {}
    specs = []
    for m in config.model_names():
        if m not in cache:
            cache[m] = resolve_model(m)
        specs.append(cache[m])
    diams = sorted({sp.diam_mean for sp in specs})
    if len(diams) > 1:
        raise ValueError(f"the channels' models have different diam_mean {diams}; Flow "
                         "Averaging needs one scale")
    return tuple(specs)


def _one(values: list[Any]) -> Any:
    return values[0] if len(set(values)) == 1 else values


def _geometry(info: ImageInfo, cfg: SegmentationConfig, spec: ModelSpec) -> FieldGeometry:
    diameter = cfg.diameter or spec.diam_mean
    halo = cfg.halo if cfg.halo is not None else halo_depth(diameter)
    return FieldGeometry((info.sizes["y"], info.sizes["x"]), tile_size=cfg.tile_size,
                         halo=halo, rescale=spec.diam_mean / diameter)


def _blocks(shape_yx: tuple[int, int], chunk: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    return [(y, min(y + chunk[0], shape_yx[0]), x, min(x + chunk[1], shape_yx[1]))
            for y in range(0, shape_yx[0], chunk[0]) for x in range(0, shape_yx[1], chunk[1])]


def _needs(resources: dict[str, float] | None) -> dict[str, Any]:
    return {"resources": resources} if resources else {}


def _unit_graph(unit: _Unit, cfg: SegmentationConfig, specs: tuple[ModelSpec, ...],
                channels: tuple[int, ...], token: str,
                resources: dict[str, float] | None = None) -> Any:
    import dask
    from dask import delayed

    info, label, t = unit.info, unit.label, unit.t
    geometry = _geometry(info, cfg, specs[0])
    tag = f"{info.path or 'image'}-t{t}-{token}".replace("/", "_")
    stats = delayed(_stats_task, pure=True)(info, t, channels, dask_key_name=f"stats-{tag}")
    dyn = _dynamics(geometry, cfg)
    regions = geometry.regions()
    order = {r: i for i, r in enumerate(regions)}
    owned: dict[tuple[int, tuple[int, int]], Any] = {}
    counts = []
    for z in range(info.sizes["z"]):
        # Regions in row-major order; integration as soon as its contributors exist, so
        # only about three rows of flow sums wait (on local disk: .scratch), whatever
        # the field's height.
        contrib = {}
        for r in regions:
            with dask.annotate(priority=-order[r], **_needs(resources)):
                contrib[r] = delayed(_flows_task, pure=True)(
                    info, t, z, channels, stats, geometry, r, specs, cfg.batch_size,
                    cfg.fusion != "fa",
                    dask_key_name=f"flows-{tag}-z{z}-{r[0]}_{r[1]}")
        for r in regions:
            with dask.annotate(priority=1_000_000 - order[r], **_needs(resources)):
                owned[(z, r)] = delayed(_integrate_task, pure=True)(
                    geometry, r, [contrib[o] for o in geometry.contributors(r)], dyn,
                    dask_key_name=f"integrate-{tag}-z{z}-{r[0]}_{r[1]}")
            counts.append(delayed(_count, pure=True)(owned[(z, r)],
                                                     dask_key_name=f"count-{tag}-z{z}-{r[0]}_{r[1]}"))
    offsets = delayed(_offsets, pure=True)(counts, dask_key_name=f"offsets-{tag}")
    nreg = len(regions)
    writes = []
    for z in range(info.sizes["z"]):
        for r in regions:
            block = geometry.region_bounds(r)
            patches = [(owned[(z, o)], z * nreg + order[o]) for o in geometry.neighbours(r)]
            writes.append(delayed(_write_task, pure=True)(
                label, t, z, block, patches, offsets,
                dask_key_name=f"write-{tag}-z{z}-{r[0]}_{r[1]}"))
    deps: list[Any] = list(writes)
    for level in range(1, len(label.shapes)):
        shape = label.shapes[level]
        yx = (shape[info.axes.index("y")], shape[info.axes.index("x")])
        chunk = label.chunks[level]
        cyx = (chunk[info.axes.index("y")], chunk[info.axes.index("x")])
        deps = [delayed(_pyramid_task, pure=True)(label, t, level, b, *deps,
                                                  dask_key_name=f"pyramid-{tag}-l{level}-{i}")
                for i, b in enumerate(_blocks(yx, cyx))]
    return delayed(_unit_done, pure=True)(counts, writes, *deps, dask_key_name=f"done-{tag}")


# ----------------------------------------------------------------------------- driver


def _select_timepoints(n: int, timepoints: slice | Sequence[int] | None) -> list[int]:
    if timepoints is None:
        return list(range(n))
    if isinstance(timepoints, slice):
        return list(range(n))[timepoints]
    bad = [t for t in timepoints if not 0 <= int(t) < n]
    if bad:
        raise ValueError(f"timepoint(s) {bad} do not exist; the data has {n} (0..{n - 1})")
    return sorted({int(t) for t in timepoints})


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
        "software": {"structfree_dask": __version__},
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


def _check_rescale(config: SegmentationConfig, spec: ModelSpec) -> None:
    if config.diameter is None:
        return
    lo, hi = limits.RESCALE
    factor = spec.diam_mean / config.diameter
    if not lo <= factor <= hi:
        raise ValueError(
            f"diameter {config.diameter:g} px: the model was trained on cells of "
            f"{spec.diam_mean:g} px, so fields would be rescaled {factor:g}x; expected a "
            f"diameter between {spec.diam_mean / hi:g} and {spec.diam_mean / lo:g} px")


def _plan(plate: str, config: SegmentationConfig, specs: tuple[ModelSpec, ...],
          wells: Sequence[str] | None, timepoints: slice | Sequence[int] | None,
          ) -> list[_FieldPlan]:
    spec = specs[0]
    _check_rescale(config, spec)
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
        geometry = _geometry(info, config, spec)
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
    units: list[_Unit] = []
    labels: dict[str, LabelImage] = {}
    for fp in plans:
        label = _apply_label_plan(fp, config)
        labels[fp.info.path] = label
        done = completed_timepoints(label)
        for t in fp.timepoints:
            if t in done:
                result.skipped.append((fp.info.path, t))
            else:
                units.append(_Unit(fp.info, label, t))
    channels_of = {fp.info.path: fp.channels for fp in plans}
    if units:
        own_client = client is None
        if own_client:
            from .runtime.cluster import local_client

            client = local_client()
        try:
            from dask.base import tokenize

            token = tokenize(asdict(config), [sp.sha256 for sp in specs], time.time_ns())[:8]
            # network and integration ask for a GPU where workers have one (dask-cuda)
            resources = gpu_resources(client)
            graphs = {(u.info.path, u.t): _unit_graph(u, config, specs, channels_of[u.info.path],
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
                from .runtime.cluster import close_client

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


def segment_array(
    image: np.ndarray,
    *,
    model: str | None = None,
    diameter: float | None = None,
    tile_size: int | None = None,
    halo: int | None = None,
    batch_size: int | None = None,
    cellprob_threshold: float = 0.0,
    flow_threshold: float = DEFAULT_FLOW_THRESHOLD,
    min_size: int = 15,
    fusion: str = "fa",
    channel_models: Sequence[str] | None = None,
) -> np.ndarray:
    """Segment an in-memory ``(c, y, x)`` image in this process (no Dask), with FA.

    Runs exactly the engine's per-region steps in a loop; with ``tile_size`` None the
    whole field is one region (the untiled reference).

    Parameters
    ----------
    image : numpy.ndarray
        ``(c, y, x)`` channels to average (``(y, x)`` for one channel).
    model, diameter, tile_size, halo, batch_size : see SegmentationConfig
    cellprob_threshold, flow_threshold, min_size, fusion : see SegmentationConfig
    channel_models : sequence of str, optional
        One model per channel (e.g. a zoo's CW models); exclusive with ``model``.

    Returns
    -------
    numpy.ndarray
        ``(y, x)`` uint32 labels, consecutive IDs.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}; got {fusion!r}")
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3:
        raise ValueError(f"image must be (c, y, x) or (y, x); got shape {image.shape}")
    cfg = SegmentationConfig(  # the same checks as a plate's run
        channels=tuple(range(len(img))), model=model, diameter=diameter, halo=halo,
        batch_size=batch_size, cellprob_threshold=cellprob_threshold,
        flow_threshold=flow_threshold, min_size=min_size, fusion=fusion,
        channel_models=tuple(channel_models) if channel_models is not None else None,
        **({"tile_size": tile_size} if tile_size is not None else {}))
    specs = resolve_models(cfg)
    spec = specs[0]
    _check_rescale(cfg, spec)
    d = diameter or spec.diam_mean
    shape = (int(img.shape[1]), int(img.shape[2]))
    geometry = FieldGeometry(shape, tile_size=tile_size or max(shape), halo=halo if halo
                             is not None else halo_depth(d), rescale=spec.diam_mean / d)
    norm = np.stack([normalize(img[k], *percentile_bounds(img[k])) for k in range(len(img))])
    predict = _predictor(specs, batch_size)
    contrib = {r: region_contribution(norm, (0, 0), geometry, r, predict,
                                      separate=fusion != "fa") for r in geometry.regions()}
    dyn = _Dynamics(int(round(200 / geometry.rescale)), cellprob_threshold, flow_threshold,
                    min_size, 0.4 * shape[0] * shape[1], fusion)
    regions = geometry.regions()
    patches = {r: _integrate_task(geometry, r, [contrib[o] for o in geometry.contributors(r)],
                                  dyn) for r in regions}
    offsets = region_offsets([patches[r].n for r in regions])
    out = np.zeros(shape, dtype=np.uint32)
    for r in regions:
        block = geometry.region_bounds(r)
        pieces = [(patches[o], offsets[regions.index(o)]) for o in geometry.neighbours(r)]
        out[block[0]:block[1], block[2]:block[3]] = paste_block(block, pieces)
    return out


def segment_field_block(
    plate: str, field_path: str, *, t: int = 0, z: int = 0, region: tuple[int, int] = (0, 0),
    config: SegmentationConfig | None = None,
) -> dict[str, Any]:
    """Run one region of one field in this process and return every intermediate (debugging).

    Returns
    -------
    dict
        ``geometry``, ``stats``, ``flows`` (3, h, w) over the region's window,
        ``labels`` of the window (before ownership) and ``owned`` (after).
    """
    cfg = config or SegmentationConfig()
    specs = resolve_models(cfg)
    info = open_plate(plate).field(field_path)
    channels = tuple(info.channel_index(c) for c in cfg.channels)
    geometry = _geometry(info, cfg, specs[0])
    if region not in geometry.regions():
        raise KeyError(f"region {region} not in the field's grid {geometry.n_regions}")
    stats = _stats_task(info, t, channels)
    contribs = [_flows_task(info, t, z, channels, stats, geometry, o, specs, cfg.batch_size,
                            cfg.fusion != "fa")
                for o in geometry.contributors(region)]
    window, flows, labels = _window_labels(geometry, region, contribs, _dynamics(geometry, cfg))
    owned, _ = owned_cells(labels, (window[0], window[2]), geometry.region_bounds(region))
    return {"geometry": geometry, "stats": stats, "window": window, "flows": flows,
            "labels": labels, "owned": owned}



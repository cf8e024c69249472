"""Worker-side task functions of the engine's graph (stats, flows, integration, writes).

They run on Dask workers; torch is configured once per worker process
(:func:`worker_device`). :func:`segment_unit_task` runs them all, in order, for a whole
(field, timepoint) in one task (a fused unit).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..backbones import ModelSpec
from ..io import LABEL_DTYPE, ImageInfo, LabelImage, write_label_region
from ..pipeline.flows import assemble_flows, region_contribution, resample_to_original
from ..pipeline.integrate import Dynamics, cut_cells, owned_cells
from ..pipeline.normalize import normalize, percentile_bounds, sample_stride
from ..pipeline.segment import predictor
from ..pipeline.stitching import OwnedPatch, encode_patch, paste_block, region_offsets
from ..pipeline.tiling import FieldGeometry
from ..runtime.cluster import worker_directory, worker_threads
from ..runtime.compute_thread import release_free_memory
from ..runtime.scratch import DiskArray

_TORCH_READY: dict[str, Any] = {}


def worker_device() -> Any:
    """Configure torch once per worker process (threads = the worker's thread budget).

    Returns the device tasks run the network on (a GPU when the worker has one).
    """
    if "device" not in _TORCH_READY:
        import torch

        from ..backbones import pick_device

        threads = worker_threads()
        torch.set_num_threads(max(1, int(threads or os.cpu_count() or 1)))
        _TORCH_READY["device"] = pick_device()
    return _TORCH_READY["device"]


def read_window(info: ImageInfo, t: int, z: int, channels: Sequence[int],
                 window: tuple[int, int, int, int]) -> np.ndarray:
    arr = info.open_array(0)
    y0, y1, x0, x1 = window
    planes = []
    for c in channels:
        idx = list(info.plane_index(t, z, c))
        idx[info.axes.index("y")] = slice(y0, y1)
        idx[info.axes.index("x")] = slice(x0, x1)
        planes.append(info.read(tuple(idx), array=arr))
    return np.stack(planes)


def _field_bounds(info: ImageInfo, t: int, channels: tuple[int, ...],
                  sample: Callable[[int, int, int, int], np.ndarray]) -> np.ndarray:
    """Return the percentile bounds (nz, c, 2) of each plane's sampled channels.

    ``sample(z, k, c, stride)`` gives channel ``c``'s pixels of plane ``z``, every
    ``stride``-th row and column (the field's sampling stride).
    """
    stride = sample_stride((info.sizes["y"], info.sizes["x"]))
    out = np.zeros((info.sizes["z"], len(channels), 2), dtype=np.float64)
    for z in range(info.sizes["z"]):
        for k, c in enumerate(channels):
            try:
                out[z, k] = percentile_bounds(sample(z, k, c, stride))
            except ValueError as err:
                raise ValueError(f"field {info.url} t={t} z={z} channel {c}: {err}") from None
    return out


def stats_task(info: ImageInfo, t: int, channels: tuple[int, ...]) -> np.ndarray:
    """Percentile bounds per z plane and channel over the whole field: (nz, c, 2)."""
    arr = info.open_array(0)

    def sample(z: int, k: int, c: int, stride: int) -> np.ndarray:
        idx = list(info.plane_index(t, z, c))
        idx[info.axes.index("y")] = slice(None, None, stride)
        idx[info.axes.index("x")] = slice(None, None, stride)
        return info.read(tuple(idx), array=arr)

    return _field_bounds(info, t, channels, sample)


def planes_and_stats(info: ImageInfo, t: int, channels: tuple[int, ...]
                     ) -> tuple[list[np.ndarray], np.ndarray]:
    """Read the field's planes once ((c, y, x) per z) and take :func:`stats_task`'s bounds.

    The bounds come from the same pixels :func:`stats_task` samples, so they are equal.
    """
    ny, nx = info.sizes["y"], info.sizes["x"]
    planes = [read_window(info, t, z, channels, (0, ny, 0, nx)) for z in range(info.sizes["z"])]
    bounds = _field_bounds(info, t, channels,
                           lambda z, k, c, stride: planes[z][k, ::stride, ::stride])
    return planes, bounds


def region_flows(info: ImageInfo, t: int, z: int, channels: tuple[int, ...], stats: np.ndarray,
                 geometry: FieldGeometry, region: tuple[int, int],
                 specs: tuple[ModelSpec, ...], batch_size: int | None,
                 separate: bool = False, plane: np.ndarray | None = None) -> Any:
    """Return the network's flow sums over the tiles a region owns, in memory (or None).

    ``plane``: the whole (c, y, x) plane already read (:func:`planes_and_stats`); by
    default the region's window is read from the store.
    """
    box = geometry.tiles_box(region)
    if box is None:
        return None
    window = geometry.source_window(box)
    if plane is None:
        raw = read_window(info, t, z, channels, window)
    else:
        raw = plane[:, window[0]:window[1], window[2]:window[3]]
    if raw.dtype.kind == "f" and not np.isfinite(raw).all():
        raise ValueError(f"field {info.url} t={t} z={z}: NaN or infinite pixel values "
                         f"in rows {window[0]}:{window[1]}, columns {window[2]}:{window[3]}")
    img = np.stack([normalize(raw[k], *stats[z, k]) for k in range(len(channels))])
    del raw
    return region_contribution(img, (window[0], window[2]), geometry, region,
                               predictor(specs, batch_size, worker_device()), separate=separate)


def flows_task(info: ImageInfo, t: int, z: int, channels: tuple[int, ...], stats: np.ndarray,
                geometry: FieldGeometry, region: tuple[int, int],
                specs: tuple[ModelSpec, ...], batch_size: int | None,
                separate: bool = False) -> Any:
    """:func:`region_flows`, the sums kept on the worker's local disk until integrated."""
    con = region_flows(info, t, z, channels, stats, geometry, region, specs, batch_size,
                       separate)
    if con is None:
        return None
    # the sums wait for the next row's integration on local disk, not in memory
    return replace(con, acc=DiskArray(con.acc, worker_directory()))


def window_labels(geometry: FieldGeometry, region: tuple[int, int], contributions: list[Any],
                   dyn: Dynamics) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]:
    """Averaged flows of a region's window and their integration: (window, flows, labels).

    The heap's free pages are given back afterwards (see
    :mod:`~structfree_dask.runtime.compute_thread`): integration's large temporaries
    would otherwise stay with the worker. Integration runs on the task's own thread,
    beside the compute thread's forward passes (running it there too lowered peak
    memory by a few percent but cost 25 % of throughput).
    """
    window = geometry.window(region)
    rbox = geometry.rescaled_window(window)
    flows = resample_to_original(assemble_flows(contributions, rbox), rbox, window, geometry)
    try:
        labels = dyn.labels(flows, worker_device())
    finally:
        release_free_memory()
    return window, flows, labels


def integrate_task(geometry: FieldGeometry, region: tuple[int, int],
                    contributions: list[Any], dyn: Dynamics) -> OwnedPatch:
    window, _, labels = window_labels(geometry, region, contributions, dyn)
    kept, n = owned_cells(labels, (window[0], window[2]), geometry.region_bounds(region))
    n_cut = cut_cells(kept, (window[0], window[2]), geometry.shape)
    return encode_patch(kept, window, n, n_cut)


def count_task(patch: OwnedPatch) -> tuple[int, int]:
    return patch.n, patch.n_cut


def offsets_task(counts: list[tuple[int, int]]) -> list[int]:
    return region_offsets([c[0] for c in counts])


def write_block(label: LabelImage, t: int, z: int, block: tuple[int, int, int, int],
                patches: list[tuple[OwnedPatch, int]], offsets: list[int]) -> np.ndarray:
    """Paste and write one block of level 0; return its ``(y, x)`` labels."""
    pieces = [(p, offsets[i]) for p, i in patches]
    data = paste_block(block, pieces)
    region = {"t": slice(t, t + 1), "z": slice(z, z + 1), "y": slice(block[0], block[1]),
              "x": slice(block[2], block[3])}
    write_label_region(label, region, data)
    return data


def write_task(label: LabelImage, t: int, z: int, block: tuple[int, int, int, int],
               patches: list[tuple[OwnedPatch, int]], offsets: list[int]) -> int:
    """Write one block of level 0 (:func:`write_block`); return its largest label."""
    return int(write_block(label, t, z, block, patches, offsets).max(initial=0))


def _slab(label: LabelImage, level: int) -> np.ndarray:
    """Zeros shaped like one timepoint of a level (every axis of the label image)."""
    axes = label.image.axes
    return np.zeros([1 if ax == "t" else n for ax, n in zip(axes, label.shapes[level],
                                                              strict=True)], LABEL_DTYPE)


def _put(slab: np.ndarray, axes: tuple[str, ...], block: tuple[int, int, int, int],
         data: np.ndarray, z: int | None = None) -> None:
    """Place a block (all of z, or plane ``z``) into a timepoint's slab, in place."""
    idx = []
    for ax in axes:
        if ax == "y":
            idx.append(slice(block[0], block[1]))
        elif ax == "x":
            idx.append(slice(block[2], block[3]))
        elif ax == "z" and z is not None:
            idx.append(slice(z, z + 1))
        else:
            idx.append(slice(None))
    target = slab[tuple(idx)]
    target[...] = data.reshape(target.shape)


def label_blocks(label: LabelImage, level: int) -> list[tuple[int, int, int, int]]:
    """Chunk-aligned blocks ``(y0, y1, x0, x1)`` of a label image's level, row-major."""
    axes = label.image.axes
    shape, chunk = label.shapes[level], label.chunks[level]
    ny, nx = shape[axes.index("y")], shape[axes.index("x")]
    cy, cx = chunk[axes.index("y")], chunk[axes.index("x")]
    return [(y, min(y + cy, ny), x, min(x + cx, nx))
            for y in range(0, ny, cy) for x in range(0, nx, cx)]


def pyramid_block(label: LabelImage, t: int, level: int, block: tuple[int, int, int, int],
                  below: np.ndarray | None = None) -> np.ndarray:
    """Write one block of ``level`` downsampled from the level below; return it.

    ``below`` is that level's timepoint ``t`` held in memory (:func:`_slab` shaped, what was
    written); without it the level is read back from the store. The same pixels either way.
    """
    axes = label.image.axes
    src_shape, dst_shape = label.shapes[level - 1], label.shapes[level]
    factors = {ax: max(1, round(a / b))
               for ax, a, b in zip(axes, src_shape, dst_shape, strict=True)}
    fy, fx = factors["y"], factors["x"]
    y0, y1, x0, x1 = block
    idx = []
    for ax in axes:
        if ax == "t":
            idx.append(slice(t, t + 1) if below is None else slice(0, 1))
        elif ax == "y":
            idx.append(slice(y0 * fy, y1 * fy, fy))
        elif ax == "x":
            idx.append(slice(x0 * fx, x1 * fx, fx))
        elif ax == "z":
            idx.append(slice(None, None, factors["z"]))
        else:
            idx.append(slice(None))
    src = (np.asarray(label.open_array(level - 1, mode="r")[tuple(idx)]) if below is None
           else below[tuple(idx)])
    out_shape = [1 if ax == "t" else n for ax, n in zip(axes, dst_shape, strict=True)]
    out_shape[axes.index("y")] = y1 - y0
    out_shape[axes.index("x")] = x1 - x0
    out = np.zeros(out_shape, dtype=src.dtype)
    out[tuple(slice(0, min(a, b)) for a, b in zip(out_shape, src.shape, strict=True))] = src[
        tuple(slice(0, min(a, b)) for a, b in zip(out_shape, src.shape, strict=True))]
    region = {"t": slice(t, t + 1), "y": slice(y0, y1), "x": slice(x0, x1)}
    write_label_region(label, region, out, level=level)
    return out


def pyramid_task(label: LabelImage, t: int, level: int, block: tuple[int, int, int, int],
                 *_deps: Any) -> None:
    """Write one block of ``level`` from the level below, read from the store."""
    pyramid_block(label, t, level, block)


#: What a finished unit returns: cells, cells cut at a window edge, and the steps a
#: fused unit ran (stage -> (steps, seconds); empty for a unit run as a graph).
UnitOutcome = tuple[int, int, dict[str, tuple[int, float]]]


def unit_done(counts: list[tuple[int, int]], writes: list[int], *_deps: Any) -> UnitOutcome:
    """Cells and cut cells of a finished (field, timepoint)."""
    return sum(c[0] for c in counts), sum(c[1] for c in counts), {}


class StepClock:
    """Runs the steps of a fused unit and adds up their count and time per stage."""

    def __init__(self) -> None:
        self.steps: dict[str, tuple[int, float]] = {}

    def __call__(self, stage: str, step: Callable[..., Any], *args: Any) -> Any:
        """Return ``step(*args)``, its time counted under ``stage``."""
        start = time.perf_counter()
        try:
            return step(*args)
        finally:
            n, seconds = self.steps.get(stage, (0, 0.0))
            self.steps[stage] = (n + 1, seconds + time.perf_counter() - start)


def segment_unit_task(info: ImageInfo, label: LabelImage, t: int, channels: tuple[int, ...],
                      geometry: FieldGeometry, specs: tuple[ModelSpec, ...],
                      batch_size: int | None, separate: bool, dyn: Dynamics) -> UnitOutcome:
    """One (field, timepoint) in one task: the graph's steps, in its order, in this process.

    The same task functions as the unit's graph, so the labels are bitwise the same; the
    flow sums stay in memory (the engine fuses only fields of one region, whose sums are
    integrated at once). Returns :data:`UnitOutcome` with the count and seconds of each
    stage's steps.
    """
    step = StepClock()
    planes, stats = step("stats", planes_and_stats, info, t, channels)  # one read per plane
    regions = geometry.regions()
    order = {r: i for i, r in enumerate(regions)}
    owned: dict[tuple[int, tuple[int, int]], OwnedPatch] = {}
    counts = []
    for z in range(info.sizes["z"]):
        contrib = {r: step("flows", region_flows, info, t, z, channels, stats, geometry, r,
                           specs, batch_size, separate, planes[z]) for r in regions}
        for r in regions:
            owned[(z, r)] = step("integrate", integrate_task, geometry, r,
                                 [contrib[o] for o in geometry.contributors(r)], dyn)
            counts.append(step("count", count_task, owned[(z, r)]))
        del contrib
    del planes
    offsets = step("offsets", offsets_task, counts)
    writes = []
    axes = label.image.axes
    held = _slab(label, 0)  # what is written, kept: the pyramid is made without reading it back
    for z in range(info.sizes["z"]):
        for r in regions:
            patches = [(owned[(z, o)], z * len(regions) + order[o])
                       for o in geometry.neighbours(r)]
            bounds = geometry.region_bounds(r)
            data = step("write", write_block, label, t, z, bounds, patches, offsets)
            writes.append(int(data.max(initial=0)))
            _put(held, axes, bounds, data, z)
    for level in range(1, len(label.shapes)):
        below, held = held, _slab(label, level)
        for block in label_blocks(label, level):
            _put(held, axes, block, step("pyramid", pyramid_block, label, t, level, block,
                                         below))
    del held
    n_cells, n_cut, _ = step("done", unit_done, counts, writes)
    return n_cells, n_cut, step.steps

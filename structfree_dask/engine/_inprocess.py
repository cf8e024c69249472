"""The engine's per-region steps in this process, without Dask (reference, debugging)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import FUSIONS, SegmentationConfig
from ..io import open_plate
from ..pipeline.flows import region_contribution
from ..pipeline.integrate import DEFAULT_FLOW_THRESHOLD, owned_cells
from ..pipeline.normalize import normalize, percentile_bounds
from ..pipeline.stitching import paste_block, region_offsets
from ..pipeline.tiling import FieldGeometry, halo_depth
from ._models import _check_rescale, _geometry, resolve_models
from ._tasks import (
    _Dynamics,
    _dynamics,
    _flows_task,
    _integrate_task,
    _predictor,
    _stats_task,
    _window_labels,
)


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

"""One region of one field through the engine's own task functions, in this process."""

from __future__ import annotations

from typing import Any

from ..config import SegmentationConfig
from ..io import open_plate
from ..pipeline.integrate import dynamics_for, owned_cells
from ..pipeline.segment import field_geometry, resolve_models
from ._tasks import flows_task, stats_task, window_labels

__all__ = ["segment_field_block"]


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
    geometry = field_geometry((info.sizes["y"], info.sizes["x"]), cfg, specs[0])
    if region not in geometry.regions():
        raise KeyError(f"region {region} not in the field's grid {geometry.n_regions}")
    stats = stats_task(info, t, channels)
    contribs = [flows_task(info, t, z, channels, stats, geometry, o, specs, cfg.batch_size,
                            cfg.fusion != "fa")
                for o in geometry.contributors(region)]
    dyn = dynamics_for(geometry.shape, geometry.rescale, cfg)
    window, flows, labels = window_labels(geometry, region, contribs, dyn)
    owned, _ = owned_cells(labels, (window[0], window[2]), geometry.region_bounds(region))
    return {"geometry": geometry, "stats": stats, "window": window, "flows": flows,
            "labels": labels, "owned": owned}

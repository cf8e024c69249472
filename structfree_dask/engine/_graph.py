"""The Dask graph of one (field, timepoint): :func:`unit_graph` and its stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backbones import ModelSpec
from ..config import SegmentationConfig
from ..io import ImageInfo, LabelImage
from ..pipeline.integrate import dynamics_for
from ..pipeline.segment import field_geometry
from ._tasks import (
    count_task,
    flows_task,
    integrate_task,
    offsets_task,
    pyramid_task,
    stats_task,
    unit_done,
    write_task,
)

#: Task-name prefixes of the engine's graph, in pipeline order.
STAGES = ("stats", "flows", "integrate", "count", "offsets", "write", "pyramid", "done")


@dataclass(frozen=True)
class Unit:
    """One (field, timepoint) to segment."""

    info: ImageInfo
    label: LabelImage
    t: int


def _blocks(shape_yx: tuple[int, int], chunk: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    return [(y, min(y + chunk[0], shape_yx[0]), x, min(x + chunk[1], shape_yx[1]))
            for y in range(0, shape_yx[0], chunk[0]) for x in range(0, shape_yx[1], chunk[1])]


def _needs(resources: dict[str, float] | None) -> dict[str, Any]:
    return {"resources": resources} if resources else {}


def unit_graph(unit: Unit, cfg: SegmentationConfig, specs: tuple[ModelSpec, ...],
                channels: tuple[int, ...], token: str,
                resources: dict[str, float] | None = None) -> Any:
    import dask
    from dask import delayed

    info, label, t = unit.info, unit.label, unit.t
    geometry = field_geometry((info.sizes["y"], info.sizes["x"]), cfg, specs[0])
    tag = f"{info.path or 'image'}-t{t}-{token}".replace("/", "_")
    stats = delayed(stats_task, pure=True)(info, t, channels, dask_key_name=f"stats-{tag}")
    dyn = dynamics_for(geometry.shape, geometry.rescale, cfg)
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
                contrib[r] = delayed(flows_task, pure=True)(
                    info, t, z, channels, stats, geometry, r, specs, cfg.batch_size,
                    cfg.fusion != "fa",
                    dask_key_name=f"flows-{tag}-z{z}-{r[0]}_{r[1]}")
        for r in regions:
            with dask.annotate(priority=1_000_000 - order[r], **_needs(resources)):
                owned[(z, r)] = delayed(integrate_task, pure=True)(
                    geometry, r, [contrib[o] for o in geometry.contributors(r)], dyn,
                    dask_key_name=f"integrate-{tag}-z{z}-{r[0]}_{r[1]}")
            counts.append(delayed(count_task, pure=True)(owned[(z, r)],
                                                     dask_key_name=f"count-{tag}-z{z}-{r[0]}_{r[1]}"))
    offsets = delayed(offsets_task, pure=True)(counts, dask_key_name=f"offsets-{tag}")
    nreg = len(regions)
    writes = []
    for z in range(info.sizes["z"]):
        for r in regions:
            block = geometry.region_bounds(r)
            patches = [(owned[(z, o)], z * nreg + order[o]) for o in geometry.neighbours(r)]
            writes.append(delayed(write_task, pure=True)(
                label, t, z, block, patches, offsets,
                dask_key_name=f"write-{tag}-z{z}-{r[0]}_{r[1]}"))
    deps: list[Any] = list(writes)
    for level in range(1, len(label.shapes)):
        shape = label.shapes[level]
        yx = (shape[info.axes.index("y")], shape[info.axes.index("x")])
        chunk = label.chunks[level]
        cyx = (chunk[info.axes.index("y")], chunk[info.axes.index("x")])
        deps = [delayed(pyramid_task, pure=True)(label, t, level, b, *deps,
                                                  dask_key_name=f"pyramid-{tag}-l{level}-{i}")
                for i, b in enumerate(_blocks(yx, cyx))]
    return delayed(unit_done, pure=True)(counts, writes, *deps, dask_key_name=f"done-{tag}")

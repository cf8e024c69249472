"""The Dask graph of one (field, timepoint): :func:`unit_graph` and its stages.

A field of one region has nothing to stitch across regions: :func:`unit_task` gives it
one task (:func:`fused_unit`, named :data:`FUSED`) that runs the same steps in one
process, instead of a graph of about ten tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backbones import ModelSpec
from ..config import SegmentationConfig
from ..io import ImageInfo, LabelImage
from ..pipeline.integrate import dynamics_for
from ..pipeline.segment import field_geometry
from ..pipeline.tiling import FieldGeometry
from ._tasks import (
    count_task,
    flows_task,
    integrate_task,
    label_blocks,
    offsets_task,
    pyramid_task,
    segment_unit_task,
    stats_task,
    unit_done,
    write_task,
)

#: Task-name prefixes of the engine's graph, in pipeline order.
STAGES = ("stats", "flows", "integrate", "count", "offsets", "write", "pyramid", "done")
#: Task-name prefix of a fused unit: one task that runs every stage of a (field,
#: timepoint) of one region (it reports the time of each stage's steps itself).
FUSED = "unit"


@dataclass(frozen=True)
class Unit:
    """One (field, timepoint) to segment."""

    info: ImageInfo
    label: LabelImage
    t: int


def _needs(resources: dict[str, float] | None) -> dict[str, Any]:
    return {"resources": resources} if resources else {}


def _tag(unit: Unit, token: str) -> str:
    return f"{unit.info.path or 'image'}-t{unit.t}-{token}".replace("/", "_")


def _geometry(unit: Unit, cfg: SegmentationConfig, specs: tuple[ModelSpec, ...]
              ) -> FieldGeometry:
    return field_geometry((unit.info.sizes["y"], unit.info.sizes["x"]), cfg, specs[0])


def unit_task(unit: Unit, cfg: SegmentationConfig, specs: tuple[ModelSpec, ...],
              channels: tuple[int, ...], token: str, resources: dict[str, float] | None = None,
              *, fuse: bool = True) -> Any:
    """Return the unit's Delayed, which computes to a :data:`~._tasks.UnitOutcome`.

    :func:`fused_unit` for a field of one region (when ``fuse``), else :func:`unit_graph`.

    ``token`` makes the task names unique within a run (one per target of the stream).
    """
    if fuse and len(_geometry(unit, cfg, specs).regions()) == 1:
        return fused_unit(unit, cfg, specs, channels, token, resources)
    return unit_graph(unit, cfg, specs, channels, token, resources)


def fused_unit(unit: Unit, cfg: SegmentationConfig, specs: tuple[ModelSpec, ...],
               channels: tuple[int, ...], token: str,
               resources: dict[str, float] | None = None) -> Any:
    """Return one task for the whole unit (:func:`~._tasks.segment_unit_task`).

    It asks for ``resources`` (the GPU) as flows and integration do.
    """
    import dask
    from dask import delayed

    geometry = _geometry(unit, cfg, specs)
    dyn = dynamics_for(geometry.shape, geometry.rescale, cfg)
    packed = _Arguments((unit.info, unit.label, unit.t, channels, geometry, specs,
                         cfg.batch_size, cfg.fusion != "fa", dyn))
    with dask.annotate(**_needs(resources)):
        return delayed(_fused, pure=True)(packed, dask_key_name=f"{FUSED}-{_tag(unit, token)}")


class _Arguments:
    """A fused task's arguments as one object Dask does not look into.

    They hold no Dask collections; handing them over unpacked made Dask walk every field
    of the plan's dataclasses, a few milliseconds of the driver per unit.
    """

    __slots__ = ("values",)

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values


def _fused(packed: _Arguments) -> Any:
    """Run :func:`~._tasks.segment_unit_task` on the packed arguments."""
    return segment_unit_task(*packed.values)


def unit_graph(unit: Unit, cfg: SegmentationConfig, specs: tuple[ModelSpec, ...],
                channels: tuple[int, ...], token: str,
                resources: dict[str, float] | None = None) -> Any:
    """Return the unit's graph: a task per stage, region and z plane (:data:`STAGES`)."""
    import dask
    from dask import delayed

    info, label, t = unit.info, unit.label, unit.t
    geometry = _geometry(unit, cfg, specs)
    tag = _tag(unit, token)
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
        deps = [delayed(pyramid_task, pure=True)(label, t, level, b, *deps,
                                                  dask_key_name=f"pyramid-{tag}-l{level}-{i}")
                for i, b in enumerate(label_blocks(label, level))]
    return delayed(unit_done, pure=True)(counts, writes, *deps, dask_key_name=f"done-{tag}")

"""The segmentation engine: builds the Dask graph of a plate and runs it on a Client.

Per (field, timepoint), for each z plane::

    stats (whole field, per channel) ──► flows of each region's lattice tiles, every
    channel alone, accumulated (Flow Averaging) ──► integration of region + halo,
    cells owned by centroid ──► ID offsets (cell counts) ──► chunk-aligned block
    writes ──► pyramid levels ──► done (recorded by the driver)

A field of one region (nothing to stitch) runs these steps in one task instead (a
fused unit, :data:`FUSED`), which reports the time of each stage's steps itself.
:func:`segment` runs one plate; :func:`segment_many` runs several (plate, settings,
selection) targets as one stream of units.

The engine knows nothing of the CLI; it takes a ``distributed.Client``.

Modules: :mod:`._tasks` (worker-side task functions), :mod:`._graph` (the graph of one
(field, timepoint), :data:`STAGES`), :mod:`._plan` (planning, label actions),
:mod:`._stream` (the bounded stream of units, :class:`RunResult`), :mod:`._precision`
(:func:`cluster_precision`: ``precision: auto`` resolved on the workers), :mod:`._segment`
(:func:`segment`, :func:`segment_many`, :func:`validate`) and :mod:`._debug`
(:func:`segment_field_block`: one region through the task functions, in this process).
The configuration is :class:`structfree_dask.config.SegmentationConfig`; the kernels, the
model rules and the in-process reference
(:func:`structfree_dask.pipeline.segment.segment_array`) are in
:mod:`structfree_dask.pipeline`.
"""

from ._debug import segment_field_block
from ._graph import FUSED, STAGES
from ._precision import agreed_precision, cluster_precision
from ._segment import Target, segment, segment_many, validate
from ._stream import RunResult
from ._tasks import worker_device

__all__ = [
    "FUSED",
    "STAGES",
    "RunResult",
    "Target",
    "agreed_precision",
    "cluster_precision",
    "segment",
    "segment_many",
    "segment_field_block",
    "validate",
    "worker_device",
]

"""The segmentation engine: builds the Dask graph of a plate and runs it on a Client.

Per (field, timepoint), for each z plane::

    stats (whole field, per channel) ──► flows of each region's lattice tiles, every
    channel alone, accumulated (Flow Averaging) ──► integration of region + halo,
    cells owned by centroid ──► ID offsets (cell counts) ──► chunk-aligned block
    writes ──► pyramid levels ──► done (recorded by the driver)

The engine knows nothing of the CLI; it takes a ``distributed.Client``.

Modules: :mod:`._tasks` (worker-side task functions), :mod:`._graph` (the graph of one
(field, timepoint), :data:`STAGES`), :mod:`._run` (planning, label actions,
:func:`segment`, :func:`validate`) and :mod:`._debug` (:func:`segment_field_block`: one
region through the task functions, in this process). The configuration is
:class:`structfree_dask.config.SegmentationConfig`; the kernels, the model rules and
the in-process reference (:func:`structfree_dask.pipeline.segment.segment_array`) are
in :mod:`structfree_dask.pipeline`.
"""

from ._debug import segment_field_block
from ._graph import STAGES
from ._run import RunResult, segment, validate
from ._tasks import worker_device

__all__ = [
    "STAGES",
    "RunResult",
    "segment",
    "segment_field_block",
    "validate",
    "worker_device",
]

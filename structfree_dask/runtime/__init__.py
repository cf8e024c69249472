"""Where work runs: clusters, the compute thread, scratch space.

Dask clusters and clients (:mod:`.cluster`), the compute thread of heavy calls
(:mod:`.compute_thread`) and worker-local scratch arrays (:mod:`.scratch`).
"""

from .cluster import (
    DEFAULT_SCHEDULER_TIMEOUT,
    GPU,
    NO_PROFILE,
    WORKER_ENVIRON,
    SchedulerUnreachableError,
    close_client,
    connect,
    cuda_client,
    gpu_resources,
    local_client,
    make_client,
)
from .compute_thread import (
    release_free_memory,
    run_heavy,
)
from .scratch import (
    DiskArray,
    scratch_directory,
)

__all__ = [
    "WORKER_ENVIRON",
    "NO_PROFILE",
    "GPU",
    "DEFAULT_SCHEDULER_TIMEOUT",
    "SchedulerUnreachableError",
    "local_client",
    "cuda_client",
    "connect",
    "make_client",
    "gpu_resources",
    "close_client",
    "run_heavy",
    "release_free_memory",
    "DiskArray",
    "scratch_directory",
]

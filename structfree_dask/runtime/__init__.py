"""What a process needs to run heavy work: the compute thread and scratch space.

The compute thread of heavy calls (:mod:`.compute_thread`) and local scratch arrays
(:mod:`.scratch`). Clusters and clients are the engine's
(:mod:`structfree_dask.engine.cluster`): the engine is the only code that talks to
Dask's distributed scheduler.
"""

from .compute_thread import (
    release_free_memory,
    run_heavy,
)
from .scratch import (
    DiskArray,
    scratch_directory,
)

__all__ = [
    "run_heavy",
    "release_free_memory",
    "DiskArray",
    "scratch_directory",
]

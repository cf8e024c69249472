"""What every plate-level job runs on: the cluster, the stream of tasks, the rules of a rerun.

Segmentation (:mod:`structfree_dask.engine`), linking, measuring and tracking
(:mod:`structfree_dask.cells`) and the zoo's training and scoring all run on it:

* :mod:`.cluster`: the one door to Dask's ``distributed``: clients and clusters (local,
  dask-cuda, a running scheduler, TLS), the one bounded stream of tasks
  (:func:`~.cluster.stream_futures`), what a run records;
* :mod:`.selection`: timepoint selections checked and resolved one way;
* :mod:`.resume`: the one ``--overwrite`` rule (create, recreate, or resume with the
  selected timepoints redone and the others kept);
* :mod:`.result`: what every plate-level run returns (:class:`~.result.PlateRun`);
* :mod:`.interrupts`: Ctrl-C and SIGTERM held back around writes; :mod:`.logs`: the
  workers' logging;
* :mod:`.compute_thread` and :mod:`.scratch`: the compute thread of heavy calls and
  local scratch arrays.
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

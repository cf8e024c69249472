"""Workers as SLURM jobs: dask-jobqueue's ``SLURMCluster`` behind ``cluster: {kind: slurm}``.

The scheduler runs in the calling process; each worker is a SLURM job that sbatch submits
(one worker process per job, ``threads_per_worker`` CPUs, ``memory``, ``walltime``), which
connects back to the scheduler. Jobs may wait in the queue: the run starts its units at
once and they go to workers as these join. A worker whose job ends (its time limit,
``scancel``) takes its running tasks with it; Dask gives them to the other workers, and
completion is recorded only after a unit's writes, so nothing finished is lost and a rerun
does what is left.

Before anything is submitted, :func:`check_slurm` makes sure sbatch is there, dask-jobqueue
is installed and the partition exists: each is one line (exit status 2 from the commands).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from typing import Any

from ..config import ClusterSettings

__all__ = ["SlurmSetupError", "check_slurm", "slurm_cluster", "WORKER_JOB_NAME"]

logger = logging.getLogger(__name__)

#: ``#SBATCH -J`` of the worker jobs (``squeue -n structfree-dask-worker`` lists them).
WORKER_JOB_NAME = "structfree-dask-worker"
#: Seconds a worker waits for its scheduler before it stops (its job then ends).
DEATH_TIMEOUT = 120


class SlurmSetupError(ValueError):
    """SLURM cannot take the workers: sbatch missing, an unknown partition, no dask-jobqueue."""


def _partitions() -> list[str]:
    out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True,
                         timeout=30)
    if out.returncode != 0:
        raise SlurmSetupError(f"sinfo failed ({out.stderr.strip() or out.returncode}): is "
                              "SLURM's controller (slurmctld) running?")
    return [p.strip().rstrip("*") for p in out.stdout.split() if p.strip()]


def check_slurm(settings: ClusterSettings) -> None:
    """Check that SLURM can take this cluster's worker jobs, submitting nothing.

    Raises
    ------
    SlurmSetupError
        No ``sbatch`` on PATH, no dask-jobqueue, SLURM's controller does not answer, or the
        partition does not exist (the message lists those that do).
    """
    if shutil.which("sbatch") is None:
        raise SlurmSetupError("cluster kind 'slurm': sbatch is not on PATH (run where SLURM's "
                              "commands are, e.g. a login node)")
    try:
        import dask_jobqueue  # noqa: F401
    except ImportError:
        raise SlurmSetupError("cluster kind 'slurm' needs dask-jobqueue "
                              "(pip install 'structfree-dask[slurm]')") from None
    if shutil.which("sinfo") is None:
        return
    partitions = _partitions()
    if settings.partition is not None and settings.partition not in partitions:
        raise SlurmSetupError(f"SLURM partition {settings.partition!r} does not exist; "
                              f"partitions: {', '.join(partitions) or 'none'}")


def cluster_kwargs(settings: ClusterSettings, log_directory: str) -> dict[str, Any]:
    """Return ``SLURMCluster``'s keyword arguments for these settings.

    Examples
    --------
    >>> kw = cluster_kwargs(ClusterSettings(kind="slurm", partition="debug"), "/tmp/logs")
    >>> kw["queue"], kw["cores"], kw["memory"], kw["walltime"]
    ('debug', 1, '4GB', '01:00:00')
    """
    return {
        "job_name": WORKER_JOB_NAME,
        "cores": settings.threads_per_worker,
        "processes": 1,
        "memory": settings.memory,
        "walltime": settings.walltime,
        "queue": settings.partition,
        "account": settings.account,
        "interface": settings.interface,
        "log_directory": log_directory,
        "death_timeout": DEATH_TIMEOUT,
        # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 otherwise, which slows the network
        "job_script_prologue": ["export MALLOC_TRIM_THRESHOLD_=134217728"],
        "scheduler_options": {"dashboard_address": ":0"},
    }


def slurm_cluster(settings: ClusterSettings) -> Any:
    """Start a ``SLURMCluster`` (scheduler here) and submit its worker jobs.

    ``settings.workers`` jobs (default 1) are submitted at once; nothing waits for them
    (they may queue). The jobs' output goes to a new folder under the system's temporary
    folder, named in the log (``-v``). :func:`.cluster.make_client` connects a client.

    Raises
    ------
    SlurmSetupError
        See :func:`check_slurm`.
    """
    check_slurm(settings)
    from dask_jobqueue import SLURMCluster

    logs = tempfile.mkdtemp(prefix="structfree-dask-slurm-")
    cluster = SLURMCluster(**cluster_kwargs(settings, logs))
    jobs = settings.workers or 1
    cluster.scale(jobs=jobs)
    logger.info("SLURM: %d worker job(s) submitted (%s); their output in %s", jobs,
                settings.partition or "default partition", logs)
    return cluster

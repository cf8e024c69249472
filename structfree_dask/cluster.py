"""Clusters: the embedded local default, dask-cuda, or an existing scheduler.

Deployment beyond one machine uses Dask's own tools (``dask scheduler`` /
``dask worker``, dask-jobqueue, the dask-kubernetes operator); this module only
connects to them. Everything started here binds to loopback.
"""

from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["WORKER_ENVIRON", "NO_PROFILE", "GPU", "local_client", "cuda_client", "connect",
           "make_client", "gpu_resources", "close_client"]

logger = logging.getLogger(__name__)

#: Dask config for the workers this module starts. Distributed's nannies set
#: ``MALLOC_TRIM_THRESHOLD_=65536`` before spawning workers; measured here it slows the
#: network by ~35 % and flow integration by ~20 % (large, short-lived arrays are returned
#: to the OS at every free). Unset it; glibc's adaptive default applies.
WORKER_ENVIRON: dict[str, Any] = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}

#: Worker config when no profile is wanted. Distributed's statistical profiler samples
#: every thread's stack every 10 ms and keeps an hour of history in the worker: on a
#: 4096 px field it added ~30 MiB to the worker's peak and kept growing with the run.
NO_PROFILE: dict[str, Any] = {"distributed.worker.profile.enabled": False}


def _worker_config(profile: bool) -> dict[str, Any]:
    return WORKER_ENVIRON if profile else {**WORKER_ENVIRON, **NO_PROFILE}


#: The resource GPU workers advertise and GPU tasks ask for (``dask worker --resources GPU=1``).
GPU = "GPU"


def gpu_resources(client: Any) -> dict[str, float] | None:
    """Return ``{"GPU": 1}`` when a worker advertises a ``GPU`` resource, else None.

    Tasks that need a GPU declare it this way; annotating them with a resource no
    worker has would leave them waiting forever, so CPU clusters get no annotation.
    """
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # older distributed
        info = client.scheduler_info()
    workers = info.get("workers", {}) or {}
    if any(GPU in (w.get("resources") or {}) for w in workers.values()):
        return {GPU: 1}
    return None


def local_client(n_workers: int | None = None, threads_per_worker: int = 1,
                 memory_limit: str | float = "auto", *, profile: bool = False,
                 **kwargs: Any) -> Any:
    """Start a multi-process ``LocalCluster`` on loopback and return a Client.

    Parameters
    ----------
    n_workers : int, optional
        Worker processes (default: one per CPU core).
    threads_per_worker : int
        Threads per worker; torch in each worker uses this many threads.
    memory_limit : str or float
        Per-worker memory limit.
    profile : bool
        Run distributed's statistical profiler in the workers (the dashboard's
        Profile page and a performance report's profile); off by default to keep
        worker memory flat on long runs.
    **kwargs
        More ``LocalCluster`` arguments (e.g. ``resources``).

    Returns
    -------
    distributed.Client
    """
    import dask
    from distributed import Client, LocalCluster

    n = n_workers or max(1, os.cpu_count() or 1)
    if n < 1:
        raise ValueError(f"n_workers must be >= 1; got {n}")
    with dask.config.set(_worker_config(profile)):
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=threads_per_worker, processes=True,
            host="127.0.0.1", dashboard_address="127.0.0.1:0", memory_limit=memory_limit,
            **kwargs,
        )
    client = Client(cluster)
    logger.info("local cluster: %d worker(s); dashboard %s", n, client.dashboard_link)
    return client


def cuda_client(n_workers: int | None = None, *, profile: bool = False) -> Any:
    """Start a dask-cuda ``LocalCUDACluster`` (one worker per GPU) on loopback.

    ``profile`` as in :func:`local_client`.

    Raises
    ------
    RuntimeError
        If dask-cuda is not installed or no CUDA GPU is visible.
    """
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        raise RuntimeError(
            "--cluster cuda needs dask-cuda (pip install 'structfree-dask[cuda]') "
            "on a machine with NVIDIA GPUs"
        ) from None
    import torch
    from distributed import Client

    if not torch.cuda.is_available():
        raise RuntimeError("--cluster cuda: no CUDA GPU is visible to torch on this machine")
    import dask

    kwargs: dict[str, Any] = {"ip": "127.0.0.1", "dashboard_address": "127.0.0.1:0",
                              "resources": {GPU: 1}}  # one worker per GPU
    if n_workers:
        kwargs["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(n_workers))
    with dask.config.set(_worker_config(profile)):
        cluster = LocalCUDACluster(**kwargs)
    return Client(cluster)


def connect(address: str, security: Any = None) -> Any:
    """Connect to a running scheduler (``tcp://host:port`` or ``tls://host:port``)."""
    from distributed import Client

    return Client(address, security=security, timeout="30s")


def make_client(*, scheduler: str | None = None, cluster: str = "local",
                workers: int | None = None, security: Any = None,
                threads_per_worker: int = 1, profile: bool = False) -> Any:
    """Return a Client for the CLI's ``--scheduler`` / ``--cluster`` / ``--workers``.

    ``profile`` turns on the workers' profiler in a cluster started here (see
    :func:`local_client`); a running scheduler's workers keep their own settings.
    """
    if scheduler:
        return connect(scheduler, security)
    if cluster == "local":
        return local_client(workers, threads_per_worker=threads_per_worker, profile=profile)
    if cluster == "cuda":
        return cuda_client(workers, profile=profile)
    raise ValueError(f"cluster must be 'local' or 'cuda'; got {cluster!r}")


def close_client(client: Any) -> None:
    """Close a client, and the cluster it started (a scheduler it connected to stays up)."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()

"""Clusters: the embedded local default, dask-cuda, or an existing scheduler.

Deployment beyond one machine uses Dask's own tools (``dask scheduler`` /
``dask worker``, dask-jobqueue, the dask-kubernetes operator); this module only
connects to them. Everything started here binds to loopback.

It is the package's one door to ``distributed``: clients and clusters, TLS, the
worker a task runs on (:func:`worker_threads`, :func:`worker_name`,
:func:`worker_directory`), tasks streamed through a bounded window and collected as they
finish (:func:`in_flight_window`, :func:`stream_outcomes`) and what a run records
(:func:`recording`: Dask's performance report and task stream).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from typing import Any, TypeVar

from ..config import DEFAULT_SCHEDULER_TIMEOUT, ClusterSettings
from ..limits import SCHEDULER_TIMEOUT, THREADS, WORKERS, check_number
from .interrupts import deferred

__all__ = ["WORKER_ENVIRON", "NO_PROFILE", "GPU", "DEFAULT_SCHEDULER_TIMEOUT",
           "SchedulerUnreachableError", "SchedulerLostError", "DaskConfigError", "local_client",
           "cuda_client", "connect", "make_client", "gpu_resources", "close_client",
           "tls_security", "worker_threads", "worker_name", "worker_directory",
           "TASKS_PER_THREAD", "MIN_IN_FLIGHT", "WINDOW_SECONDS", "in_flight_window",
           "stream_futures", "stream_outcomes", "finished_result", "recording",
           "workers_lost", "LOST_NOTICE_SECONDS"]

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
    from ..runtime.logs import with_preload

    # under the command line, its verbosity applies in the workers too (see .logs)
    return with_preload(WORKER_ENVIRON if profile else {**WORKER_ENVIRON, **NO_PROFILE})


def _silence_logs() -> dict[str, Any]:
    """``silence_logs`` of a cluster started under the command line: its distributed level.

    distributed's default (WARNING) hides the nannies' INFO lines even with ``-v``.
    """
    from ..runtime.logs import cli_verbosity, levels

    verbosity = cli_verbosity()
    return {} if verbosity is None else {"silence_logs": levels(verbosity)["distributed"]}


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

    n = n_workers if n_workers is not None else max(1, os.cpu_count() or 1)
    check_number("workers", n, WORKERS, integer=True)
    check_number("threads_per_worker", threads_per_worker, THREADS, integer=True)
    # a Ctrl-C while the cluster starts is held back until it has started, then stops the
    # caller (a cluster cut in the middle of its start fails noisily at exit)
    with dask.config.set(_worker_config(profile)), deferred() as interrupted:
        try:
            cluster = LocalCluster(
                n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                host="127.0.0.1", dashboard_address="127.0.0.1:0", memory_limit=memory_limit,
                **{**_silence_logs(), **kwargs},
            )
            client = Client(cluster)
        except Exception as err:
            if interrupted():  # a worker that Ctrl-C reached while it started: the cause
                raise KeyboardInterrupt from None
            if isinstance(err, ValueError | TypeError | KeyError):  # ours are checked above
                raise DaskConfigError(err) from err
            raise
    if interrupted():
        close_client(client)
        raise KeyboardInterrupt
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
    with dask.config.set(_worker_config(profile)), deferred() as interrupted:
        cluster = LocalCUDACluster(**_silence_logs(), **kwargs)
        client = Client(cluster)
    if interrupted():
        close_client(client)
        raise KeyboardInterrupt
    return client




class DaskConfigError(ValueError):
    """Dask's own settings (``DASK_*`` variables, configuration files) do not parse."""

    def __init__(self, err: BaseException) -> None:
        text = err.args[0] if isinstance(err, KeyError) and err.args else err
        super().__init__(f"Dask configuration: {text} (check the DASK_* environment "
                         "variables and Dask's configuration files)")


class SchedulerUnreachableError(ConnectionError):
    """No Dask scheduler answered at the given address in time."""


class SchedulerLostError(RuntimeError):
    """The client lost its scheduler mid-run: the scheduler stopped, or the network to it.

    Its tasks in flight were cancelled (Dask cancels every future of a client whose
    connection to the scheduler closes); what finished before is kept.
    """

    def __init__(self, address: str | None) -> None:
        super().__init__(
            f"lost the connection to the Dask scheduler at {address or '?'} mid-run (the "
            "scheduler stopped, or the network to it failed); what finished is kept. Start "
            "the scheduler and its workers again (dask scheduler, dask worker: workers "
            "leave when their scheduler goes), then rerun the same command to resume")


def connect(address: str, security: Any = None,
            timeout: float = DEFAULT_SCHEDULER_TIMEOUT) -> Any:
    """Connect to a running scheduler (``tcp://host:port``, ``tls://...``, ``ucx://...``).

    Parameters
    ----------
    address : str
    security : distributed.security.Security, optional
    timeout : float
        Seconds to wait for the scheduler to answer.

    Raises
    ------
    SchedulerUnreachableError
        If no scheduler answers within ``timeout`` (a ``ConnectionError``).
    ValueError
        If the address is not of the form ``PROTOCOL://HOST:PORT``.
    """
    from distributed import Client

    check_number("scheduler timeout", timeout, SCHEDULER_TIMEOUT, unit="s")
    port = address.rsplit(":", 1)[-1] if isinstance(address, str) else ""
    if not isinstance(address, str) or "://" not in address \
            or ":" not in address.split("://", 1)[1] or not port.isdigit():
        raise ValueError(f"scheduler address: expected PROTOCOL://HOST:PORT such as "
                         f"tcp://10.0.0.5:8786 (or tls://, ucx://); got {address!r}")
    try:
        return Client(address, security=security, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SchedulerUnreachableError(
            f"no Dask scheduler answered at {address} within {timeout:g} s ({reason}); check "
            "the address and that the scheduler runs (dask scheduler), or raise "
            "--scheduler-timeout") from None


def make_client(settings: ClusterSettings | None = None, *, profile: bool = False) -> Any:
    """Start or connect the cluster that the settings name; return its Client.

    The one way every command and job gets its cluster (a job file's ``cluster:``, a
    command's ``--cluster``, ``--workers``, ``--scheduler`` ...: both are
    :class:`~structfree_dask.config.ClusterSettings`).

    Parameters
    ----------
    settings : ClusterSettings, optional
        Default: a local cluster, one worker per core.
    profile : bool
        Turn on the workers' profiler in a cluster started here (see
        :func:`local_client`); a running scheduler's workers keep their own settings.
    """
    s = settings or ClusterSettings()
    if s.kind == "scheduler":
        assert s.address is not None  # checked by the settings
        security = tls_security(s.tls_ca, s.tls_cert, s.tls_key) if s.tls_ca else None
        return connect(s.address, security, s.timeout)
    if s.kind == "cuda":
        return cuda_client(s.workers, profile=profile)
    if s.kind == "slurm":
        from distributed import Client

        from .slurm import slurm_cluster

        with deferred() as interrupted:
            client = Client(slurm_cluster(s))
        if interrupted():
            close_client(client)
            raise KeyboardInterrupt
        return client
    return local_client(s.workers, threads_per_worker=s.threads_per_worker, profile=profile)


@contextmanager
def _quiet_shutdown() -> Iterator[None]:
    """Silence distributed's logs of connections closing while a cluster shuts down."""
    names = ("distributed", "tornado", "asyncio")
    loggers = [logging.getLogger(n) for n in names]
    before = [lg.level for lg in loggers]
    debugging = logging.getLogger("structfree_dask").isEnabledFor(logging.DEBUG)
    if not debugging:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, before, strict=True):
            lg.setLevel(level)


def close_client(client: Any) -> None:
    """Close a client, and the cluster it started (a scheduler it connected to stays up).

    Errors of connections that close during shutdown (``CommClosedError``) are logged
    at debug level, not raised: the work was done before.
    """
    cluster = getattr(client, "cluster", None)
    with _quiet_shutdown():
        for closing in (client, cluster):
            if closing is None:
                continue
            try:
                closing.close()
            except Exception as err:  # noqa: BLE001 - shutdown noise; see docstring
                logger.debug("while closing %s: %s: %s", type(closing).__name__,
                             type(err).__name__, err)


def tls_security(ca: str, cert: str | None, key: str | None) -> Any:
    """Return a ``distributed.security.Security`` that requires TLS with these PEM files."""
    from distributed.security import Security

    return Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key,
                    require_encryption=True)


# ------------------------------------------------------------------- the worker of a task


def _this_worker() -> Any:
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):  # not inside a Dask task
        return None


def worker_threads() -> int | None:
    """Return the thread budget of the worker running this task (None outside a task)."""
    worker = _this_worker()
    return getattr(getattr(worker, "state", None), "nthreads", None)


def worker_name() -> str:
    """Return the address of the worker running this task, or ``"this process"``."""
    worker = _this_worker()
    return str(worker.address) if worker is not None else "this process"


def worker_directory() -> str | None:
    """Return the local directory of the worker running this task (None outside a task)."""
    worker = _this_worker()
    return str(worker.local_directory) if worker is not None else None


# ------------------------------------------------------------------------------- futures


#: Seconds a client is given to notice that its scheduler went, once a request to it failed
#: (its report stream sees the connection close an instant after the request does).
LOST_NOTICE_SECONDS = 2.0


def _lost(client: Any, wait: float = 0.0) -> SchedulerLostError | None:
    """Return the error of a client that lost its scheduler (None while it is connected)."""
    deadline = time.monotonic() + wait
    while client.status == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    if client.status == "running":
        return None
    return SchedulerLostError(getattr(client.scheduler, "address", None))


def finished_result(client: Any, future: Any) -> Any:
    """Return the result of a finished future (fetched through the scheduler).

    Raises
    ------
    SchedulerLostError
        When the scheduler went while the result was fetched.
    """
    try:
        return future.result()
    except Exception:
        lost = _lost(client, LOST_NOTICE_SECONDS)
        if lost is not None:
            raise lost from None
        raise


def _outcome(client: Any, future: Any) -> tuple[Any, str | None]:
    if future.status == "finished":
        return finished_result(client, future), None
    try:
        err: BaseException | None = future.exception()
    except BaseException as exc:  # cancelled futures raise here
        err = exc
    return None, f"{type(err).__name__}: {err}"


#: Tasks in flight per worker thread (:func:`in_flight_window`): enough to keep every
#: thread busy while finished tasks are collected and new ones submitted, few enough that
#: the scheduler and the driver hold a bounded graph whatever the number of tasks.
TASKS_PER_THREAD = 2
#: The smallest window, whatever the cluster (workers not joined yet included).
MIN_IN_FLIGHT = 2
#: Seconds between two readings of the cluster's threads while tasks stream.
WINDOW_SECONDS = 5.0
#: The longest single wait on ``as_completed``'s condition (:func:`_wait_ready`; a
#: finished task ends the wait at once).
_WAIT_SECONDS = 0.1
#: Seconds between two looks for finished futures where that condition is missing.
_POLL_SECONDS = 0.02

T = TypeVar("T")


def in_flight_window(client: Any, per_thread: int = TASKS_PER_THREAD) -> int:
    """Return how many tasks to keep in flight: ``per_thread`` per worker thread now.

    Parameters
    ----------
    client : distributed.Client
    per_thread : int
        Tasks per worker thread.

    Returns
    -------
    int
        ``per_thread`` times the threads of the workers connected now, at least
        :data:`MIN_IN_FLIGHT` (no worker yet, or a scheduler that does not answer).
    """
    try:
        threads = sum(client.nthreads().values())
    except Exception:  # noqa: BLE001 - a scheduler that does not answer: keep it small
        threads = 1
    return max(MIN_IN_FLIGHT, per_thread * threads)


def stream_outcomes(client: Any, fn: Callable[[T], Any], items: Iterable[T], *,
                    key: Callable[[T], str] | None = None,
                    per_thread: int = TASKS_PER_THREAD,
                    resources: Mapping[str, float] | None = None,
                    step: Callable[[], None] | None = None,
                    ) -> Iterator[tuple[T, tuple[Any, str | None]]]:
    """Run ``fn(item)`` for each item, a bounded number at a time; yield each outcome.

    Items are taken from ``items`` only when they are submitted: at most
    :func:`in_flight_window` tasks (``per_thread`` per worker thread, re-read every
    :data:`WINDOW_SECONDS` as workers join or leave) are in flight, and the next is
    submitted as one finishes. A failed task is an outcome, not an exception. A
    finished future is released once its outcome is taken.

    Parameters
    ----------
    client : distributed.Client
    fn : callable
        The task, called on a worker as ``fn(item)`` (``pure=False``).
    items : iterable
        Read lazily; an item and ``fn`` must be serializable.
    key : callable, optional
        ``key(item)``: the start of the item's Dask key (a random suffix keeps keys
        unique); default ``fn``'s name.
    per_thread : int
        Tasks in flight per worker thread.
    resources : mapping, optional
        ``resources=`` of each :meth:`distributed.Client.submit` (e.g. ``{"GPU": 1}``).
    step : callable, optional
        Called as each task finishes, before its outcome is yielded (progress).

    Yields
    ------
    item, (result, error)
        In the order the tasks finish: ``(result, None)``, or ``(None, "Type: message")``
        for a task that failed (or was cancelled).

    Raises
    ------
    ValueError
        If ``per_thread`` is not a whole number of at least 1 (at once, not when
        iterating).

    Notes
    -----
    The tasks still in flight are cancelled when the generator stops early: an
    exception (Ctrl-C) while it waits, or ``close()`` (use :func:`contextlib.closing`
    so that an exception in the caller's loop closes it at once). Items not yet taken
    are never submitted.
    """
    if isinstance(per_thread, bool) or not isinstance(per_thread, int) or per_thread < 1:
        raise ValueError(f"per_thread: expected a whole number of at least 1; got {per_thread!r}")
    return _stream(client, fn, iter(items), key, per_thread, resources, step)


def _stream(client: Any, fn: Callable[[T], Any], todo: Iterator[T],
            key: Callable[[T], str] | None, per_thread: int,
            resources: Mapping[str, float] | None, step: Callable[[], None] | None,
            ) -> Iterator[tuple[T, tuple[Any, str | None]]]:
    """Yield the outcomes of :func:`stream_outcomes` (its arguments checked)."""
    from dask.utils import funcname

    def submit(item: T) -> Any:
        stem = key(item) if key is not None else funcname(fn)
        return client.submit(fn, item, pure=False, resources=resources,
                             key=f"{stem}-{uuid.uuid4().hex[:8]}")

    finished = stream_futures(client, submit, todo, name=funcname(fn),
                              window=lambda: in_flight_window(client, per_thread))
    with closing(finished):
        for item, future in finished:
            outcome = _outcome(client, future)
            future.release()
            if step is not None:
                step()
            yield item, outcome


def stream_futures(client: Any, submit: Callable[[T], Any], items: Iterable[T], *,
                   window: Callable[[], int], name: str = "tasks",
                   ) -> Iterator[tuple[T, Any]]:
    """Keep a bounded number of tasks in flight; yield each (item, future) as it finishes.

    The one bounded streaming loop of the package: the engine's units and every other
    plate job (one task per model, per (field, timepoint), per field) go through it.
    Items are taken from ``items`` only when they are submitted: at most ``window()``
    tasks are in flight (re-read every :data:`WINDOW_SECONDS`, as workers join or leave),
    and the next is submitted as one finishes. The caller takes each finished future's
    outcome and releases it.

    Parameters
    ----------
    client : distributed.Client
    submit : callable
        ``submit(item)`` returns the item's future (``client.submit``, ``client.compute``).
    items : iterable
        Read lazily.
    window : callable
        How many tasks to keep in flight now (:func:`in_flight_window`).
    name : str
        What the tasks are, for the log.

    Yields
    ------
    item, future
        In the order the tasks finish.

    Raises
    ------
    SchedulerLostError
        When the client loses its scheduler (Dask then cancels every task in flight).

    Notes
    -----
    The tasks still in flight are cancelled when the generator stops early (an exception,
    Ctrl-C, or ``close()``); items not yet taken are never submitted.
    """
    from distributed import as_completed

    todo = iter(items)
    in_flight: dict[Any, T] = {}  # future: item
    finished = as_completed(loop=client.loop)  # this client's, not the default one's
    size, window_read = window(), time.monotonic()
    logger.debug("streaming %s: at most %d task(s) in flight", name, size)
    more = True
    try:
        while True:
            if time.monotonic() - window_read >= WINDOW_SECONDS:
                before, size = size, window()
                window_read = time.monotonic()
                if size != before:
                    logger.debug("streaming %s: at most %d task(s) in flight now", name, size)
            while more and len(in_flight) < size:
                try:
                    item = next(todo)
                except StopIteration:
                    more = False
                    break
                future = submit(item)
                in_flight[future] = item
                finished.add(future)
            if not in_flight:
                return
            # wait for a task to finish, or for the time to read the window again
            _wait_ready(finished, window_read + WINDOW_SECONDS)
            for future in finished.next_batch(block=False):
                lost = _lost(client) if future.status == "cancelled" else None
                if lost is not None:  # Dask cancels the futures of a client that lost it
                    raise lost
                yield in_flight.pop(future), future
    finally:
        if in_flight and client.status == "running":  # else Dask cancelled them already
            client.cancel(list(in_flight))


def _wait_ready(finished: Any, deadline: float) -> None:
    """Block until ``finished`` (``distributed.as_completed``) has a future, or the deadline.

    ``as_completed`` queues each finished future and then notifies its ``thread_condition``;
    waiting on it (the queue looked at under the condition's lock, so no notification is
    missed) returns as soon as a task finishes, where a sleep between looks would return
    up to a whole sleep later. Each wait is bounded (:data:`_WAIT_SECONDS`), so signals are
    handled; a distributed without the condition is polled (:data:`_POLL_SECONDS`).
    """
    condition = getattr(finished, "thread_condition", None)
    while not finished.has_ready():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if condition is None:
            time.sleep(min(left, _POLL_SECONDS))
            continue
        with condition:
            if not finished.has_ready():
                condition.wait(min(left, _WAIT_SECONDS))


def workers_lost(client: Any, since: float) -> list[dict[str, Any]]:
    """Return the workers the scheduler lost (not closed on purpose) since a time.

    Parameters
    ----------
    client : distributed.Client
    since : float
        ``time.time()`` at the start of the run (the scheduler's events carry its clock).

    Returns
    -------
    list of dict
        ``{"worker": address, "at": time.time() of the loss, "tasks_rescheduled": n}``
        each, from the scheduler's ``remove-worker`` events; empty when the scheduler
        keeps no events or does not answer.
    """
    lost: list[dict[str, Any]] = []
    try:
        events = client.get_events("all")
    except Exception:  # noqa: BLE001 - an old scheduler without events: nothing to report
        return lost
    for ts, msg in events:
        if ts >= since and isinstance(msg, dict) and msg.get("action") == "remove-worker" \
                and not msg.get("expected", False):
            lost.append({"worker": msg.get("worker"), "at": ts,
                         "tasks_rescheduled": len(msg.get("processing-tasks", ()))})
    return lost


@contextmanager
def recording(client: Any, report: str | None = None,
              stream: bool = False) -> Iterator[list[dict[str, Any]]]:
    """Record a run: Dask's performance report to ``report``, and the task stream.

    Yields a list that holds, once the block ends, the task stream's records (when
    ``stream``; each has ``key`` and ``startstops``).
    """
    from contextlib import ExitStack

    from distributed import get_task_stream, performance_report

    records: list[dict[str, Any]] = []
    with ExitStack() as stack:
        if report:
            stack.enter_context(performance_report(filename=report))
        ts = stack.enter_context(get_task_stream(client)) if stream else None
        yield records
    if ts is not None:
        records.extend(ts.data)

"""Logging of the command line: quiet by default, in the driver and in the workers.

``structfree-dask`` shows WARNING and above of its own, distributed's and cellpose's
loggers; ``-v`` shows INFO, ``-vv`` DEBUG (:func:`configure`). By default a few warnings
that say nothing to a user are hidden too (:data:`QUIET`, :data:`NOISE`).

The worker processes of a cluster started here (:func:`~.cluster.local_client`,
:func:`~.cluster.cuda_client`) set up their logging when they import distributed, from
dask's config files and ``DASK_*`` environment variables, before any of our code runs
there and without the driver's ``dask.config.set``. So the level reaches them in the
environment (``DASK_LOGGING__DISTRIBUTED`` and :data:`VERBOSITY_ENV`), and this module,
run in each worker as a preload (:func:`dask_setup`), applies the rest there: the hidden
warnings and cellpose's level (the workers run the network). Without
:data:`VERBOSITY_ENV` (the Python API) the preload changes nothing.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["VERBOSITY_ENV", "PRELOAD", "QUIET", "NOISE", "STORE_CONNECTIONS", "levels",
           "configure", "cli_verbosity", "with_preload", "ignore_ctrl_c", "dask_setup"]

#: Environment variable holding the command line's verbosity (0, 1 or 2) for its workers.
VERBOSITY_ENV = "STRUCTFREE_DASK_VERBOSITY"

#: Worker preload (``distributed.worker.preload``) that applies the verbosity there.
PRELOAD = __name__

#: Loggers hidden below ERROR by default (shown from ``-v`` on): distributed's
#: ``sizeof`` fails on deeply nested messages (the profiles of ``--performance-report``)
#: only to decide whether to serialise them off the event loop; the worker state
#: machine logs each task cancelled by Ctrl-C; ``gc`` reports time spent collecting.
QUIET: dict[str, int] = {
    "distributed.sizeof": logging.ERROR,
    "distributed.worker.state_machine": logging.ERROR,
    "distributed.gc": logging.ERROR,
}

#: (logger, message start) of warnings hidden by default: a task held the GIL for a few
#: seconds (the network and the flow integration do, by design); cellpose found cell
#: pixels but no cell in a region (the region then has no cells: not news); a worker's
#: traceback of a failed task (the run names each failed unit and its error itself); an
#: object store's HTTP sessions left open when its connection went away (the command says
#: itself that the store stopped answering).
NOISE: tuple[tuple[str, str], ...] = (
    ("distributed.core", "Event loop was unresponsive"),
    ("cellpose.dynamics", "no seeds found"),
    ("distributed.worker", "Compute Failed"),
    ("asyncio", "Unclosed client session"),
    ("asyncio", "Unclosed connector"),
)

_FORMAT = "%(levelname)s %(name)s: %(message)s"
#: Warning filter (``PYTHONWARNINGS``) hiding multiprocessing's resource tracker's count of
#: semaphores that a worker stopped by Ctrl-C did not release (the system frees them).
_TRACKER_WARNING = "ignore:resource_tracker:UserWarning"


def levels(verbosity: int) -> dict[str, int]:
    """Logger levels at a verbosity: 0 (default), 1 (``-v``) or 2 (``-vv``)."""
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[max(0, min(verbosity, 2))]
    web = logging.DEBUG if verbosity >= 2 else logging.WARNING  # dashboard requests
    out = {"structfree_dask": level, "cellpose": level, "distributed": level,
           "tornado": web, "bokeh": web}
    if verbosity <= 0:
        out.update(QUIET)
    return out


#: Logger of the record hidden by default when a client whose scheduler went away is closed:
#: its reconnection attempts, cancelled by the close, are logged as a bare
#: ``CancelledError`` traceback (the command says itself that the scheduler was lost).
CANCELLED_RECONNECT = "distributed.client"


class _DropCancelled(logging.Filter):
    """Drop records whose message is a ``CancelledError`` (a cancelled reconnection)."""

    def filter(self, record: logging.LogRecord) -> bool:
        import asyncio

        return not isinstance(record.msg, asyncio.CancelledError)


#: Logger of the records hidden by default when an object store's connection goes away
#: (the store stopped, or the run ends with requests in flight): the HTTP client's
#: orphaned write tasks, logged by asyncio with a traceback (its unclosed sessions are
#: :data:`NOISE`). The command says itself that the store stopped answering.
STORE_CONNECTIONS = "asyncio"


class _DropLostConnections(logging.Filter):
    """Drop asyncio's reports of a lost connection's orphaned tasks.

    An orphaned task is dropped only when it failed on a connection error or a timeout;
    everything else asyncio reports is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.msg if isinstance(record.msg, str) else ""
        if text.startswith("Task exception was never retrieved") and record.exc_info:
            return not isinstance(record.exc_info[1], ConnectionError | TimeoutError)
        return True


class _DropNoise(logging.Filter):
    """Drop records whose message starts with one of some texts."""

    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self.starts))


def _apply(verbosity: int) -> Callable[[], None]:
    """Set the levels and noise filters of :func:`levels` in this process; return an undo."""
    undo: list[Callable[[], None]] = []
    for name, level in levels(verbosity).items():
        lg = logging.getLogger(name)
        undo.append(lambda lg=lg, before=lg.level: lg.setLevel(before))
        lg.setLevel(level)
    if verbosity <= 0:
        by_logger: dict[str, list[str]] = {}
        for name, start in NOISE:
            by_logger.setdefault(name, []).append(start)
        for name, starts in by_logger.items():
            lg = logging.getLogger(name)
            drop = _DropNoise(tuple(starts))
            lg.addFilter(drop)
            undo.append(lambda lg=lg, drop=drop: lg.removeFilter(drop))
        for name, drop in ((CANCELLED_RECONNECT, _DropCancelled()),
                           (STORE_CONNECTIONS, _DropLostConnections())):
            lg = logging.getLogger(name)
            lg.addFilter(drop)
            undo.append(lambda lg=lg, drop=drop: lg.removeFilter(drop))

    def undo_all() -> None:
        for step in reversed(undo):
            step()

    return undo_all


def cli_verbosity() -> int | None:
    """Return the command line's verbosity (:data:`VERBOSITY_ENV`); None outside it."""
    try:
        return int(os.environ[VERBOSITY_ENV])
    except (KeyError, ValueError):
        return None


def configure(verbosity: int) -> Callable[[], None]:
    """Set up the command line's logging in this process and for the workers it starts.

    Parameters
    ----------
    verbosity : int
        0: WARNING (and :data:`QUIET`, :data:`NOISE` hidden); 1: INFO; 2: DEBUG.

    Returns
    -------
    callable
        Undoes what this changed (levels, filters, environment, dask config); for
        callers of :func:`structfree_dask.cli.main` in a longer-lived process.
    """
    import dask

    level = levels(verbosity)
    env = {VERBOSITY_ENV: str(verbosity),
           # distributed's level in processes that import it later: the workers
           "DASK_LOGGING__DISTRIBUTED": logging.getLevelName(level["distributed"]).lower()}
    if verbosity <= 0:  # multiprocessing's tracker counting what a Ctrl-C'd worker left
        env["PYTHONWARNINGS"] = ",".join(
            w for w in (os.environ.get("PYTHONWARNINGS"), _TRACKER_WARNING) if w)
    before_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    # ... and in this process, if distributed is imported after this (its logging setup
    # then applies dask's "logging" config and would reset the levels set below)
    config = dask.config.set({"logging": {name: logging.getLevelName(lv).lower()
                                          for name, lv in level.items()
                                          if name.startswith("distributed")}})
    root = logging.getLogger()
    before_root = root.level
    logging.basicConfig(level=level["structfree_dask"], format=_FORMAT)
    root.setLevel(level["structfree_dask"])  # also where a handler was there before
    undo_levels = _apply(verbosity)

    def undo() -> None:
        undo_levels()
        root.setLevel(before_root)
        config.__exit__(None, None, None)
        for k, v in before_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    return undo


def with_preload(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` plus this module as a worker preload, when the command line runs."""
    if cli_verbosity() is None:
        return config
    import dask

    preload = dask.config.get("distributed.worker.preload", default=[]) or []
    preload = [preload] if isinstance(preload, str) else list(preload)
    if PRELOAD in preload:
        return config
    out = {**config, "distributed.worker.preload": [*preload, PRELOAD]}
    argv = dask.config.get("distributed.worker.preload-argv", default=[]) or []
    if argv and not isinstance(argv[0], str):  # one argument list per preload
        out["distributed.worker.preload-argv"] = [*argv, []]
    return out


def ignore_ctrl_c() -> None:
    """Ignore Ctrl-C in a worker process of the command line: it is the driver's to handle.

    A terminal sends Ctrl-C to every process of its foreground group; a worker would
    print a traceback while the driver stops the run cleanly (and records what is done).
    """
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def dask_setup(worker: Any = None) -> None:
    """Worker preload: apply the command line's verbosity in this worker process.

    distributed's own loggers already print (at the level of ``DASK_LOGGING__DISTRIBUTED``);
    the others (cellpose's, ours) get a handler on stderr in distributed's format.
    """
    verbosity = cli_verbosity()
    if verbosity is None:
        return
    ignore_ctrl_c()
    _apply(verbosity)
    root = logging.getLogger()
    if not any(getattr(h, "_structfree_dask", False) for h in root.handlers):
        import dask

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(
            dask.config.get("distributed.admin.log-format", default=_FORMAT)))
        handler._structfree_dask = True  # type: ignore[attr-defined]
        root.addHandler(handler)

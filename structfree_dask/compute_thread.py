"""One long-lived compute thread per process for the heavy steps (network, integration).

A Dask worker runs tasks on several threads. The heavy steps (the network's forward
pass and flow integration) already use every torch thread, so running two of them at
once gains little; and glibc gives each calling thread its own heap arena, which keeps
its peak after the step is done. Steps run from whichever task thread is free would
leave one such peak per thread (measured: about +150 MiB per extra thread for a forward
pass of 16 tiles). Running them all on one thread, one at a time, keeps a worker's
memory at one step's peak whatever the number of task threads, while reading,
normalizing, encoding and writing still overlap with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["run_heavy", "release_free_memory"]

T = TypeVar("T")

_LOCK = threading.Lock()
_EXECUTOR: list[ThreadPoolExecutor] = []
_NAME = "structfree-compute"


def _executor() -> ThreadPoolExecutor:
    with _LOCK:
        if not _EXECUTOR:
            _EXECUTOR.append(ThreadPoolExecutor(1, thread_name_prefix=_NAME))
        return _EXECUTOR[0]


def release_free_memory() -> None:
    """Give the heap's free pages back to the OS (glibc ``malloc_trim``; no-op elsewhere)."""
    if _TRIM:
        _TRIM[0](0)


def _find_trim() -> list:
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return [libc.malloc_trim]
    except (OSError, AttributeError):
        return []


_TRIM = _find_trim()


def _heavy(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    try:
        return fn(*args, **kwargs)
    finally:
        release_free_memory()


def run_heavy(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run ``fn(*args, **kwargs)`` on this process's compute thread and return its result.

    Calls made from the compute thread itself run directly (no deadlock when heavy
    steps nest). Exceptions propagate to the caller.

    Examples
    --------
    >>> run_heavy(sum, [1, 2, 3])
    6
    """
    if threading.current_thread().name.startswith(_NAME):
        return fn(*args, **kwargs)
    return _executor().submit(_heavy, fn, args, kwargs).result()

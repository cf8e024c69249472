"""``structfree-dask`` and ``python -m structfree_dask``: the command line, Ctrl-C safe.

A Ctrl-C while the command line's modules are still loading ends the command with
status 130 and one line, instead of a traceback; from then on
:func:`structfree_dask.cli.main` handles it.
"""

from __future__ import annotations

import signal
import sys
import types

__all__ = ["run"]

if "__mp_main__" in sys.modules:  # pragma: no cover - runs in worker processes
    # a worker process that the command's local cluster spawns runs the command's script
    # first (multiprocessing's "spawn"): from its first instant Ctrl-C is the driver's
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _drop_abandoned_coroutines(unraisable: sys.UnraisableHookArgs) -> None:
    """Hide the errors of coroutines an object store's client left pending at exit.

    When a store stops answering, s3fs/aiobotocore requests still pending when the command
    ends are closed as the interpreter exits, and each prints an ``Exception ignored``
    traceback after the command's own last line (which says what happened). Other
    unraisable errors are shown as usual.
    """
    if not isinstance(unraisable.object, types.CoroutineType):
        sys.__unraisablehook__(unraisable)


def run() -> int:
    """Run the command line; return its exit status."""
    try:
        from .cli import main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: nothing was done\n")
        return 130
    status = main()
    sys.unraisablehook = _drop_abandoned_coroutines  # from here on: the exit
    return status


if __name__ == "__main__":
    sys.exit(run())

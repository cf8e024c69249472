"""Ctrl-C and SIGTERM, noticed from the first instant of a command to its last.

A ``KeyboardInterrupt`` raised while a library is busy (a cluster starting, an event loop
waiting) can be swallowed there, and the run would then finish as if nothing happened.
:func:`watch` installs handlers that *record* the signal before raising, so that the
command line can check again at its own checkpoints (:func:`raise_if_interrupted`) and
still stop, with the exit status of the signal: 130 for Ctrl-C (SIGINT), 143 for SIGTERM.
Where Python cannot raise at all (a signal that lands in a weak reference's callback, as
the import system's locks have, or in a ``__del__``), it would print the interrupt as an
"Exception ignored" traceback; while :func:`watch` runs, that one is not printed: it is
recorded, and the next checkpoint stops the command.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["deferred", "interrupted_by", "raise_if_interrupted", "watch"]

_STATE: dict[str, int | None] = {"signal": None}


def interrupted_by() -> int | None:
    """Return the signal number that interrupted the command (None: none did)."""
    return _STATE["signal"]


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if a watched signal arrived (even if it was swallowed)."""
    if _STATE["signal"] is not None:
        raise KeyboardInterrupt


def _handler(signum: int, frame: Any) -> None:
    _STATE["signal"] = signum
    raise KeyboardInterrupt


def _quiet_unraisable(previous: Callable[[Any], Any]) -> Callable[[Any], None]:
    """Return an unraisable hook that drops interrupts already recorded, else calls ``previous``."""

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and _STATE["signal"] is not None:
            return  # recorded: the command stops at its next checkpoint
        previous(unraisable)

    return hook


@contextmanager
def watch() -> Iterator[Callable[[], int | None]]:
    """Record SIGINT and SIGTERM (and raise ``KeyboardInterrupt``) while the block runs.

    Outside the main thread (where handlers cannot be set) nothing is installed.
    Yields :func:`interrupted_by`.

    Examples
    --------
    >>> with watch() as by:
    ...     by() is None
    True
    """
    _STATE["signal"] = None
    if threading.current_thread() is not threading.main_thread():
        yield interrupted_by
        return
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    ignored = {s for s, h in before.items() if h is signal.SIG_IGN}
    for s in before:
        if s not in ignored:  # a signal the caller chose to ignore stays ignored
            signal.signal(s, _handler)
    hook = sys.unraisablehook
    sys.unraisablehook = _quiet_unraisable(hook)
    try:
        yield interrupted_by
    finally:
        sys.unraisablehook = hook
        for s, h in before.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


@contextmanager
def deferred() -> Iterator[Callable[[], bool]]:
    """Hold SIGINT and SIGTERM back while the block runs; yield whether one arrived.

    For work that must not be cut in the middle (a cluster half started is left to
    atexit handlers that fail noisily): a signal that arrives is recorded (as
    :func:`watch` records it) and the caller decides what to do once the block is over.
    Outside the main thread nothing is changed.

    Examples
    --------
    >>> with deferred() as arrived:
    ...     pass
    >>> arrived()
    False
    """
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def record(signum: int, frame: Any) -> None:
        got.append(signum)
        _STATE["signal"] = signum

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s, h in before.items():
        if h is not signal.SIG_IGN:
            signal.signal(s, record)
    try:
        yield lambda: bool(got)
    finally:
        for s, h in before.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)

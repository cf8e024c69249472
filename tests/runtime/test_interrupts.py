"""Ctrl-C and SIGTERM recorded, even when a library swallows the KeyboardInterrupt."""

import os
import signal
import sys
import time

import pytest

from structfree_dask.runtime import interrupts
from structfree_dask.runtime.interrupts import deferred, raise_if_interrupted, watch


def _signal_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.2)  # the handler runs in the main thread at the next bytecode


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_swallowed_interrupt_is_still_seen(signum):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with watch() as interrupted_by:
        try:
            _signal_self(signum)
        except KeyboardInterrupt:
            pass  # what a library might do
        assert interrupted_by() == signum
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_deferred_holds_the_signal_back_until_the_block_is_over():
    with watch() as interrupted_by:
        with deferred() as arrived:
            _signal_self(signal.SIGINT)  # no KeyboardInterrupt here
            assert arrived()
        assert interrupted_by() == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()


def test_nothing_happens_without_a_signal():
    with watch() as interrupted_by:
        raise_if_interrupted()
        assert interrupted_by() is None



#: Ctrl-C landing in a ``__del__`` (as in a weak reference's callback, which the import
#: system's locks have): Python cannot raise it there and prints it as "Exception ignored".
_LANDS_IN_DEL = """
import signal, sys
from structfree_dask.runtime.interrupts import raise_if_interrupted, watch

class RaisesTheSignal:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # the handler runs here, inside __del__

hook = sys.unraisablehook
with watch() as by:
    RaisesTheSignal()  # collected at once: the interrupt cannot leave __del__
    print(by() == signal.SIGINT)
    try:
        raise_if_interrupted()
    except KeyboardInterrupt:
        print("stopped at the checkpoint")
print(sys.unraisablehook is hook)
"""


def test_an_interrupt_where_python_cannot_raise_is_recorded_not_printed():
    """In a process of its own: pytest replaces the unraisable hook during tests."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", _LANDS_IN_DEL], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["True", "stopped at the checkpoint", "True"]
    assert out.stderr == ""  # no "Exception ignored ... KeyboardInterrupt"


def test_the_unraisable_hook_passes_on_what_is_not_a_recorded_interrupt():
    from types import SimpleNamespace

    seen = []
    hook = interrupts._quiet_unraisable(seen.append)
    with watch():
        hook(SimpleNamespace(exc_value=ValueError("x")))
        hook(SimpleNamespace(exc_value=KeyboardInterrupt()))  # no signal recorded
    assert [type(u.exc_value) for u in seen] == [ValueError, KeyboardInterrupt]

"""Ctrl-C and SIGTERM recorded, even when a library swallows the KeyboardInterrupt."""

import os
import signal
import time

import pytest

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

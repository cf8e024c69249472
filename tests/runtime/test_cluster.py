"""Tasks streamed through a bounded window (``stream_outcomes``), on a real LocalCluster."""

from __future__ import annotations

import contextlib
import math
import time
import uuid

import pytest

from structfree_dask.runtime import cluster
from structfree_dask.runtime.cluster import (
    MIN_IN_FLIGHT,
    TASKS_PER_THREAD,
    close_client,
    in_flight_window,
    local_client,
    stream_outcomes,
)

#: Seconds a held task waits for the test to release it: longer than any test here.
HOLD_S = 600.0
#: Seconds the scheduler is given to forget the tasks of a stream.
SETTLE_S = 30.0


class Counted:
    """Items handed out one at a time, as a stream takes them.

    ``in_flight[i]``: items taken and not yet answered once the i-th was taken (the
    caller counts ``answered``).
    """

    def __init__(self, items):
        self.items = list(items)
        self.answered = 0
        self.in_flight: list[int] = []

    def __iter__(self):
        for n, item in enumerate(self.items, 1):
            self.in_flight.append(n - self.answered)
            yield item

    @property
    def taken(self) -> int:
        return len(self.in_flight)


def scheduler_keys(client, stem: str) -> list[str]:
    """Keys the scheduler holds that start with ``stem``, once it let go of the others."""
    def keys(dask_scheduler):
        return [str(k) for k in dask_scheduler.tasks if str(k).startswith(stem)]

    deadline = time.monotonic() + SETTLE_S
    left = client.run_on_scheduler(keys)
    while left and time.monotonic() < deadline:
        time.sleep(SETTLE_S / 300)
        left = client.run_on_scheduler(keys)
    return left


@pytest.mark.parametrize("per_thread", [1, TASKS_PER_THREAD + 1])
def test_at_most_the_window_in_flight_and_each_error_reported(cluster_client, per_thread):
    """Items are taken as tasks finish, never more than the window in flight; a failed
    task is that item's outcome while the others complete; nothing is left behind."""
    threads = sum(cluster_client.nthreads().values())
    window = max(MIN_IN_FLIGHT, per_thread * threads)
    assert in_flight_window(cluster_client, per_thread) == window
    values = [float((-1) ** i * i) for i in range(3 * window + 1)]  # odd i: sqrt(<0) fails
    items = Counted(values)
    stem = f"test-window-{uuid.uuid4().hex}"
    steps, got = [], {}
    for value, outcome in stream_outcomes(cluster_client, math.sqrt, items, per_thread=per_thread,
                                          key=lambda _: stem,
                                          step=lambda: steps.append(items.answered)):
        items.answered += 1
        got[value] = outcome
    assert max(items.in_flight) == window  # the window was filled, never overrun
    assert items.taken == len(values) == len(got)
    assert steps == list(range(len(values)))  # one step per task, before its outcome
    for value, (result, error) in got.items():
        if value < 0:
            assert result is None and error == "ValueError: math domain error", value
        else:
            assert error is None and result == math.sqrt(value), value
    assert scheduler_keys(cluster_client, stem) == []  # finished futures released


def test_closing_the_stream_cancels_what_is_in_flight(cluster_client):
    """Stopping early (close, an exception) cancels the tasks in flight; items not taken
    are never submitted."""
    from distributed import Event

    release = Event(f"release-{uuid.uuid4().hex}", client=cluster_client)
    window = in_flight_window(cluster_client)
    items = Counted([0.0] + [HOLD_S] * (2 * window))  # the first ends at once, the rest wait
    stem = f"test-cancel-{uuid.uuid4().hex}"
    stream = stream_outcomes(cluster_client, release.wait, items, key=lambda _: stem)
    try:
        value, (result, error) = next(stream)
        assert (value, result, error) == (0.0, False, None)  # wait(0): not set, no error
        stream.close()
        assert items.taken == window
        assert scheduler_keys(cluster_client, stem) == []
    finally:
        release.set()  # let the held tasks (cancelled, still running) end


def test_the_window_follows_workers_that_join(monkeypatch):
    """A worker that joins while tasks stream widens the window."""
    monkeypatch.setattr(cluster, "WINDOW_SECONDS", 0.0)  # read it at every look
    client = local_client(n_workers=1, threads_per_worker=1)
    try:
        before = in_flight_window(client)
        items = Counted([0.0] * (4 * before))  # enough to fill a wider window after one
        joined_at = None
        for _ in stream_outcomes(client, time.sleep, items):
            items.answered += 1
            if joined_at is None:
                client.cluster.scale(2)
                client.wait_for_workers(2)
                joined_at = items.taken
        after = in_flight_window(client)
        assert after > before
        assert max(items.in_flight[:joined_at]) == before
        assert max(items.in_flight[joined_at:]) == after
    finally:
        close_client(client)


def test_a_finished_task_ends_the_wait_at_once(cluster_client, monkeypatch):
    """The stream wakes when a task finishes (as_completed's condition), not when a timer
    runs out: with each wait allowed a minute, a 0.3 s task still ends it in seconds."""
    from distributed import as_completed

    monkeypatch.setattr(cluster, "_WAIT_SECONDS", 60.0)
    finished = as_completed(loop=cluster_client.loop)
    finished.add(cluster_client.submit(time.sleep, 0.3, pure=False))
    start = time.monotonic()
    cluster._wait_ready(finished, start + 120.0)
    assert finished.has_ready()
    assert time.monotonic() - start < 30.0


def test_the_wait_ends_at_its_deadline(cluster_client):
    """Nothing finished: the wait returns at the deadline (to read the window again)."""
    from distributed import Event, as_completed

    release = Event(f"release-{uuid.uuid4().hex}", client=cluster_client)
    finished = as_completed(loop=cluster_client.loop)
    finished.add(cluster_client.submit(release.wait, HOLD_S, pure=False))
    try:
        start = time.monotonic()
        cluster._wait_ready(finished, start + 0.3)
        assert not finished.has_ready()
        assert time.monotonic() - start >= 0.3
    finally:
        release.set()


@pytest.mark.parametrize("per_thread", [0, 1.5, True])
def test_per_thread_is_checked_at_once(per_thread):
    with pytest.raises(ValueError, match="per_thread: expected a whole number of at least 1"):
        stream_outcomes(None, math.sqrt, [], per_thread=per_thread)


def test_a_scheduler_that_goes_mid_stream_is_said_so(tmp_path):
    """The scheduler killed while tasks stream: SchedulerLostError at once, naming its
    address and saying what to do (not Dask's cancelled futures or closed streams).
    The multi-host case: tests/runtime/test_topology.py."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    from structfree_dask.runtime.cluster import SchedulerLostError, connect

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], cwd=tmp_path, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        client = connect(address, timeout=30)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
             "--no-nanny", "--no-dashboard", "--local-directory", str(tmp_path)],
            cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
        client.wait_for_workers(1, timeout=60)
        try:
            items = Counted([0.0] + [1.0] * 20)
            with pytest.raises(SchedulerLostError) as lost:
                for n, _ in enumerate(stream_outcomes(client, time.sleep, items)):
                    if n == 0:
                        gone = time.monotonic()
                        os.killpg(procs[0].pid, signal.SIGKILL)
            assert time.monotonic() - gone < 10
            text = str(lost.value)
            assert text.startswith(f"lost the connection to the Dask scheduler at {address}")
            assert "rerun the same command to resume" in text
        finally:
            close_client(client)
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)

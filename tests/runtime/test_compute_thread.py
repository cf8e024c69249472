"""The process's one compute thread: results, errors, nesting, one call at a time, trims."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from structfree_dask.runtime import compute_thread
from structfree_dask.runtime.compute_thread import release_free_memory, run_heavy

#: Seconds a test waits for a call that would deadlock if nesting were broken.
DEADLOCK_S = 20.0


def _where() -> tuple[str, int]:
    thread = threading.current_thread()
    return thread.name, thread.ident


def test_the_call_runs_on_the_compute_thread_and_returns_its_result():
    name, ident = run_heavy(_where)
    assert name.startswith("structfree-compute") and ident != threading.get_ident()
    assert run_heavy(_where) == (name, ident)  # the same long-lived thread every time
    a = np.arange(6).reshape(2, 3)
    out = run_heavy(np.sum, a, axis=1, dtype=np.int16)  # positional and keyword arguments
    assert out.tolist() == [3, 12] and out.dtype == np.int16
    assert run_heavy(lambda: None) is None
    same = object()
    assert run_heavy(lambda x: x, same) is same  # returned as it is, no copy


def test_the_calls_exception_is_raised_to_the_caller_as_itself():
    error = KeyError("missing tile")

    def fail():
        raise error

    with pytest.raises(KeyError, match="missing tile") as caught:
        run_heavy(fail)
    assert caught.value is error
    with pytest.raises(ZeroDivisionError):
        run_heavy(lambda: 1 / 0)
    assert run_heavy(int, "7") == 7  # the thread still works after an error


def test_a_nested_heavy_call_runs_directly_without_deadlock():
    def outer():
        return _where(), run_heavy(_where), run_heavy(run_heavy, _where)

    done: list = []
    caller = threading.Thread(target=lambda: done.append(run_heavy(outer)), daemon=True)
    caller.start()
    caller.join(DEADLOCK_S)
    assert not caller.is_alive(), "a nested run_heavy deadlocked"
    (first, second, third), = done
    assert first == second == third and first[0].startswith("structfree-compute")


def test_calls_from_many_threads_run_one_at_a_time():
    state = {"now": 0, "most": 0}
    lock = threading.Lock()

    def heavy(i):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.01)
        with lock:
            state["now"] -= 1
        return i * i, threading.current_thread().name

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: run_heavy(heavy, i), range(12)))
    assert [r for r, _ in results] == [i * i for i in range(12)]
    assert len({name for _, name in results}) == 1
    assert state["most"] == 1


def test_the_heap_is_trimmed_after_each_call_even_a_failed_one(monkeypatch):
    trims: list[tuple[int, str]] = []
    monkeypatch.setattr(compute_thread, "_TRIM",
                        [lambda pad: trims.append((pad, threading.current_thread().name))])
    assert run_heavy(len, "abc") == 3
    with pytest.raises(ValueError):
        run_heavy(int, "x")
    run_heavy(run_heavy, len, "nested")  # the nested call is part of the outer one
    assert [pad for pad, _ in trims] == [0, 0, 0]
    assert all(name.startswith("structfree-compute") for _, name in trims)
    release_free_memory()
    assert trims[-1] == (0, threading.current_thread().name)  # also callable directly


def test_release_free_memory_without_malloc_trim_does_nothing(monkeypatch):
    monkeypatch.setattr(compute_thread, "_TRIM", [])
    assert release_free_memory() is None
    assert run_heavy(abs, -2) == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_free_memory_calls_glibcs_malloc_trim():
    assert compute_thread._TRIM and compute_thread._TRIM[0].__name__ == "malloc_trim"
    blocks = [bytearray(1 << 16) for _ in range(64)]  # something to free
    del blocks
    assert release_free_memory() is None

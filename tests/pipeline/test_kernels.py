"""pipeline.kernels: numba kernels cached where they can be, compiled anyway where not."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from structfree_dask.pipeline.kernels import kernel


@kernel("int64(int64)")
def _triple(x):  # pragma: no cover - compiled
    return 3 * x


def test_a_kernel_is_compiled_when_decorated_and_cached_on_disk():
    assert _triple.signatures and _triple(4) == 12
    assert type(_triple._cache).__name__ == "FunctionCache"  # numba's disk cache, not Null


def _module(folder, name: str, extra: str = "") -> None:
    """A module ``name`` in ``folder`` with ``triple``, a kernel made by :func:`kernel`."""
    (folder / f"{name}.py").write_text(textwrap.dedent("""
        from numba import njit
        from structfree_dask.pipeline.kernels import kernel

        @kernel("int64(int64)")
        def triple(x):
            return 3 * x
    """) + textwrap.dedent(extra))


def _run(code: str, folder, **env: str) -> list[str]:
    """Run ``code`` in a new Python process that imports from ``folder``; its output lines."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, check=True,
                          env={**os.environ, "PYTHONPATH": str(folder), **env}
                          ).stdout.splitlines()


def test_without_a_place_for_the_cache_the_kernel_is_compiled_for_the_process(tmp_path):
    _module(tmp_path, "kernels_here", """
        def plain_cached():
            njit("int64(int64)", cache=True)(lambda x: x)
    """)
    out = _run("""
        import kernels_here
        print(kernels_here.triple(5), type(kernels_here.triple._cache).__name__)
        try:
            kernels_here.plain_cached()
        except RuntimeError as err:
            print("numba alone:", str(err).split(":")[0])
    """, tmp_path,
        # numba's locator for zip files only: no place to cache a file's kernels
        NUMBA_CACHE_LOCATOR_CLASSES="ZipCacheLocator")
    assert out == ["15 NullCache",
                   "numba alone: cannot cache function 'plain_cached.<locals>.<lambda>'"]


def test_a_cache_that_cannot_be_read_is_compiled_again(tmp_path):
    _module(tmp_path, "cached_here")
    code = ("import cached_here; "
            "print(cached_here.triple(7), type(cached_here.triple._cache).__name__)")
    assert _run(code, tmp_path) == ["21 FunctionCache"]  # compiled and cached on disk
    cached = list((tmp_path / "__pycache__").glob("cached_here.triple-*.nbc"))
    assert cached
    for path in cached:
        path.write_bytes(b"not a numba cache")
    assert _run(code, tmp_path) == ["21 NullCache"]  # could not be loaded: compiled again

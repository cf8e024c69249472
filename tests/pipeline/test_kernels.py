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


def test_without_a_place_for_the_cache_the_kernel_is_compiled_for_the_process(tmp_path):
    module = tmp_path / "kernels_here.py"
    module.write_text(textwrap.dedent("""
        from numba import njit
        from structfree_dask.pipeline.kernels import kernel

        @kernel("int64(int64)")
        def triple(x):
            return 3 * x

        def plain_cached():
            njit("int64(int64)", cache=True)(lambda x: x)
    """))
    code = textwrap.dedent("""
        import kernels_here
        print(kernels_here.triple(5), type(kernels_here.triple._cache).__name__)
        try:
            kernels_here.plain_cached()
        except RuntimeError as err:
            print("numba alone:", str(err).split(":")[0])
    """)
    env = {**os.environ, "PYTHONPATH": str(tmp_path),
           # numba's locator for zip files only: no place to cache a file's kernels
           "NUMBA_CACHE_LOCATOR_CLASSES": "ZipCacheLocator"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True, env=env).stdout.splitlines()
    assert out == ["15 NullCache",
                   "numba alone: cannot cache function 'plain_cached.<locals>.<lambda>'"]


def test_a_cache_that_cannot_be_read_is_compiled_again(tmp_path):
    module = tmp_path / "cached_here.py"
    module.write_text(textwrap.dedent("""
        from structfree_dask.pipeline.kernels import kernel

        @kernel("int64(int64)")
        def triple(x):
            return 3 * x
    """))
    code = ("import cached_here; "
            "print(cached_here.triple(7), type(cached_here.triple._cache).__name__)")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def run() -> str:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300, check=True, env=env).stdout.strip()

    assert run() == "21 FunctionCache"  # compiled and cached on disk
    cached = list((tmp_path / "__pycache__").glob("cached_here.triple-*.nbc"))
    assert cached
    for path in cached:
        path.write_bytes(b"not a numba cache")
    assert run() == "21 NullCache"  # the cache could not be loaded: compiled without it

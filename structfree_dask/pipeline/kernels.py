"""Numba kernels cached on disk where a cache can be written, compiled at each start where not.

numba raises when a function asks for a disk cache and no location for one can be written
(a read-only installation without a writable home or ``NUMBA_CACHE_DIR``), or when a
cached file cannot be loaded; cellpose's own ``dynamics`` module fails to import there.
:func:`kernel` compiles such a function without the cache instead: slower to start (about
0.3 s per kernel), the same code.

Examples
--------
>>> @kernel("float64(float64)")
... def twice(x):
...     return 2 * x
>>> twice(1.5)
3.0
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from numba import njit

__all__ = ["kernel"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., object])


def kernel(signature: str) -> Callable[[F], F]:
    """Return a decorator compiling a function for ``signature`` (no GIL), cached if it can be.

    Parameters
    ----------
    signature : str
        numba's signature: the function is compiled when decorated, as cellpose's are.
    """
    def compile_kernel(func: F) -> F:
        try:
            return njit(signature, nogil=True, cache=True)(func)
        except Exception as err:  # no place for a cache, or a cache that cannot be read
            logger.info("numba's cache of %s cannot be used here (%s: %s): compiled for "
                        "this process only", func.__qualname__, type(err).__name__, err)
            return njit(signature, nogil=True)(func)  # a real compile error raises here
    return compile_kernel

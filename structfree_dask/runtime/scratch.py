"""Arrays that wait on a worker's local disk instead of in its memory.

A region's flow sums are needed by its own integration and by those of its neighbours,
so they wait until the next row of regions is integrated: in a row-major sweep about
three rows of them are alive at once. That grows with the field's *width* (about 180 MB
of float16 sums for an 8192 px wide field with 1024 px tiles, 1.1 GB at 50 000 px), so a
worker's memory would depend on the field size. Kept as a :class:`DiskArray` in the
worker's local directory (Dask's ``temporary-directory``), they cost the worker only the
slices an integration reads.

A :class:`DiskArray` reads its file back only when sliced; its file is removed when the
object is garbage-collected (Dask releases a task result as soon as no waiting task needs
it). Sent to another worker, it travels as the plain array it holds.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from typing import Any

import numpy as np

__all__ = ["DiskArray", "scratch_directory"]


def scratch_directory() -> str:
    """Return the system's temporary directory (workers pass their own local directory)."""
    return tempfile.gettempdir()


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


class DiskArray:
    """A read-only array kept in a ``.npy`` file; slicing reads only the slice.

    Parameters
    ----------
    array : numpy.ndarray
        The data (written once, then no longer referenced).
    directory : str, optional
        Where to put the file (default: :func:`scratch_directory`).

    Examples
    --------
    >>> a = DiskArray(np.arange(12, dtype="float16").reshape(3, 4))
    >>> a.shape, a.dtype
    ((3, 4), dtype('float16'))
    >>> a[1:, 2].tolist()
    [6.0, 10.0]
    >>> np.array_equal(np.asarray(a), np.arange(12).reshape(3, 4))
    True
    """

    def __init__(self, array: np.ndarray, directory: str | None = None) -> None:
        arr = np.ascontiguousarray(array)
        fd, path = tempfile.mkstemp(prefix="structfree-", suffix=".npy",
                                    dir=directory or scratch_directory())
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
        except BaseException:
            _remove(path)
            raise
        self.path = path
        self.shape: tuple[int, ...] = tuple(arr.shape)
        self.dtype = arr.dtype
        self._finalizer = weakref.finalize(self, _remove, path)

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes held on disk."""
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __getitem__(self, key: Any) -> np.ndarray:
        mapped = np.load(self.path, mmap_mode="r", allow_pickle=False)
        try:
            return np.array(mapped[key])
        finally:
            del mapped

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __reduce__(self) -> tuple[Any, tuple[np.ndarray]]:
        # another process has no access to this file: send the data itself
        return np.asarray, (self[...],)

    def __sizeof__(self) -> int:  # what it costs in memory, for Dask's accounting
        return 256

    def __repr__(self) -> str:
        return f"DiskArray(shape={self.shape}, dtype={self.dtype}, path={self.path!r})"

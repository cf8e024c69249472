"""Zarr arrays opened once per process, checked against the plan.

Opening a zarr array reads its metadata: on an object store each opening is a request (two
for an image: its group, then the array), on a local disk a file read and a parse (about
half a millisecond, a dozen times per measured unit: a tenth of its time). A worker that
segments or measures unit after unit of the same fields opened the same arrays again for
each unit. :func:`cached_array` keeps the arrays a process opened, at most
:data:`MAX_OPEN` of them, the least recently used dropped first.

A cached array is used only when its shape, chunks and dtype are those the caller expects,
which come from the driver's plan (``ImageInfo.levels``, ``LabelImage.shapes``): after
``--overwrite`` recreated a label image with other metadata, or a time-lapse grew by
appended timepoints, the plan no longer matches the cached array, and it is opened again.
An array recreated with the same metadata is the same array to zarr (chunks are read and
written under the same keys), so reusing its opened handle is correct. On a local disk the
array's metadata file is checked as well (one ``stat``): a handle is reused only while that
file is the one it was opened from, so an array deleted (or rewritten) since is opened again
and a deleted one fails as it would without the cache; symlink checks still run on every
write (:mod:`._safepath`).

Examples
--------
>>> import zarr
>>> opened = []
>>> def opener():
...     opened.append(1)
...     return zarr.create_array(store={}, shape=(4,), chunks=(2,), dtype="u4")
>>> a = cached_array("memory://demo", "x", "r", ((4,), (2,), "uint32"), opener)
>>> b = cached_array("memory://demo", "x", "r", ((4,), (2,), "uint32"), opener)
>>> a is b, len(opened)
(True, 1)
>>> c = cached_array("memory://demo", "x", "r", ((8,), (2,), "uint32"), opener)  # grew
>>> c is a, len(opened)
(False, 2)
>>> clear_array_cache()
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ._location import is_url

__all__ = ["MAX_OPEN", "cached_array", "clear_array_cache"]

#: Largest number of arrays a process keeps open.
MAX_OPEN = 256

#: What the plan says an array is: (shape, chunks, dtype name).
Expected = tuple[tuple[int, ...], tuple[int, ...], str]

#: (store, path, mode): (array, the local metadata file's stamp or None).
_OPEN: OrderedDict[tuple[str, str, str], tuple[Any, tuple | None]] = OrderedDict()
_LOCK = threading.Lock()


def _matches(array: Any, expect: Expected) -> bool:
    shape, chunks, dtype = expect
    return (tuple(array.shape) == tuple(shape) and tuple(array.chunks) == tuple(chunks)
            and np.dtype(array.dtype).name == np.dtype(dtype).name)


def _stamp(store: str, path: str) -> tuple | None:
    """Return the identity of a local array's metadata file (v3, else v2), or None."""
    folder = os.path.join(os.fspath(store), *path.split("/"))
    for name in ("zarr.json", ".zarray"):
        try:
            st = os.stat(os.path.join(folder, name))
        except OSError:
            continue
        return name, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size
    return None


def cached_array(store: str, path: str, mode: str, expect: Expected,
                 open_array: Callable[[], Any]) -> Any:
    """Return the array at ``path`` of ``store``, opened by ``open_array`` once per process.

    Parameters
    ----------
    store : str
        The store's root: a URL, or a local folder (whose handles are reused only while
        the array's metadata file is unchanged).
    path : str
        The array's path inside the store.
    mode : str
        The mode it is opened with (part of the key: a read-only handle is never given to a
        writer).
    expect : (shape, chunks, dtype)
        What the caller's plan says the array is; a cached array that differs is opened
        again (and replaces the cached one).
    open_array : callable
        Opens the array (its errors go to the caller).
    """
    stamp = None
    if not is_url(store):
        stamp = _stamp(store, path)
        if stamp is None:  # not there (or not readable): the opener says what is wrong
            return open_array()
    key = (os.fspath(store) if isinstance(store, os.PathLike) else store, path, mode)
    with _LOCK:
        entry = _OPEN.get(key)
        if entry is not None:
            _OPEN.move_to_end(key)
    if entry is not None and entry[1] == stamp and _matches(entry[0], expect):
        return entry[0]
    array = open_array()
    with _LOCK:
        _OPEN[key] = (array, stamp)
        _OPEN.move_to_end(key)
        while len(_OPEN) > MAX_OPEN:
            _OPEN.popitem(last=False)
    return array


def clear_array_cache() -> None:
    """Forget every array this process opened (the next use opens it again)."""
    with _LOCK:
        _OPEN.clear()

"""io._arraycache: arrays opened once per process, never against the plan (nor, on a local
disk, against the array's metadata file).

The end-to-end case (workers that keep arrays across a run that appends timepoints, on a
real S3 server) is in tests/io/test_object_store.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from structfree_dask.io import (
    _arraycache,
    cached_array,
    clear_array_cache,
    create_labels,
    open_labels,
    open_plate,
)
from structfree_dask.simulate import simulate_plate


@pytest.fixture(autouse=True)
def _empty_cache():
    clear_array_cache()
    yield
    clear_array_cache()


def _opener(shape=(4,), chunks=(2,), dtype="u4"):
    calls = []

    def open_array():
        calls.append(1)
        return zarr.create_array(store={}, shape=shape, chunks=chunks, dtype=dtype)

    return open_array, calls


def test_a_url_store_is_opened_once_while_the_plan_holds():
    open_array, calls = _opener()
    plan = ((4,), (2,), "uint32")
    first = cached_array("s3://b/p.zarr", "a/0", "r", plan, open_array)
    assert cached_array("s3://b/p.zarr", "a/0", "r", plan, open_array) is first
    assert len(calls) == 1
    # another mode, another path or another store: opened apart
    cached_array("s3://b/p.zarr", "a/0", "r+", plan, open_array)
    cached_array("s3://b/p.zarr", "a/1", "r", plan, open_array)
    cached_array("s3://c/p.zarr", "a/0", "r", plan, open_array)
    assert len(calls) == 4


@pytest.mark.parametrize("plan", [((8,), (2,), "uint32"), ((4,), (4,), "uint32"),
                                  ((4,), (2,), "uint16")],
                         ids=["grown", "rechunked", "other-dtype"])
def test_an_array_that_differs_from_the_plan_is_opened_again(plan):
    old, _ = _opener()
    cached = cached_array("s3://b/p.zarr", "a/0", "r", ((4,), (2,), "uint32"), old)
    shape, chunks, dtype = plan
    new, calls = _opener(shape, chunks, dtype)
    again = cached_array("s3://b/p.zarr", "a/0", "r", plan, new)
    assert again is not cached and len(calls) == 1
    assert cached_array("s3://b/p.zarr", "a/0", "r", plan, new) is again  # kept in its place


def test_local_arrays_are_kept_while_their_metadata_file_is_unchanged(tmp_path):
    plan = ((4,), (2,), "uint32")
    zarr.create_array(store=str(tmp_path), name="a/0", shape=(4,), chunks=(2,), dtype="u4")
    calls = []

    def open_array():
        calls.append(1)
        return zarr.open_array(store=str(tmp_path), path="a/0", mode="r")

    first = cached_array(str(tmp_path), "a/0", "r", plan, open_array)
    assert cached_array(str(tmp_path), "a/0", "r", plan, open_array) is first
    assert len(calls) == 1
    # recreated (what --overwrite does): its metadata file is another file, opened again
    recreated = zarr.create_array(store=str(tmp_path), name="a/0", shape=(4,), chunks=(2,),
                                  dtype="u4", fill_value=7, overwrite=True)
    again = cached_array(str(tmp_path), "a/0", "r", plan, open_array)
    assert again is not first and len(calls) == 2
    assert again[...].tolist() == recreated[...].tolist() == [7, 7, 7, 7]
    # deleted: the opener runs, and fails as it would without the cache
    import shutil

    shutil.rmtree(tmp_path / "a" / "0")
    with pytest.raises(FileNotFoundError):
        cached_array(str(tmp_path), "a/0", "r", plan, open_array)
    assert len(calls) == 3


def test_the_least_recently_used_array_goes_first(monkeypatch):
    monkeypatch.setattr(_arraycache, "MAX_OPEN", 2)
    plan = ((4,), (2,), "uint32")
    open_array, calls = _opener()
    for path in ("x", "y", "x", "z"):  # z pushes out y, the least recently used
        cached_array("s3://b", path, "r", plan, open_array)
    assert len(calls) == 3
    cached_array("s3://b", "x", "r", plan, open_array)
    assert len(calls) == 3
    cached_array("s3://b", "y", "r", plan, open_array)
    assert len(calls) == 4


def test_images_and_labels_use_it(tmp_path):
    """A plate read through file:// (a URL) or as a folder gives the same arrays to every
    caller (one handle per store, path and mode)."""
    path = tmp_path / "p.zarr"
    simulate_plate(path, cell_line="CL1", rows=1, cols=1, timepoints=1, size=64, seed=1)
    local = open_plate(str(path)).field("A/1/0")
    create_labels(local, "cyto")
    info = open_plate(f"file://{path}").field("A/1/0")
    assert info.open_array(0) is info.open_array(0)
    label = open_labels(info, "cyto")
    assert label.open_array(0) is label.open_array(0)
    assert label.open_array(0, mode="r") is not label.open_array(0)
    assert local.open_array(0) is local.open_array(0)
    assert local.open_array(0) is not info.open_array(0)  # another store: apart
    np.testing.assert_array_equal(np.asarray(info.open_array(0)[:]),
                                  np.asarray(local.open_array(0)[:]))

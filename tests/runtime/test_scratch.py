"""Arrays kept in a scratch file: round trips, slices, the file's life, Dask's view of them."""

from __future__ import annotations

import gc
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
from dask.sizeof import sizeof

from structfree_dask.runtime.scratch import DiskArray, scratch_directory


@pytest.mark.parametrize("array", [
    np.arange(24, dtype=np.float16).reshape(2, 3, 4),
    np.linspace(-1, 1, 35, dtype=np.float32).reshape(5, 7),
    np.array([[True, False], [False, True]]),
    np.arange(10, dtype=np.uint32) * 400_000_000,
    np.arange(-5, 5, dtype=np.int64),
    np.zeros((0, 3), np.float32),
], ids=lambda a: f"{a.dtype}{a.shape}")
def test_round_trip_keeps_values_shape_and_dtype(array, tmp_path):
    d = DiskArray(array, str(tmp_path))
    assert d.shape == array.shape and d.dtype == array.dtype and d.ndim == array.ndim
    assert d.nbytes == array.nbytes
    back = np.asarray(d)
    assert type(back) is np.ndarray and back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    np.testing.assert_array_equal(d[...], array)


def test_slicing_reads_the_slice(tmp_path):
    a = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    d = DiskArray(a, str(tmp_path))
    for key in (np.s_[1:3], np.s_[:, 2], np.s_[..., ::-2], np.s_[4, 1:5, 3],
                np.s_[[0, 4], :, 1], np.s_[a[:, 0, 0] > 50], np.s_[-1]):
        got = d[key]
        assert type(got) is np.ndarray
        np.testing.assert_array_equal(got, a[key])
    assert d[2, 3, 4] == a[2, 3, 4]
    with pytest.raises(IndexError):
        d[5]


def test_the_data_is_a_copy_read_only_on_disk(tmp_path):
    a = np.ones((4, 4), np.float32)
    d = DiskArray(a, str(tmp_path))
    a[:] = 7  # the caller's array is not held
    part = d[:2]
    assert part.flags.writeable and part.flags.owndata
    part[:] = -1  # the slice is the caller's: the file is unchanged
    np.testing.assert_array_equal(np.asarray(d), np.ones((4, 4), np.float32))


def test_a_strided_or_fortran_array_is_written_as_it_reads(tmp_path):
    a = np.arange(60, dtype=np.int16).reshape(6, 10)
    for view in (a.T, a[::2, 1::3], np.asfortranarray(a)):
        d = DiskArray(view, str(tmp_path))
        assert d.shape == view.shape
        np.testing.assert_array_equal(d[...], view)


def test_array_protocol_converts_dtype(tmp_path):
    d = DiskArray(np.array([1.5, 2.5, -3.0], np.float16), str(tmp_path))
    out = np.asarray(d, dtype=np.float64)
    assert out.dtype == np.float64 and out.tolist() == [1.5, 2.5, -3.0]
    assert (np.asarray(d) * 2).tolist() == [3.0, 5.0, -6.0]
    assert np.add(d, 1).tolist() == [2.5, 3.5, -2.0]  # numpy functions take it


def test_the_file_is_in_the_directory_and_removed_with_the_array(tmp_path):
    d = DiskArray(np.arange(100.0), str(tmp_path))
    path = Path(d.path)
    assert path.parent == tmp_path and path.name.startswith("structfree-")
    assert path.suffix == ".npy"
    np.testing.assert_array_equal(np.load(path), np.arange(100.0))  # a plain .npy file
    assert f"path={d.path!r}" in repr(d) and "shape=(100,)" in repr(d)
    assert "dtype=float64" in repr(d)
    others = [DiskArray(np.zeros(3), str(tmp_path)) for _ in range(3)]
    assert len({o.path for o in others} | {d.path}) == 4
    del d
    gc.collect()
    assert not path.exists()
    assert len(list(tmp_path.iterdir())) == 3
    del others
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_a_file_removed_early_does_not_break_the_cleanup(tmp_path):
    d = DiskArray(np.zeros(3), str(tmp_path))
    Path(d.path).unlink()
    with pytest.raises(FileNotFoundError):
        d[0]
    del d
    gc.collect()  # no error from the finalizer
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="allow_pickle=False"):
        DiskArray(np.array([{"a": 1}, None], dtype=object), str(tmp_path))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        DiskArray(np.zeros(2), str(tmp_path / "absent"))


def test_pickled_it_travels_as_the_plain_array(tmp_path):
    a = np.arange(12, dtype=np.float16).reshape(3, 4)
    d = DiskArray(a, str(tmp_path))
    back = pickle.loads(pickle.dumps(d))
    assert type(back) is np.ndarray and back.dtype == np.float16
    np.testing.assert_array_equal(back, a)
    assert Path(d.path).exists()  # the original still owns its file


def test_dask_counts_it_as_small_whatever_its_size(tmp_path):
    d = DiskArray(np.zeros((512, 512), np.float32), str(tmp_path))
    assert d.nbytes == 512 * 512 * 4
    assert d.__sizeof__() == 256
    assert sizeof(d) < 1024 < d.nbytes


def test_scratch_directory_is_the_systems_temporary_directory(monkeypatch, tmp_path):
    assert scratch_directory() == tempfile.gettempdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert scratch_directory() == str(tmp_path)
    d = DiskArray(np.arange(3))  # no directory given: the scratch directory
    assert Path(d.path).parent == tmp_path
    np.testing.assert_array_equal(d[...], [0, 1, 2])

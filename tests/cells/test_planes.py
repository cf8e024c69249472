"""Planes of a field read region by region, on a real (simulated) label pyramid."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from structfree_dask.cells.planes import level_shape, plane_index, read_labels, regions
from structfree_dask.io import open_labels, open_plate


@pytest.fixture(scope="module")
def labels(pyramid_plate):
    return open_labels(open_plate(pyramid_plate).field("A/1/0"), "gt_cyto")


@pytest.mark.parametrize(("ny", "nx", "size"), [(600, 300, 256), (10, 7, 3), (5, 5, 5),
                                                 (4, 9, 100), (1, 1, 1)])
def test_regions_tile_the_plane_once_in_row_major_order(ny, nx, size):
    found = regions(ny, nx, size)
    cover = np.zeros((ny, nx), int)
    for ys, xs in found:
        assert 0 < ys.stop - ys.start <= size and 0 < xs.stop - xs.start <= size
        assert ys.step is None and xs.step is None
        cover[ys, xs] += 1
    assert (cover == 1).all()
    assert len(found) == -(-ny // size) * -(-nx // size)
    assert found == sorted(found, key=lambda r: (r[0].start, r[1].start))
    # only the last row and column of regions are cut short
    assert {ys.stop - ys.start for ys, _ in found[:-1] if ys.stop < ny} <= {size}


def test_regions_of_an_empty_plane():
    assert regions(0, 10, 4) == [] and regions(10, 0, 4) == []


def test_plane_index_follows_the_image_axes(labels):
    image = labels.image
    assert image.axes == ("t", "c", "y", "x")
    ys, xs = slice(3, 9), slice(0, 4)
    assert plane_index(image, 1, ys, xs) == (1, 0, ys, xs)
    assert plane_index(image, 0, ys, xs, channels=slice(None)) == (0, slice(None), ys, xs)
    assert plane_index(image, 0, ys, xs, channels=[0, 2]) == (0, [0, 2], ys, xs)
    with_z = dataclasses.replace(image, axes=("t", "c", "z", "y", "x"))
    assert plane_index(with_z, 2, ys, xs, 1) == (2, 1, 0, ys, xs)  # first z plane
    assert plane_index(dataclasses.replace(image, axes=("y", "x")), 5, ys, xs) == (ys, xs)
    assert plane_index(dataclasses.replace(image, axes=("c", "y", "x")), 5, ys, xs, 3) == (
        3, ys, xs)


def test_plane_index_reads_that_region_of_the_image(pyramid_plate):
    info = open_plate(pyramid_plate).field("A/1/0")
    whole = np.asarray(info.open_array(0)[...])
    ys, xs = slice(500, 530), slice(290, 300)
    got = np.asarray(info.open_array(0)[plane_index(info, 1, ys, xs, channels=2)])
    assert got.shape == (30, 10) and got.dtype == info.dtype
    np.testing.assert_array_equal(got, whole[1, 2, ys, xs])


def test_level_shape_is_y_then_x(labels):
    assert labels.shapes[0] == (2, 1, 600, 300)
    assert [level_shape(labels, i) for i in range(3)] == [(600, 300), (300, 150), (150, 75)]
    xy = dataclasses.replace(labels, image=dataclasses.replace(
        labels.image, axes=("t", "c", "x", "y")))
    assert level_shape(xy, 0) == (300, 600)  # found by axis name, not position
    with pytest.raises(IndexError):
        level_shape(labels, 3)


def test_read_labels_regions_rebuild_each_plane_and_level(labels):
    for level in range(3):
        whole = labels.read(level)[:, 0]
        ny, nx = level_shape(labels, level)
        for t in range(2):
            plane = np.zeros((ny, nx), whole.dtype)
            for ys, xs in regions(ny, nx, 128):  # across the 512 px chunk border too
                part = read_labels(labels, t, ys, xs, level)
                assert part.shape == (ys.stop - ys.start, xs.stop - xs.start)
                assert part.dtype == whole.dtype == np.uint32
                assert type(part) is np.ndarray
                plane[ys, xs] = part
            np.testing.assert_array_equal(plane, whole[t])
    full = labels.read(0)[:, 0]
    assert len(np.unique(full[0])) > 5  # a real label image: many cells
    assert not np.array_equal(full[0], full[1])  # and t matters


def test_read_labels_defaults_to_full_resolution_and_does_not_write(labels):
    before = labels.read(0).copy()
    part = read_labels(labels, 1, slice(510, 515), slice(0, 300))
    np.testing.assert_array_equal(part, before[1, 0, 510:515])
    part[:] = 0
    np.testing.assert_array_equal(labels.read(0), before)


def test_read_labels_of_a_missing_level_or_timepoint(labels):
    with pytest.raises(IndexError):
        read_labels(labels, 0, slice(0, 4), slice(0, 4), level=3)
    with pytest.raises(IndexError):
        read_labels(labels, 2, slice(0, 4), slice(0, 4))

"""Tile geometry: the network lattice, regions, windows and ownership."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from structfree_dask.pipeline.tiling import NET_TILE, FieldGeometry, halo_depth, lattice_starts


@pytest.mark.parametrize("length", [50, 224, 225, 400, 512, 1000, 2048])
def test_lattice_matches_cellpose_make_tiles(length):
    from cellpose import transforms

    img = np.zeros((1, length, 300), np.float32)
    _, ysub, _, _, _ = transforms.make_tiles(img, bsize=NET_TILE, tile_overlap=0.1)
    starts = sorted({int(y[0]) for y in ysub})
    assert lattice_starts(length).tolist() == starts


GEOMETRIES = [
    ((1024, 1024), 256, 68, 1.0),
    ((1000, 700), 300, 40, 1.0),
    ((640, 480), 128, 68, 1.5),
    ((900, 333), 200, 30, 0.6),
    ((100, 90), 1024, 68, 1.0),
]


@pytest.mark.parametrize(("shape", "tile", "halo", "rescale"), GEOMETRIES)
def test_lattice_tiles_owned_once_and_windows_covered(shape, tile, halo, rescale):
    g = FieldGeometry(shape, tile_size=tile, halo=halo, rescale=rescale)
    ys, xs = g.lattice
    owned = list(itertools.chain.from_iterable(g.owned_tiles(r) for r in g.regions()))
    assert sorted(owned) == sorted((int(y), int(x)) for y in ys for x in xs)
    for r in g.regions():
        y0, y1, x0, x1 = g.rescaled_window(g.window(r))
        cover = np.zeros((y1 - y0, x1 - x0), bool)
        for o in g.contributors(r):
            for ty, tx in g.owned_tiles(o):
                cover[max(ty - y0, 0) : max(ty + NET_TILE - y0, 0),
                      max(tx - x0, 0) : max(tx + NET_TILE - x0, 0)] = True
        assert cover.all(), r
        assert r in g.neighbours(r)


def test_regions_partition_the_field():
    g = FieldGeometry((1000, 700), tile_size=300, halo=10)
    area = np.zeros((1000, 700), int)
    for r in g.regions():
        y0, y1, x0, x1 = g.region_bounds(r)
        area[y0:y1, x0:x1] += 1
    assert (area == 1).all() and g.n_regions == (4, 3)


def test_halo_and_validation():
    assert halo_depth(30) == 68 and halo_depth(10, factor=1.0, margin=0) == 10
    with pytest.raises(ValueError, match="diameter must be > 0"):
        halo_depth(0)
    with pytest.raises(ValueError, match="tile_size"):
        FieldGeometry((10, 10), tile_size=4, halo=0)
    with pytest.raises(ValueError, match="rescale"):
        FieldGeometry((10, 10), tile_size=64, halo=0, rescale=0)


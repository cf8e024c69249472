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


def test_region_contribution_same_in_any_number_of_network_calls(monkeypatch):
    """Tiles go to the network a few at a time; the sums do not depend on how many."""
    from structfree_dask.pipeline import flows

    rng = np.random.default_rng(0)
    image = rng.random((2, 700, 640), dtype=np.float32)
    geometry = FieldGeometry((700, 640), tile_size=512, halo=40)
    calls = []

    def predict(tiles):  # a deterministic stand-in for the network
        calls.append(len(tiles))
        return np.stack([tiles * 0.5, tiles - 0.25, np.sin(tiles)], axis=1)

    def run(chunk, separate):
        monkeypatch.setattr(flows, "PREDICT_CHUNK", chunk)
        calls.clear()
        out = flows.region_contribution(image, (0, 0), geometry, (0, 0), predict,
                                        separate=separate)
        return out, list(calls)

    n_tiles = len(geometry.owned_tiles((0, 0)))
    assert n_tiles > 3
    for separate in (False, True):
        whole, one_call = run(10_000, separate)
        parts, many_calls = run(3, separate)
        assert one_call == [2 * n_tiles] and len(many_calls) == -(-n_tiles // 3)
        assert max(many_calls) == 6 and sum(many_calls) == 2 * n_tiles
        assert parts.box == whole.box and parts.tiles == whole.tiles
        assert np.array_equal(parts.acc, whole.acc)  # bitwise


def test_flow_sums_kept_on_disk_assemble_bitwise_the_same(tmp_path):
    """The engine keeps waiting flow sums in DiskArray files: same flows, files removed."""
    import gc
    import pickle
    from dataclasses import replace

    from structfree_dask.pipeline.flows import assemble_flows, region_contribution
    from structfree_dask.runtime.scratch import DiskArray

    rng = np.random.default_rng(1)
    image = rng.random((2, 600, 500), dtype=np.float32)
    geometry = FieldGeometry((600, 500), tile_size=256, halo=40)

    def predict(tiles):
        return np.stack([tiles * 0.5, tiles - 0.25, np.cos(tiles)], axis=1)

    cons = {r: region_contribution(image, (0, 0), geometry, r, predict)
            for r in geometry.regions()}
    on_disk = {r: c if c is None else replace(c, acc=DiskArray(c.acc, str(tmp_path)))
               for r, c in cons.items()}
    assert sum(c is None for c in cons.values()) < len(cons)
    n_files = sum(c is not None for c in cons.values())
    assert len(list(tmp_path.glob("structfree-*.npy"))) == n_files
    for r in geometry.regions():
        box = geometry.rescaled_window(geometry.window(r))
        ref = assemble_flows([cons[o] for o in geometry.contributors(r)], box)
        got = assemble_flows([on_disk[o] for o in geometry.contributors(r)], box)
        assert np.array_equal(ref, got)  # bitwise
    # sent to another process it is the plain array
    moved = pickle.loads(pickle.dumps(on_disk[(0, 0)].acc))
    assert isinstance(moved, np.ndarray) and np.array_equal(moved, cons[(0, 0)].acc)
    assert moved.dtype == np.float16
    # released (as Dask releases a result no task needs any more): the file goes
    del on_disk, moved
    gc.collect()
    assert list(tmp_path.glob("structfree-*.npy")) == []

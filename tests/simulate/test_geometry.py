"""Tests of structfree_dask.simulate.geometry: cell and nucleus rasterisation."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.measure

from structfree_dask.simulate import IMAGING_MODES, PRESETS, simulate_field
from structfree_dask.simulate.geometry import (
    Geometry,
    crop_geometry,
    make_tile,
    render_geometry,
    stray_fragments,
)
from structfree_dask.simulate.population import DYING, MITOTIC, NORMAL

_FLAT_TILE = np.zeros((128, 128), np.float32)  # no boundary wobble


def _round_cells(ys, xs, r, *, state=None, state_age=None, nuc_dx=None) -> dict:
    """Round cells (no harmonics) with centred round nuclei of 0.4 cell radii."""
    n = len(ys)
    return {
        "id": np.arange(1, n + 1, dtype=np.int64),
        "y": np.asarray(ys, float), "x": np.asarray(xs, float), "r": np.asarray(r, float),
        "state": np.asarray(state or [NORMAL] * n, np.int8),
        "state_age": np.asarray(state_age or [0] * n, np.int16),
        "harm_a": np.zeros((n, 4)), "harm_phi": np.zeros((n, 4)),
        "tile_oy": np.zeros(n, np.int64), "tile_ox": np.zeros(n, np.int64),
        "nuc_a": np.full(n, 0.4), "nuc_b": np.full(n, 0.4), "nuc_theta": np.zeros(n),
        "nuc_dy": np.zeros(n), "nuc_dx": np.asarray(nuc_dx or [0.0] * n, float),
    }


# ------------------------------------------------------------------ render_geometry


def test_render_geometry_draws_a_round_cell_with_its_nucleus() -> None:
    geo = render_geometry(_round_cells([32], [32], [10]), (64, 64), _FLAT_TILE)
    assert isinstance(geo, Geometry)
    assert geo.cyto.shape == geo.nuclei.shape == geo.dist.shape == geo.rho.shape == (64, 64)
    assert geo.cyto.dtype == geo.nuclei.dtype == np.uint32
    assert geo.dist.dtype == geo.rho.dtype == np.float32
    assert set(np.unique(geo.cyto)) == set(np.unique(geo.nuclei)) == {0, 1}
    assert (geo.cyto == 1).sum() == pytest.approx(np.pi * 10**2, rel=0.05)
    assert (geo.nuclei == 1).sum() == pytest.approx(np.pi * 4**2, rel=0.1)
    assert np.all(geo.cyto[geo.nuclei > 0] == 1)
    # normalised distances: 0 at the centre, 1 outside cells; rho 0 at the nucleus centre
    assert geo.dist[32, 32] == 0.0 and geo.rho[32, 32] == 0.0
    assert geo.dist[0, 0] == 1.0 and geo.rho[0, 0] == 1e3
    assert np.all(geo.dist[geo.cyto > 0] < 1.0)
    assert np.all(geo.rho[geo.nuclei > 0] <= 1.0)
    assert np.all(geo.rho[(geo.cyto > 0) & (geo.nuclei == 0)] > 1.0)


def test_touching_round_cells_split_at_the_midline() -> None:
    geo = render_geometry(_round_cells([32, 32], [24, 40], [10, 10]), (64, 64), _FLAT_TILE)
    row = geo.cyto[32, 20:44]
    # equal cells: pixels up to x=31 belong to cell 1, the tie at x=32 and beyond to cell 2
    assert row.tolist() == [1] * 12 + [2] * 12
    area_1, area_2 = int((geo.cyto == 1).sum()), int((geo.cyto == 2).sum())
    assert abs(area_1 - area_2) < 0.1 * area_1


def test_dying_and_mitotic_cells_are_drawn_smaller() -> None:
    def areas(state: int, age: int) -> tuple[int, int]:
        cells = _round_cells([32, 32], [16, 48], [10, 10], state=[NORMAL, state],
                             state_age=[0, age])
        geo = render_geometry(cells, (64, 64), _FLAT_TILE)
        return int((geo.cyto == 1).sum()), int((geo.cyto == 2).sum())

    normal, dying = areas(DYING, 0)
    assert dying < 0.6 * normal  # radius * 0.72
    _, dying_later = areas(DYING, 1)
    assert dying_later < 0.6 * dying  # shrinks further with its state age
    normal, mitotic = areas(MITOTIC, 0)
    assert 0.5 * normal < mitotic < 0.75 * normal  # radius * 0.8


def test_cell_whose_nucleus_is_clipped_away_is_dropped_unless_at_the_border() -> None:
    # cell 2's nucleus centre lies 3 radii off: nothing of it is inside the cell
    inner = render_geometry(_round_cells([32, 32], [16, 48], [10, 10], nuc_dx=[0.0, 3.0]),
                            (64, 64), _FLAT_TILE)
    assert set(np.unique(inner.cyto)) == {0, 1}
    assert np.isinf(inner.dist).sum() == 0 and inner.dist[32, 48] == 1.0
    # the same at the field border is kept: its nucleus may lie outside the field
    border = render_geometry(_round_cells([32, 0], [16, 32], [10, 10], nuc_dx=[0.0, 3.0]),
                             (64, 64), _FLAT_TILE)
    assert set(np.unique(border.cyto)) == {0, 1, 2}
    assert set(np.unique(border.nuclei)) == {0, 1}


def test_render_geometry_of_no_cells_is_empty() -> None:
    geo = render_geometry(_round_cells([], [], []), (64, 80), _FLAT_TILE)
    assert geo.cyto.shape == (64, 80) and not geo.cyto.any() and not geo.nuclei.any()
    assert np.all(geo.dist == 1.0) and np.all(geo.rho == 1e3)


# ------------------------------------------------------------------ helpers


def test_make_tile_is_a_seeded_unit_variance_power_of_two_tile() -> None:
    a = make_tile(np.random.default_rng(3), 10.0)
    b = make_tile(np.random.default_rng(3), 10.0)
    c = make_tile(np.random.default_rng(4), 10.0)
    assert a.shape == (128, 128) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a[::4, ::4].std() == pytest.approx(1.0, abs=1e-4)
    assert abs(float(a.mean())) < 1e-4
    assert make_tile(np.random.default_rng(0), 40.0).shape == (256, 256)  # >= 6 radii


def test_stray_fragments_keeps_one_piece_per_label() -> None:
    lab = np.zeros((10, 12), np.uint32)
    lab[1:4, 1:4] = 1  # label 1, large piece
    lab[6:8, 1:3] = 1  # label 1, small piece: holds the weight
    lab[1:4, 6:10] = 2  # label 2, one piece
    weight = np.zeros(lab.shape, bool)
    weight[6, 1] = True
    stray = stray_fragments(lab, weight)
    assert stray.shape == lab.shape and stray.dtype == bool
    assert np.array_equal(np.argwhere(stray), np.argwhere(lab == 1)[: 9])  # the big piece
    # without weight, the largest piece is kept
    stray = stray_fragments(lab, np.zeros(lab.shape, bool))
    assert stray[6:8, 1:3].all() and stray.sum() == 4
    # single pieces: nothing is stray
    assert not stray_fragments(np.where(lab == 2, lab, 0), lab > 0).any()


# ------------------------------------------------------------------ labels of simulated fields


@pytest.mark.parametrize("mode", IMAGING_MODES)
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_nucleus_inside_its_cell_with_same_id(name: str, mode: str, cell_ids) -> None:
    size = 128 if mode == "confocal" else 256
    f = simulate_field(name, size=size, timepoints=2, seed=3, mode=mode)
    for t in range(2):
        nuc, cyto = f.nuclei[t], f.cyto[t]
        assert np.all((nuc == 0) | (nuc == cyto))
        assert cell_ids(nuc) <= cell_ids(cyto)
        assert len(cell_ids(nuc)) > 0
        # cells without a visible nucleus are only those cut by the field border
        border = np.concatenate([cyto[0], cyto[-1], cyto[:, 0], cyto[:, -1]])
        assert cell_ids(cyto) - cell_ids(nuc) <= cell_ids(border)
        # every label is one 4-connected piece and is smaller than its cell
        for lab in (cyto, nuc):
            pieces = skimage.measure.label(lab, background=0, connectivity=1)
            assert pieces.max() == len(cell_ids(lab))
        areas_c = np.bincount(cyto.ravel())
        areas_n = np.bincount(nuc.ravel(), minlength=len(areas_c))
        ids = np.array(sorted(cell_ids(nuc)))
        assert np.all(areas_n[ids] < areas_c[ids])


def test_touching_cells_share_boundaries() -> None:
    f = simulate_field("CL1", size=192, timepoints=1, seed=0)
    lab = f.cyto[0]
    a, b = lab[:, :-1], lab[:, 1:]
    touching = (a != b) & (a > 0) & (b > 0)
    left, right = a[touching].tolist(), b[touching].tolist()
    pairs = {tuple(sorted(p)) for p in zip(left, right, strict=True)}
    assert len(pairs) >= 10


def test_cells_are_irregular() -> None:
    f = simulate_field("CL4", size=192, timepoints=1, seed=0)
    props = skimage.measure.regionprops(f.cyto[0])
    solidity = np.array([p.solidity for p in props if p.area > 100])
    eccentricity = np.array([p.eccentricity for p in props if p.area > 100])
    assert np.median(solidity) < 0.97
    assert np.median(eccentricity) > 0.3


def test_confocal_cell_size_is_realistic() -> None:
    for name in PRESETS:
        f = simulate_field(name, size=256, timepoints=1, seed=0)
        areas = np.bincount(f.cyto[0].ravel())[1:]
        diam = 2 * np.sqrt(areas[areas > 0] / np.pi)
        assert 14 <= np.median(diam) <= 35, name


# ------------------------------------------------------------------ crop_geometry


def test_crop_geometry_is_the_window_of_the_rendered_world() -> None:
    world = render_geometry(_round_cells([40, 40], [30, 52], [10, 10]), (80, 90), _FLAT_TILE)
    crop = crop_geometry(world, (20, 25), (40, 50))
    win = (slice(20, 60), slice(25, 75))
    for name in ("cyto", "nuclei", "dist", "rho"):
        got, want = getattr(crop, name), getattr(world, name)[win]
        assert got.shape == (40, 50) and got.dtype == want.dtype
        assert np.array_equal(got, want), name  # nothing cut into pieces here
        assert not np.shares_memory(got, getattr(world, name))
    # a window cutting cell 1 off its nucleus: the cell stays (cut by the edge), nucleus-less
    edge = crop_geometry(world, (20, 35), (40, 40))
    assert 1 in edge.cyto and 1 not in edge.nuclei and 2 in edge.nuclei


def test_crop_geometry_keeps_one_piece_of_a_cell_the_window_cuts_in_two() -> None:
    lab = np.zeros((8, 10), np.uint32)
    lab[1:7, 1:9] = 5
    lab[3:7, 3:6] = 0  # a U: one piece in the world, two in the window's bottom rows
    nuc = np.zeros_like(lab)
    nuc[4:6, 6:8] = 5  # the nucleus in the right arm
    geo = Geometry(cyto=lab, nuclei=nuc, dist=np.full(lab.shape, 0.5, np.float32),
                   rho=np.full(lab.shape, 0.5, np.float32))
    crop = crop_geometry(geo, (4, 0), (4, 10))
    assert crop.cyto.tolist() == [[0, 0, 0, 0, 0, 0, 5, 5, 5, 0]] * 3 + [[0] * 10]
    assert np.array_equal(crop.nuclei, nuc[4:8])
    lost = (lab[4:8] > 0) & (crop.cyto == 0)
    assert lost.sum() == 6
    assert np.all(crop.dist[lost] == 1.0) and np.all(crop.rho[lost] == 1e3)
    assert np.all(crop.dist[crop.cyto > 0] == 0.5)


@pytest.mark.parametrize(("origin", "shape"), [((-1, 0), (4, 4)), ((0, 7), (4, 4)),
                                               ((5, 0), (4, 4))])
def test_crop_geometry_refuses_a_window_outside(origin, shape) -> None:
    geo = render_geometry(_round_cells([4], [4], [3]), (8, 10), _FLAT_TILE)
    with pytest.raises(ValueError, match=r"does not fit in 8 x 10"):
        crop_geometry(geo, origin, shape)

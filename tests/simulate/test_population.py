"""Tests of structfree_dask.simulate.population: seeding, expression and cell dynamics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from structfree_dask.simulate import (
    PRESETS,
    CellLinePreset,
    ChannelSpec,
    SimulatedField,
    simulate_field,
)
from structfree_dask.simulate.population import (
    DYING,
    HARMONICS,
    MITOTIC,
    NORMAL,
    Population,
    draw_expression,
    draw_shape,
)

_ONE_CHANNEL = (ChannelSpec("a", "er"),)


# ------------------------------------------------------------------ per-cell draws


def test_draw_shape_gives_bounded_star_shapes() -> None:
    preset = PRESETS["CL4"]  # the most irregular preset
    shape = draw_shape(np.random.default_rng(0), 500, preset)
    assert set(shape) == {"harm_a", "harm_phi", "nuc_a", "nuc_b", "nuc_theta", "nuc_dy",
                          "nuc_dx", "tile_oy", "tile_ox"}
    assert shape["harm_a"].shape == shape["harm_phi"].shape == (500, len(HARMONICS))
    assert HARMONICS.tolist() == [2, 3, 4, 5]
    assert all(v.shape == (500,) for k, v in shape.items() if not k.startswith("harm"))
    # harmonic amplitudes stay star-convex: at most 0.45 in total
    assert np.all(shape["harm_a"] >= 0) and shape["harm_a"].sum(axis=1).max() <= 0.45 + 1e-12
    # nucleus: geometric-mean radius near the preset's ratio, elongation at most 1.5
    mean_r = np.sqrt(shape["nuc_a"] * shape["nuc_b"])
    assert np.all((mean_r >= 0.15 - 1e-12) & (mean_r <= 0.6 + 1e-12))
    assert np.median(mean_r) == pytest.approx(preset.nucleus_ratio, rel=0.05)
    elong = shape["nuc_a"] / shape["nuc_b"]
    assert np.all((elong >= 1.0) & (elong <= 1.5 + 1e-12))
    assert np.all(np.hypot(shape["nuc_dy"], shape["nuc_dx"]) <= 0.12)
    again = draw_shape(np.random.default_rng(0), 500, preset)
    assert all(np.array_equal(shape[k], again[k]) for k in shape)


def test_round_preset_draws_no_harmonics() -> None:
    round_cells = CellLinePreset(name="round", description="", channels=_ONE_CHANNEL,
                                 irregularity=0.0)
    assert not draw_shape(np.random.default_rng(1), 20, round_cells)["harm_a"].any()


def test_draw_expression_follows_the_channel_specs() -> None:
    preset = PRESETS["CL1"]
    expr, onset, tau, responder = draw_expression(np.random.default_rng(0), 4000, preset)
    n_c = len(preset.channels)
    assert expr.shape == onset.shape == tau.shape == responder.shape == (4000, n_c)
    assert np.all(expr >= 0) and np.all((tau >= 3.0) & (tau <= 9.0))
    assert set(np.unique(responder)) == {0.0, 1.0}
    for j, ch in enumerate(preset.channels):
        assert (expr[:, j] < 0.05).mean() == pytest.approx(ch.dark_fraction, abs=0.03)
        assert responder[:, j].mean() == pytest.approx(ch.responder_fraction, abs=0.03)
        assert onset[:, j].mean() == pytest.approx(ch.onset_h, abs=1.0)
        assert onset[:, j].std() == pytest.approx(ch.onset_spread_h, rel=0.1)


def test_no_dark_cells_when_the_dark_fraction_is_zero() -> None:
    preset = CellLinePreset(name="bright", description="", channels=(
        ChannelSpec("a", "er", dark_fraction=0.0, heterogeneity=0.0),))
    expr, *_ = draw_expression(np.random.default_rng(0), 100, preset)
    assert np.array_equal(expr, np.ones((100, 1)))


# ------------------------------------------------------------------ Population


def test_population_seeds_cells_to_the_confluence() -> None:
    preset = PRESETS["CL1"]
    pop = Population(preset, (128, 160), 1.24, np.random.default_rng(0))
    c = pop.cells
    n = len(c["id"])
    assert pop.r_med == pytest.approx(preset.cell_diameter_um / 2 / 1.24)
    m = 1.2 * pop.r_med
    assert pop.bounds == pytest.approx((-m, 127 + m, -m, 159 + m))
    expected = preset.confluence * pop.area / (math.pi * pop.r_med**2
                                               * math.exp(2 * preset.diameter_cv**2))
    assert n == round(expected)
    assert c["id"].tolist() == list(range(1, n + 1)) and pop.next_id == n + 1
    assert pop.parents == {}
    assert np.all((c["y"] >= pop.bounds[0]) & (c["y"] <= pop.bounds[1]))
    assert np.all((c["x"] >= pop.bounds[2]) & (c["x"] <= pop.bounds[3]))
    assert np.all((c["r"] >= 0.5 * pop.r_med) & (c["r"] <= 2.0 * pop.r_med))
    assert np.all(c["state"] == NORMAL) and c["state"].dtype == np.int8
    assert np.all((c["age_h"] >= 0) & (c["age_h"] <= preset.doubling_time_h))
    assert c["expr"].shape == (n, len(preset.channels))


def test_population_is_deterministic_for_a_seed() -> None:
    a = Population(PRESETS["CL2"], (96, 96), 1.24, np.random.default_rng(5))
    b = Population(PRESETS["CL2"], (96, 96), 1.24, np.random.default_rng(5))
    a.step(np.random.default_rng(1), 3.0)
    b.step(np.random.default_rng(1), 3.0)
    assert set(a.cells) == set(b.cells)
    assert all(np.array_equal(a.cells[k], b.cells[k]) for k in a.cells)


def test_dying_cells_disappear_after_three_steps() -> None:
    doomed = CellLinePreset(name="doomed", description="", channels=_ONE_CHANNEL,
                            death_rate_per_h=1.0, doubling_time_h=500.0)
    pop = Population(doomed, (128, 128), 1.24, np.random.default_rng(0))
    first = set(pop.cells["id"].tolist())
    pop.step(np.random.default_rng(1), 3.0)
    dying = set(pop.cells["id"][pop.cells["state"] == DYING].tolist())
    assert len(dying) > 0.8 * len(first)  # p = 1 - exp(-3)
    for k in range(2):
        pop.step(np.random.default_rng(2 + k), 3.0)
        assert dying <= set(pop.cells["id"].tolist())  # shrinking, still there
    pop.step(np.random.default_rng(9), 3.0)
    assert not dying & set(pop.cells["id"].tolist())


def test_mitotic_cells_divide_into_two_daughters_with_new_ids() -> None:
    fast = CellLinePreset(name="fast", description="", channels=_ONE_CHANNEL,
                          death_rate_per_h=0.0, doubling_time_h=2.0, confluence=0.1)
    pop = Population(fast, (128, 128), 1.24, np.random.default_rng(0))
    n0 = len(pop.cells["id"])
    for k in range(6):  # cells divide from an age of 10 h on
        before = pop.cells
        mothers = set(before["id"][before["state"] == MITOTIC].tolist())
        next_id = pop.next_id
        pop.step(np.random.default_rng(k), 3.0)
        ids = set(pop.cells["id"].tolist())
        assert not mothers & ids
        new = {d: m for d, m in pop.parents.items() if d >= next_id}
        assert set(new.values()) == mothers
        assert sorted(new) == list(range(next_id, next_id + 2 * len(mothers)))
        assert set(new) <= ids and pop.next_id == next_id + 2 * len(mothers)
    assert len(pop.parents) >= n0 and len(pop.cells["id"]) > n0
    assert np.all(np.bincount(list(pop.parents.values())) <= 2)
    daughters = np.isin(pop.cells["id"], list(pop.parents))
    assert np.all(pop.cells["r"][daughters] <= pop.cells["r_target"][daughters] + 1e-9)


# ------------------------------------------------------------------ simulated fields


def test_dark_cells_exist(cell_ids, background) -> None:
    f = simulate_field("CL1", size=256, timepoints=1, seed=0)
    cyto = f.cyto[0]
    ids = np.array(sorted(cell_ids(cyto)))
    areas = np.bincount(cyto.ravel())[ids]
    big = ids[areas >= 80]
    found = []
    for c in range(f.image.shape[1]):
        img = f.image[0, c].astype(np.float64)
        bg = background(img, cyto)
        means = np.asarray(ndi.mean(img, cyto, big)) - bg
        dark = means < 0.05 * np.median(means)
        found.append(dark.mean())
    assert max(found) > 0.05
    assert all(frac < 0.5 for frac in found)


def test_division_and_death_change_cell_count(cl1_series: SimulatedField, cell_ids) -> None:
    counts = [len(cell_ids(lab)) for lab in cl1_series.cyto]
    assert len(set(counts)) > 1
    first, last = cell_ids(cl1_series.cyto[0]), cell_ids(cl1_series.cyto[-1])
    assert last - first, "no new (daughter) IDs appeared"
    assert first - last, "no cell disappeared"
    assert max(last) > max(first)


def test_ids_persist_and_cells_move_slowly(cl1_series: SimulatedField, cell_ids) -> None:
    for t in range(3):
        a, b = cl1_series.cyto[t], cl1_series.cyto[t + 1]
        shared = np.array(sorted(cell_ids(a) & cell_ids(b)))
        assert len(shared) >= 0.6 * len(cell_ids(a))
        ca = np.array(ndi.center_of_mass(np.ones_like(a), a, shared))
        cb = np.array(ndi.center_of_mass(np.ones_like(b), b, shared))
        shift = np.linalg.norm(ca - cb, axis=1)
        assert np.median(shift) < 5.0  # pixels per 3 h; cells are ~20 px across


def test_motion_scale_multiplies_the_cells_own_walk() -> None:
    preset = PRESETS["CL3"]
    pops = {s: Population(preset, (96, 96), 1.24, np.random.default_rng(3), motion_scale=s)
            for s in (1.0, 10.0, 0.0)}
    assert Population(preset, (96, 96), 1.24, np.random.default_rng(3)).motion_scale == 1.0
    assert all(np.array_equal(p.cells["y"], pops[1.0].cells["y"]) for p in pops.values())
    for p in pops.values():
        p.step(np.random.default_rng(4), 3.0)  # no cell is mitotic yet: the same draws
    one, ten, zero = (pops[s].cells for s in (1.0, 10.0, 0.0))
    assert np.abs(one["vy"]).max() > 0
    np.testing.assert_allclose(ten["vy"], 10.0 * one["vy"], rtol=1e-12)
    np.testing.assert_allclose(ten["vx"], 10.0 * one["vx"], rtol=1e-12)
    assert not zero["vy"].any() and not zero["vx"].any()
    # only the walk is scaled: fates and growth are the same draws
    assert np.array_equal(ten["state"], one["state"]) and np.array_equal(ten["r"], one["r"])

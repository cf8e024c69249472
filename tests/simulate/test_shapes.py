"""Tests of structfree_dask.simulate.shapes: reporters rendered on given cell shapes."""

from __future__ import annotations

import hashlib
import pathlib

import imageio.v3 as iio
import numpy as np
import pytest
import skimage.measure
from scipy import ndimage as ndi

from structfree_dask.simulate import (
    IMAGING_MODES,
    PRESETS,
    Localization,
    simulate_field,
    simulate_on_shapes,
)


@pytest.fixture(scope="module")
def kc_masks(real_dev: pathlib.Path) -> np.ndarray:
    """Real annotated Kc167 cells (400 x 400 px)."""
    return iio.imread(real_dev / "Kc167" / "095_masks.png")


@pytest.fixture(scope="module")
def kc_series(kc_masks: np.ndarray):
    """CL5's reporters on the real cells, widefield, 4 timepoints."""
    return simulate_on_shapes(kc_masks, "CL5", timepoints=4, seed=0, mode="widefield")


def _ids(lab: np.ndarray) -> set[int]:
    return {int(i) for i in np.unique(lab) if i}


def _edge_ids(lab: np.ndarray) -> set[int]:
    return _ids(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))


def test_timepoint_0_is_the_given_cells_and_every_cell_has_a_nucleus(kc_masks, kc_series):
    f = kc_series
    assert f.image.shape == (4, 4, *kc_masks.shape) and f.image.dtype == np.uint16
    assert f.cyto.dtype == np.uint32 and np.array_equal(f.cyto[0], kc_masks)
    nuc = f.nuclei[0]
    assert np.all((nuc == 0) | (nuc == f.cyto[0]))  # a nucleus carries its cell's ID
    # every whole cell has one; a cell cut by the field edge may have its nucleus beyond it
    assert _ids(kc_masks) - _edge_ids(kc_masks) <= _ids(nuc) <= _ids(kc_masks)
    assert len(_ids(nuc)) >= 0.9 * len(_ids(kc_masks))
    for p in skimage.measure.regionprops(nuc):  # one piece, inside its cell, not the cell
        assert skimage.measure.label(nuc == p.label).max() == 1
        assert p.area < (kc_masks == p.label).sum()
    ratio = (nuc > 0).sum() / (kc_masks > 0).sum()
    assert 0.05 < ratio < 0.5, ratio


def test_cells_cut_by_the_field_edge_get_a_whole_cells_nucleus_cut_too():
    """A half cell at the edge: its nucleus is cut by the edge, as large as a whole cell's half."""
    yy, xx = np.indices((128, 192))
    cells = np.zeros((128, 192), np.uint16)
    cells[(yy - 64) ** 2 + xx ** 2 < 40 ** 2] = 1  # cut in half by the left edge
    cells[(yy - 64) ** 2 + (xx - 120) ** 2 < 40 ** 2] = 2  # whole
    cells[(yy - 64) ** 2 + (xx - 230) ** 2 < 40 ** 2] = 3  # a 2 px sliver at the right edge
    areas = []
    for seed in range(4):
        nuc = simulate_on_shapes(cells, "CL1", seed=seed).nuclei[0]
        assert np.all((nuc == 0) | (nuc == cells))
        assert (nuc[:, 0] == 1).any()  # cut by the edge as its cell is
        areas.append(((nuc == 1).sum(), (nuc == 2).sum(), (nuc == 3).sum()))
    half, whole, sliver = np.mean(areas, axis=0)
    # the old draw fitted the nucleus into the visible half: about a quarter of the whole one
    assert 0.35 < half / whole < 0.65, areas
    assert sliver < 0.05 * whole, areas  # its nucleus lies (almost) wholly beyond the edge


def test_identities_persist_and_cells_move_smoothly(kc_masks, kc_series):
    f = kc_series
    start = {p.label: p for p in skimage.measure.regionprops(f.cyto[0])}
    radius = np.median([p.equivalent_diameter_area / 2 for p in start.values()])
    for t in range(1, 4):
        now = {p.label: p for p in skimage.measure.regionprops(f.cyto[t])}
        assert set(now) <= set(start)
        assert len(now) >= 0.9 * len(start)  # few cells leave through the border
        prev = {p.label: p for p in skimage.measure.regionprops(f.cyto[t - 1])}
        steps = [np.hypot(*np.subtract(now[i].centroid, prev[i].centroid))
                 for i in now if i in prev and not _at_border(now[i], f.cyto.shape[1:])]
        assert np.median(steps) < 0.5 * radius
        assert np.max(steps) < 1.5 * radius
        areas = [now[i].area / start[i].area for i in now
                 if not _at_border(now[i], f.cyto.shape[1:])]
        assert 0.8 < np.median(areas) < 1.25  # deformed, not squashed
        assert np.all((f.nuclei[t] == 0) | (f.nuclei[t] == f.cyto[t]))
    moved = np.mean(f.cyto[3] != f.cyto[0])
    assert moved > 0.01  # the shapes do move


def _at_border(p, shape) -> bool:
    y0, x0, y1, x1 = p.bbox
    return y0 == 0 or x0 == 0 or y1 == shape[0] or x1 == shape[1]


def test_truth_lists_the_labelled_cells_without_lineage(kc_series):
    f = kc_series
    for t in range(4):
        rows = f.truth[f.truth["t"] == t]
        assert sorted(rows["label"]) == sorted(_ids(f.cyto[t]))
    assert (f.truth["parent_label"] == 0).all() and f.lineage == {}
    ratio = f.truth["translocation-reporter__true_nc_ratio"]
    spec = PRESETS["CL5"].channels[3]
    lo, hi = sorted((spec.nc_ratio_start, spec.nc_ratio_end))
    assert ratio.between(lo - 1e-6, hi + 1e-6).all()


def test_reporters_follow_the_given_compartments(kc_series):
    """Every reporter lights the cells up; mitochondria stay out of the nucleus."""
    f = kc_series
    img = f.image[0].astype(float)
    cells, nuc = f.cyto[0], f.nuclei[0]
    background = np.median(img[:, cells == 0], axis=1)
    inside = [np.median(img[j][(cells > 0) & (nuc == 0)]) - background[j] for j in range(4)]
    assert min(inside) > 0, inside
    mito = PRESETS["CL5"].channel_names.index("mito")
    core = ndi.binary_erosion(nuc > 0, iterations=2)
    assert np.mean(img[mito][core]) < np.mean(img[mito][(cells > 0) & (nuc == 0)])


def test_same_seed_same_output_and_seeds_differ(kc_masks):
    a = simulate_on_shapes(kc_masks[:128, :128], "CL1", timepoints=2, seed=5)
    b = simulate_on_shapes(kc_masks[:128, :128], "CL1", timepoints=2, seed=5)
    c = simulate_on_shapes(kc_masks[:128, :128], "CL1", timepoints=2, seed=6)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.cyto, b.cyto)
    assert np.array_equal(a.nuclei, b.nuclei)
    assert not np.array_equal(a.image, c.image) and not np.array_equal(a.cyto[1], c.cyto[1])
    digest = hashlib.sha256(a.image.tobytes()).hexdigest()
    assert digest == hashlib.sha256(b.image.tobytes()).hexdigest()


@pytest.mark.parametrize("mode", IMAGING_MODES)
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_and_mode_renders(kc_masks, name, mode):
    f = simulate_on_shapes(kc_masks[:96, :128], name, seed=1, mode=mode)
    assert f.image.shape == (1, len(PRESETS[name].channels), 96, 128)
    assert f.channel_names == PRESETS[name].channel_names and f.mode == mode
    cells = f.cyto[0] > 0
    for j in range(f.image.shape[1]):
        assert f.image[0, j][cells].mean() > f.image[0, j][~cells].mean()
    assert f.localizations == tuple(loc.value for loc in PRESETS[name].localizations)


def test_given_nuclei_are_kept():
    sim = simulate_field("CL3", size=128, seed=4)
    f = simulate_on_shapes(sim.cyto[0], "CL3", nuclei=sim.nuclei[0], seed=0)
    assert np.array_equal(f.nuclei[0], sim.nuclei[0])
    nuclear = PRESETS["CL3"].localizations.index(Localization.NUCLEI)
    img = f.image[0, nuclear].astype(float)
    assert img[f.nuclei[0] > 0].mean() > 2 * img[(f.cyto[0] > 0) & (f.nuclei[0] == 0)].mean()


def test_given_nuclei_take_their_cells_ids_and_none_is_invented():
    cells = np.zeros((64, 64), dtype=np.uint16)
    cells[4:30, 4:60] = 3
    cells[34:60, 4:60] = 8
    nuclei = np.zeros_like(cells)
    nuclei[10:20, 10:24] = 1  # in cell 3
    nuclei[28:32, 40:44] = 2  # straddles the gap under cell 3: clipped
    f = simulate_on_shapes(cells, "CL1", nuclei=nuclei, seed=0)
    nuc = f.nuclei[0]
    assert set(np.unique(nuc[10:20, 10:24])) == {3}
    assert _ids(nuc) == {3}  # cell 8 had none: it stays without
    assert np.all(nuc[30:34] == 0)


@pytest.mark.parametrize(("cells", "kw", "match"), [
    (np.zeros((64, 64, 2), np.uint16), {}, r"cells: expected a \(y, x\) label image"),
    (np.zeros((64, 64), np.float32), {}, "cells: expected integer labels"),
    (np.full((64, 64), -1, np.int32), {}, "cells: expected labels >= 0"),
    (np.zeros((32, 64), np.uint16), {}, "at least 64"),
    (np.zeros((64, 64), np.uint16), {"nuclei": np.zeros((64, 80), np.uint16)},
     r"nuclei: expected the cells' shape \(64, 64\); got \(64, 80\)"),
    (np.zeros((64, 64), np.uint16), {"timepoints": 0}, "timepoints"),
    (np.zeros((64, 64), np.uint16), {"mode": "lightsheet"}, "mode"),
])
def test_bad_input_is_named(cells, kw, match):
    with pytest.raises(ValueError, match=match):
        simulate_on_shapes(cells, "CL1", **kw)


def test_no_cells_gives_an_empty_valid_field():
    f = simulate_on_shapes(np.zeros((64, 64), np.uint16), "CL5", timepoints=2)
    assert f.image.shape == (2, 4, 64, 64) and not f.cyto.any() and len(f.truth) == 0


def test_a_boolean_mask_is_one_cell():
    mask = np.zeros((64, 64), bool)
    mask[10:40, 10:40] = True
    f = simulate_on_shapes(mask, "CL1", seed=0)
    assert f.cyto.dtype == np.uint32 and np.array_equal(f.cyto[0], mask.astype(np.uint32))
    assert _ids(f.nuclei[0]) == {1} and f.truth["label"].tolist() == [1]


def test_labels_too_large_for_uint32_are_refused():
    with pytest.raises(ValueError, match=r"cells: labels above 4294967295 do not fit uint32; "
                                         r"got 8589934592"):
        simulate_on_shapes(np.full((64, 64), 2**33, np.int64), "CL1")


def test_empty_field_truth_is_typed_and_the_input_is_not_modified():
    cells = np.zeros((64, 64), np.uint8)
    cells[5:20, 5:20] = 4
    before = cells.copy()
    f = simulate_on_shapes(cells, "CL1", timepoints=2, seed=1)
    assert np.array_equal(cells, before)  # the labels are copied, not moved in place
    assert [str(d) for d in f.truth.dtypes] == ["int64", "int32", "int64", "float64"]
    empty = simulate_on_shapes(np.zeros((64, 64), np.uint8), "CL4")
    assert list(empty.truth.columns) == ["label", "t", "parent_label"]
    assert [str(d) for d in empty.truth.dtypes] == ["int64", "int32", "int64"]

"""Tests of structfree_dask.simulate.render: reporter patterns, optics and camera."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from structfree_dask.config import true_ratio_column
from structfree_dask.simulate import CellLinePreset, ChannelSpec, SimulatedField, simulate_field
from structfree_dask.simulate.geometry import render_geometry
from structfree_dask.simulate.options import MODES
from structfree_dask.simulate.population import DYING, MITOTIC, NORMAL
from structfree_dask.simulate.render import (
    label_boundary,
    optics,
    progress,
    render_timepoint,
    translocation_ratio,
)
from structfree_dask.simulate.textures import Textures, freq2

_RATIO = true_ratio_column("translocation-reporter")
_SHAPE = (64, 96)


def _two_cells(n_c: int, expr: list[float], state: tuple[int, int] = (NORMAL, NORMAL)) -> dict:
    """Two round cells (at x = 24 and x = 72) with their shapes and reporter draws."""
    return {
        "id": np.array([1, 2], np.int64),
        "y": np.array([32.0, 32.0]), "x": np.array([24.0, 72.0]), "r": np.array([12.0, 12.0]),
        "state": np.array(state, np.int8), "state_age": np.zeros(2, np.int16),
        "harm_a": np.zeros((2, 4)), "harm_phi": np.zeros((2, 4)),
        "tile_oy": np.zeros(2, np.int64), "tile_ox": np.zeros(2, np.int64),
        "nuc_a": np.full(2, 0.4), "nuc_b": np.full(2, 0.4), "nuc_theta": np.zeros(2),
        "nuc_dy": np.zeros(2), "nuc_dx": np.zeros(2),
        "expr": np.repeat(np.asarray(expr, float)[:, None], n_c, axis=1),
        "onset": np.full((2, n_c), 10.0), "tau": np.full((2, n_c), 5.0),
        "responder": np.ones((2, n_c)),
    }


def _render(preset: CellLinePreset, cells: dict, t_h: float = 0.0, seed: int = 0,
            mode: str = "confocal") -> tuple[np.ndarray, object]:
    imaging = MODES[mode]
    geo = render_geometry(cells, _SHAPE, np.zeros((128, 128), np.float32))
    otf, vignette = optics(_SHAPE, imaging)
    rng = np.random.default_rng(seed)
    tex = Textures(rng, freq2(*_SHAPE), imaging.pixel_size_um, _SHAPE)
    noise = [np.random.default_rng([seed, j]) for j in range(len(preset.channels))]
    return render_timepoint(cells, preset, geo, t_h, tex, imaging, otf, vignette, noise), geo


# ------------------------------------------------------------------ response and ratio


def test_progress_is_a_sigmoid_of_time_for_responders() -> None:
    cells = {"onset": np.array([[10.0], [10.0], [20.0]]), "tau": np.array([[2.0], [2.0], [4.0]]),
             "responder": np.array([[1.0], [0.0], [1.0]])}
    at_onset = progress(cells, 0, 10.0)
    assert at_onset.dtype == np.float32 and at_onset.shape == (3,)
    assert at_onset[0] == pytest.approx(0.5) and at_onset[1] == 0.0
    assert progress(cells, 0, 20.0)[2] == pytest.approx(0.5)
    assert progress(cells, 0, 100.0)[0] == pytest.approx(1.0)
    assert progress(cells, 0, -100.0)[0] == pytest.approx(0.0, abs=1e-6)
    late = progress(cells, 0, 14.0)[0]  # (14 - 10) / 2 = 2: sigmoid(2)
    assert late == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-6)
    assert np.all(np.diff([progress(cells, 0, t)[0] for t in range(0, 30, 3)]) > 0)


def test_translocation_ratio_interpolates_geometrically() -> None:
    spec = ChannelSpec("tr", "translocation", nc_ratio_start=0.5, nc_ratio_end=2.0)
    ratio = translocation_ratio(spec, np.array([0.0, 0.5, 1.0], np.float32))
    assert ratio.dtype == np.float32
    np.testing.assert_allclose(ratio, [0.5, 1.0, 2.0], rtol=1e-6)
    export = ChannelSpec("tr", "translocation", nc_ratio_start=3.0, nc_ratio_end=0.75)
    np.testing.assert_allclose(translocation_ratio(export, np.array([0.5], np.float32)), [1.5],
                               rtol=1e-6)


def test_label_boundary_marks_cell_pixels_next_to_another_label() -> None:
    lab = np.zeros((8, 10), np.uint32)
    lab[1:7, 1:5] = 1
    lab[1:7, 5:9] = 2
    b = label_boundary(lab)
    assert b.dtype == np.float32 and b.shape == lab.shape
    assert np.all(b[lab == 0] == 0)
    assert b[3, 4] == b[3, 5] == 1.0  # 2 px wide at the shared boundary
    assert b[1, 2] == b[3, 1] == 1.0  # boundary to the background
    assert b[3, 2] == b[3, 3] == 0.0 and b[3, 6] == 0.0  # interior
    assert b.sum() == (lab > 0).sum() - 2 * 4 * 2  # two 2 x 4 interiors per cell


def test_optics_transfer_function_and_vignette() -> None:
    for name, mode in MODES.items():
        otf, vignette = optics((64, 80), mode)
        assert otf.shape == (64, 41) and otf.dtype == np.float32, name
        assert vignette.shape == (64, 80) and vignette.dtype == np.float32, name
        assert otf[0, 0] == pytest.approx(1.0)  # brightness is kept
        assert np.all((otf > 0) & (otf <= 1.0 + 1e-6))
        assert otf[0, 1] > otf[0, 40]  # a low-pass filter
        # flat-field falloff: symmetric, brightest at the centre, darkest in the corners
        np.testing.assert_allclose(vignette, vignette[::-1, ::-1], rtol=1e-6)
        assert vignette.max() <= 1.0 and vignette[32, 40] > vignette[0, 0]
        assert vignette.min() == pytest.approx(vignette[0, 0])
        assert vignette.min() > 1.0 - mode.vignetting
    # at the finest scale the widefield mode (its haze, its smaller pixels) blurs more
    conf, _ = optics((64, 80), MODES["confocal"])
    wide, _ = optics((64, 80), MODES["widefield"])
    assert wide[0, 40] < conf[0, 40]


# ------------------------------------------------------------------ render_timepoint


def test_render_timepoint_shapes_background_and_determinism() -> None:
    preset = CellLinePreset(name="p", description="", channels=(
        ChannelSpec("cyto", "cytoplasm", brightness=800.0),
        ChannelSpec("nuc", "nuclei", brightness=800.0)))
    cells = _two_cells(2, [1.0, 1.0])
    img, geo = _render(preset, cells)
    again, _ = _render(preset, cells)
    other, _ = _render(preset, cells, seed=1)
    assert img.shape == (2, *_SHAPE) and img.dtype == np.uint16
    assert np.array_equal(img, again) and not np.array_equal(img, other)
    mode = MODES["confocal"]
    outside = geo.cyto == 0
    bg = float(np.median(img[:, outside]))
    assert bg == pytest.approx(mode.offset_adu + mode.background_e * mode.gain_adu_per_e, rel=0.05)
    # the cytoplasmic reporter is dim in the nucleus, the nuclear one bright there
    nuc, cyt = geo.nuclei > 0, (geo.cyto > 0) & (geo.nuclei == 0)
    assert img[0][cyt].mean() - bg > 2 * (img[0][nuc].mean() - bg)
    assert img[1][nuc].mean() - bg > 5 * (img[1][cyt].mean() - bg)


def test_render_timepoint_scales_with_expression_and_state() -> None:
    preset = CellLinePreset(name="p", description="", channels=(
        ChannelSpec("cyto", "nuclei+cytoplasm", brightness=800.0),))
    img, geo = _render(preset, _two_cells(1, [0.0, 1.0]))
    bg = float(np.median(img[0][geo.cyto == 0]))
    dark, bright = img[0][geo.cyto == 1].mean() - bg, img[0][geo.cyto == 2].mean() - bg
    assert abs(dark) < 10 and bright > 300
    img, geo = _render(preset, _two_cells(1, [1.0, 1.0], state=(NORMAL, MITOTIC)))
    bg = float(np.median(img[0][geo.cyto == 0]))
    normal, mitotic = img[0][geo.cyto == 1].mean() - bg, img[0][geo.cyto == 2].mean() - bg
    assert mitotic > 1.1 * normal  # mitotic cells are rendered 1.4 x brighter (and smaller)
    img, geo = _render(preset, _two_cells(1, [1.0, 1.0], state=(NORMAL, DYING)))
    assert img[0][geo.cyto == 2].mean() > img[0][geo.cyto == 1].mean()


def test_render_timepoint_clips_at_the_camera_range() -> None:
    preset = CellLinePreset(name="p", description="", channels=(
        ChannelSpec("cyto", "cytoplasm", brightness=1e6),))
    img, geo = _render(preset, _two_cells(1, [1.0, 1.0]))
    assert img.max() == 65535
    assert img[0][geo.cyto == 0].min() > 0


def test_membrane_reporter_lights_the_cell_rim() -> None:
    preset = CellLinePreset(name="p", description="", channels=(
        ChannelSpec("mem", "membrane", brightness=800.0),))
    img, geo = _render(preset, _two_cells(1, [1.0, 1.0]))
    rim = label_boundary(geo.cyto) > 0
    core = ndi.binary_erosion(geo.cyto > 0, iterations=4)
    assert img[0][rim].mean() > 1.5 * img[0][core].mean()


def test_translocation_reporter_follows_the_response() -> None:
    preset = CellLinePreset(name="p", description="", channels=(
        ChannelSpec("tr", "translocation", brightness=2000.0, nc_ratio_start=0.4,
                    nc_ratio_end=2.5),))
    cells = _two_cells(1, [1.0, 1.0])
    cells["responder"][0] = 0.0  # cell 1 never responds

    def nc(img: np.ndarray, geo, label: int) -> float:
        bg = float(np.median(img[0][geo.cyto == 0]))
        core = ndi.binary_erosion(geo.nuclei == label, iterations=1)
        ring = (geo.cyto == label) & ~ndi.binary_dilation(geo.nuclei == label, iterations=2)
        return (img[0][core].mean() - bg) / (img[0][ring].mean() - bg)

    early, geo = _render(preset, cells, t_h=0.0)
    late, _ = _render(preset, cells, t_h=40.0)
    assert nc(early, geo, 2) < 1.0 < nc(late, geo, 2)
    assert nc(late, geo, 1) < 1.0  # the non-responder stays cytoplasmic


# ------------------------------------------------------------------ rendered fields


def _nc_ratio(f: SimulatedField, t: int, channel: str, cell_ids, background) -> float:
    c = f.channel_names.index(channel)
    img = f.image[t, c].astype(np.float64)
    img -= background(img, f.cyto[t])
    nuc = f.nuclei[t]
    cyt_only = np.where(nuc == 0, f.cyto[t], 0)
    ids = np.array(sorted(cell_ids(nuc) & cell_ids(cyt_only)))
    n = np.asarray(ndi.mean(img, nuc, ids))
    cy = np.asarray(ndi.mean(img, cyt_only, ids))
    ok = (n + cy) > 50  # skip dark cells
    return float(np.median(n[ok] / np.maximum(cy[ok], 1.0)))


def test_translocation_changes_nuclear_cytoplasmic_ratio(
    cl1_series: SimulatedField, cell_ids, background
) -> None:
    first = _nc_ratio(cl1_series, 0, "translocation-reporter", cell_ids, background)
    last = _nc_ratio(cl1_series, 24, "translocation-reporter", cell_ids, background)
    assert first < 1.0 < last
    assert last / first > 2.0


def test_nuclear_export_reporter_decreases_ratio(cell_ids, background) -> None:
    f = simulate_field("CL2", size=128, timepoints=25, seed=0)
    first = _nc_ratio(f, 0, "translocation-reporter", cell_ids, background)
    last = _nc_ratio(f, 24, "translocation-reporter", cell_ids, background)
    assert last < first / 1.5


def test_constant_channel_ratio_is_stable(cl1_series: SimulatedField, cell_ids,
                                          background) -> None:
    # the constant cytoplasmic reporter keeps dim nuclei over time
    assert _nc_ratio(cl1_series, 0, "cyto-reporter", cell_ids, background) < 0.5
    assert _nc_ratio(cl1_series, 24, "cyto-reporter", cell_ids, background) < 0.5


def test_true_ratio_matches_the_rendered_ratio(cl1_series: SimulatedField, cell_ids,
                                               background) -> None:
    t = 10  # 30 h: mid-response, the true ratios spread most
    truth = cl1_series.truth[cl1_series.truth["t"] == t].set_index("label")
    img = cl1_series.image[t, 1].astype(np.float64) - background(
        cl1_series.image[t, 1], cl1_series.cyto[t]
    )
    nuc = cl1_series.nuclei[t]
    cyt_only = np.where(nuc == 0, cl1_series.cyto[t], 0)
    ids = np.array(sorted(cell_ids(nuc) & cell_ids(cyt_only)))
    n = np.asarray(ndi.mean(img, nuc, ids))
    cy = np.asarray(ndi.mean(img, cyt_only, ids))
    bright = (n + cy) > 100
    measured = pd.Series(n / np.maximum(cy, 1.0), index=ids)[bright]
    rho = measured.corr(truth.loc[measured.index, _RATIO], method="spearman")
    assert rho > 0.8

"""Tests of the synthetic HCS simulator (structfree_dask.simulate)."""

from __future__ import annotations

import hashlib
import logging
import pathlib

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import skimage.measure
import zarr
from scipy import ndimage as ndi

from structfree_dask.config import TRUTH_TABLE, true_ratio_column
from structfree_dask.simulate import (
    IMAGING_MODES,
    PRESETS,
    TIME_INTERVAL_H,
    CellLinePreset,
    ChannelSpec,
    Localization,
    SimulatedField,
    simulate_field,
    simulate_plate,
)

_CONSTANT_STRUCTURAL = {Localization.NUCLEI, Localization.CYTOPLASM, Localization.NUCLEI_CYTOPLASM}


@pytest.fixture(scope="module")
def cl1_series() -> SimulatedField:
    """A small CL1 field over the full 72 h (25 timepoints)."""
    return simulate_field("CL1", size=128, timepoints=25, seed=0)


def _cell_ids(lab: np.ndarray) -> set[int]:
    return {int(i) for i in np.unique(lab) if i}


def _background(img: np.ndarray, cyto: np.ndarray) -> float:
    return float(np.median(img[cyto == 0]))


# ------------------------------------------------------------------ determinism


def test_same_seed_is_bitwise_identical() -> None:
    a = simulate_field("CL2", size=96, timepoints=3, seed=7)
    b = simulate_field("CL2", size=96, timepoints=3, seed=7)
    for name in ("image", "nuclei", "cyto"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


#: The rendering, pinned: sha256 of the label images (cells, then nuclei), bit for bit, and
#: the mean and standard deviation of every (timepoint, channel) plane of the image, to 1e-3.
#: The image itself is not pinned bit for bit: numpy's vectorised float maths differ in the
#: last bits between CPUs (with and without AVX-512), and a Poisson draw can follow; the same
#: field rendered both ways differs in a few dozen of its 330 000 pixels.
_PINNED = {
    ('CL1', 'confocal', 64, 3, 1): (
        "ea59fa2036b987f17872859e9be7c90a995bbc387dce4e1fb0a6cc862836b5a2",
        [[410.80, 648.13, 214.32, 217.34],
         [410.62, 647.81, 213.01, 208.91],
         [398.12, 637.75, 213.24, 194.86]],
        [[469.21, 695.44, 186.65, 213.15],
         [485.72, 707.45, 193.41, 202.57],
         [494.49, 727.01, 200.84, 183.61]]),
    ('CL5', 'widefield', 64, 3, 1): (
        "9ac0557495536df43fca1674b57f9f74d68f280ce205332fa0816c0fc821c41b",
        [[118.92, 118.70, 118.97, 118.19],
         [118.99, 118.77, 118.92, 118.22],
         [119.39, 119.17, 119.37, 119.26]],
        [[5.59, 5.51, 5.72, 5.38],
         [5.56, 5.64, 5.60, 5.30],
         [5.94, 5.60, 5.95, 6.12]]),
    ('CL2', 'confocal', 96, 12, 2): (
        "2f28623f376722f208d8e77b0b60e665378be72a68df2e3d6b4b30b8978460cf",
        [[1033.71, 290.15, 209.70],
         [1046.89, 294.51, 210.99],
         [1053.89, 298.11, 211.07],
         [1036.03, 304.36, 213.26],
         [1016.11, 314.97, 212.87],
         [1013.05, 316.92, 210.65],
         [1030.32, 325.88, 213.05],
         [1101.96, 333.31, 219.82],
         [1149.88, 335.52, 220.09],
         [1183.15, 340.21, 220.54],
         [1206.99, 342.36, 221.45],
         [1244.42, 355.09, 222.41]],
        [[1238.84, 279.32, 180.51],
         [1247.76, 281.62, 179.01],
         [1219.11, 280.51, 177.31],
         [1212.36, 285.48, 181.82],
         [1187.23, 295.48, 178.55],
         [1239.34, 298.32, 178.24],
         [1286.11, 306.27, 185.24],
         [1259.34, 312.13, 187.35],
         [1308.74, 314.74, 183.40],
         [1276.56, 310.06, 176.60],
         [1297.64, 313.04, 171.35],
         [1293.59, 325.76, 165.35]]),
}


@pytest.mark.parametrize(("name", "mode", "size", "timepoints", "seed"), sorted(_PINNED))
def test_rendering_matches_pinned_values(
    name: str, mode: str, size: int, timepoints: int, seed: int
) -> None:
    f = simulate_field(name, size=size, timepoints=timepoints, seed=seed, mode=mode)
    labels, mean, std = _PINNED[name, mode, size, timepoints, seed]
    assert hashlib.sha256(f.cyto.tobytes() + f.nuclei.tobytes()).hexdigest() == labels
    image = f.image.astype(np.float64)
    np.testing.assert_allclose(image.mean(axis=(2, 3)), mean, rtol=1e-3, atol=0.01)
    np.testing.assert_allclose(image.std(axis=(2, 3)), std, rtol=1e-3, atol=0.01)


def test_seed_sequence_is_not_consumed() -> None:
    ss = np.random.SeedSequence(1234)
    a = simulate_field("CL5", size=64, timepoints=2, seed=ss)
    b = simulate_field("CL5", size=64, timepoints=2, seed=ss)
    assert np.array_equal(a.image, b.image)
    assert ss.n_children_spawned == 0


def test_different_seeds_differ() -> None:
    a = simulate_field("CL1", size=96, timepoints=1, seed=1)
    b = simulate_field("CL1", size=96, timepoints=1, seed=2)
    assert not np.array_equal(a.image, b.image)
    assert not np.array_equal(a.cyto, b.cyto)


def test_prefix_of_longer_run_matches_shorter_run() -> None:
    short = simulate_field("CL3", size=64, timepoints=2, seed=5)
    long = simulate_field("CL3", size=64, timepoints=4, seed=5)
    assert np.array_equal(short.image, long.image[:2])
    assert np.array_equal(short.cyto, long.cyto[:2])
    pd.testing.assert_frame_equal(short.truth, long.truth[long.truth["t"] < 2])


# ------------------------------------------------------------------ shapes and metadata


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shapes_dtypes_and_metadata(name: str) -> None:
    f = simulate_field(name, size=(64, 80), timepoints=2, seed=0)
    n_c = len(PRESETS[name].channels)
    assert f.image.shape == (2, n_c, 64, 80)
    assert f.image.dtype == np.uint16
    assert f.nuclei.shape == f.cyto.shape == (2, 64, 80)
    assert f.nuclei.dtype == f.cyto.dtype == np.uint32
    assert f.channel_names == PRESETS[name].channel_names
    assert len(f.localizations) == n_c
    assert f.pixel_size_um == pytest.approx(1.24)
    assert f.time_interval_h == TIME_INTERVAL_H == 3.0
    assert f.times_h.tolist() == [0.0, 3.0]
    assert f.cell_line == name and f.mode == "confocal"
    # camera offset present, no saturation, real signal above background
    assert f.image.min() > 50
    assert f.image.max() < 65535
    assert f.image.max() > 2 * f.image.min()


def test_preset_object_accepted() -> None:
    preset = CellLinePreset(
        name="custom",
        description="one membrane channel",
        channels=(ChannelSpec("membrane", "membrane"),),
    )
    f = simulate_field(preset, size=64, timepoints=1, seed=0)
    assert f.image.shape == (1, 1, 64, 64)
    assert f.channel_names == ("membrane",)


# ------------------------------------------------------------------ ground truth


@pytest.mark.parametrize("mode", IMAGING_MODES)
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_nucleus_inside_its_cell_with_same_id(name: str, mode: str) -> None:
    size = 128 if mode == "confocal" else 256
    f = simulate_field(name, size=size, timepoints=2, seed=3, mode=mode)
    for t in range(2):
        nuc, cyto = f.nuclei[t], f.cyto[t]
        assert np.all((nuc == 0) | (nuc == cyto))
        assert _cell_ids(nuc) <= _cell_ids(cyto)
        assert len(_cell_ids(nuc)) > 0
        # cells without a visible nucleus are only those cut by the field border
        border = np.concatenate([cyto[0], cyto[-1], cyto[:, 0], cyto[:, -1]])
        assert _cell_ids(cyto) - _cell_ids(nuc) <= _cell_ids(border)
        # every label is one 4-connected piece and is smaller than its cell
        for lab in (cyto, nuc):
            pieces = skimage.measure.label(lab, background=0, connectivity=1)
            assert pieces.max() == len(_cell_ids(lab))
        areas_c = np.bincount(cyto.ravel())
        areas_n = np.bincount(nuc.ravel(), minlength=len(areas_c))
        ids = np.array(sorted(_cell_ids(nuc)))
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


# ------------------------------------------------------------------ presets


def test_presets_have_three_or_four_nonstructural_channels() -> None:
    assert sorted(PRESETS) == ["CL1", "CL2", "CL3", "CL4", "CL5"]
    for key, preset in PRESETS.items():
        assert preset.name == key
        assert 3 <= len(preset.channels) <= 4
        assert len(set(preset.channel_names)) == len(preset.channels)
        assert any(loc.is_dynamic for loc in preset.localizations)
    assert not _CONSTANT_STRUCTURAL & set(PRESETS["CL5"].localizations)
    for loc in Localization:
        assert any(loc in p.localizations for p in PRESETS.values()), loc


# ------------------------------------------------------------------ intensities


def test_dark_cells_exist() -> None:
    f = simulate_field("CL1", size=256, timepoints=1, seed=0)
    cyto = f.cyto[0]
    ids = np.array(sorted(_cell_ids(cyto)))
    areas = np.bincount(cyto.ravel())[ids]
    big = ids[areas >= 80]
    found = []
    for c in range(f.image.shape[1]):
        img = f.image[0, c].astype(np.float64)
        bg = _background(img, cyto)
        means = np.asarray(ndi.mean(img, cyto, big)) - bg
        dark = means < 0.05 * np.median(means)
        found.append(dark.mean())
    assert max(found) > 0.05
    assert all(frac < 0.5 for frac in found)


def _nc_ratio(f: SimulatedField, t: int, channel: str) -> float:
    c = f.channel_names.index(channel)
    img = f.image[t, c].astype(np.float64)
    img -= _background(img, f.cyto[t])
    nuc = f.nuclei[t]
    cyt_only = np.where(nuc == 0, f.cyto[t], 0)
    ids = np.array(sorted(_cell_ids(nuc) & _cell_ids(cyt_only)))
    n = np.asarray(ndi.mean(img, nuc, ids))
    cy = np.asarray(ndi.mean(img, cyt_only, ids))
    ok = (n + cy) > 50  # skip dark cells
    return float(np.median(n[ok] / np.maximum(cy[ok], 1.0)))


def test_translocation_changes_nuclear_cytoplasmic_ratio(cl1_series: SimulatedField) -> None:
    first = _nc_ratio(cl1_series, 0, "translocation-reporter")
    last = _nc_ratio(cl1_series, 24, "translocation-reporter")
    assert first < 1.0 < last
    assert last / first > 2.0


def test_nuclear_export_reporter_decreases_ratio() -> None:
    f = simulate_field("CL2", size=128, timepoints=25, seed=0)
    first = _nc_ratio(f, 0, "translocation-reporter")
    last = _nc_ratio(f, 24, "translocation-reporter")
    assert last < first / 1.5


def test_constant_channel_ratio_is_stable(cl1_series: SimulatedField) -> None:
    # the constant cytoplasmic reporter keeps dim nuclei over time
    assert _nc_ratio(cl1_series, 0, "cyto-reporter") < 0.5
    assert _nc_ratio(cl1_series, 24, "cyto-reporter") < 0.5


# ------------------------------------------------------------------ dynamics


def test_division_and_death_change_cell_count(cl1_series: SimulatedField) -> None:
    counts = [len(_cell_ids(lab)) for lab in cl1_series.cyto]
    assert len(set(counts)) > 1
    first, last = _cell_ids(cl1_series.cyto[0]), _cell_ids(cl1_series.cyto[-1])
    assert last - first, "no new (daughter) IDs appeared"
    assert first - last, "no cell disappeared"
    assert max(last) > max(first)


def test_ids_persist_and_cells_move_slowly(cl1_series: SimulatedField) -> None:
    for t in range(3):
        a, b = cl1_series.cyto[t], cl1_series.cyto[t + 1]
        shared = np.array(sorted(_cell_ids(a) & _cell_ids(b)))
        assert len(shared) >= 0.6 * len(_cell_ids(a))
        ca = np.array(ndi.center_of_mass(np.ones_like(a), a, shared))
        cb = np.array(ndi.center_of_mass(np.ones_like(b), b, shared))
        shift = np.linalg.norm(ca - cb, axis=1)
        assert np.median(shift) < 5.0  # pixels per 3 h; cells are ~20 px across


# ------------------------------------------------------------------ ground-truth table

_RATIO = true_ratio_column("translocation-reporter")


def test_truth_lists_every_labelled_cell_once(cl1_series: SimulatedField) -> None:
    truth = cl1_series.truth
    assert list(truth.columns) == ["label", "t", "parent_label", _RATIO]
    assert [str(d) for d in truth.dtypes] == ["int64", "int32", "int64", "float64"]
    assert not truth.duplicated(["t", "label"]).any()
    assert truth.equals(truth.sort_values(["t", "label"]).reset_index(drop=True))
    for t, lab in enumerate(cl1_series.cyto):
        assert truth.loc[truth["t"] == t, "label"].tolist() == sorted(_cell_ids(lab))
    assert set(truth["t"]) == set(range(len(cl1_series.cyto)))


def test_truth_has_one_column_per_translocation_channel() -> None:
    f = simulate_field("CL4", size=64, timepoints=1, seed=0)  # no translocation reporter
    assert list(f.truth.columns) == ["label", "t", "parent_label"]


def test_lineage_is_consistent_with_labels(cl1_series: SimulatedField) -> None:
    truth = cl1_series.truth
    lineage = cl1_series.lineage
    assert lineage, "no division in 72 h"
    assert (truth.groupby("label")["parent_label"].nunique() == 1).all()
    parents = truth.groupby("label")["parent_label"].first()
    assert lineage == {int(d): int(m) for d, m in parents[parents > 0].items()}
    first = truth.groupby("label")["t"].min()
    last = truth.groupby("label")["t"].max()
    mothers_seen = 0
    for daughter, mother in lineage.items():
        assert mother != daughter and daughter > mother
        if mother in last.index:  # the mother may have lived outside the field
            mothers_seen += 1
            assert first[daughter] > last[mother]
            after = truth[(truth["t"] >= first[daughter]) & (truth["label"] == mother)]
            assert after.empty
    assert mothers_seen > 0
    # each division gives two daughters with the same mother
    assert max(np.bincount(list(lineage.values()))) <= 2


def test_true_ratio_follows_the_response(cl1_series: SimulatedField) -> None:
    spec = PRESETS["CL1"].channels[1]
    assert spec.localization is Localization.TRANSLOCATION
    start, end = np.float32(spec.nc_ratio_start), np.float32(spec.nc_ratio_end)
    truth = cl1_series.truth
    ratio = truth[_RATIO]
    assert ratio.between(start, end).all()
    # cells start near nc_ratio_start (the response sets in after about 30 h) ...
    assert ratio[truth["t"] == 0].median() < 1.05 * start
    # ... responders move to nc_ratio_end over 72 h, non-responders stay at nc_ratio_start
    final = ratio[truth["t"] == truth["t"].max()]
    assert final.median() > 0.9 * end
    assert 0 < (final == start).sum() < 0.5 * len(final)
    non_responders = truth.loc[truth["t"].eq(truth["t"].max()) & ratio.eq(start), "label"]
    assert (truth.loc[truth["label"].isin(non_responders), _RATIO] == start).all()
    # a cell's ratio only moves one way (its onset and time scale are fixed)
    steps = truth.sort_values(["label", "t"]).groupby("label")[_RATIO].diff().dropna()
    assert (steps >= 0).all()


def test_true_ratio_of_an_export_reporter_decreases() -> None:
    f = simulate_field("CL2", size=64, timepoints=25, seed=0)
    spec = PRESETS["CL2"].channels[1]
    ratio = f.truth.groupby("t")[_RATIO].median()
    assert ratio.iloc[0] > 0.95 * spec.nc_ratio_start
    assert ratio.iloc[-1] < 1.2 * spec.nc_ratio_end


def test_true_ratio_matches_the_rendered_ratio(cl1_series: SimulatedField) -> None:
    t = 10  # 30 h: mid-response, the true ratios spread most
    truth = cl1_series.truth[cl1_series.truth["t"] == t].set_index("label")
    img = cl1_series.image[t, 1].astype(np.float64) - _background(
        cl1_series.image[t, 1], cl1_series.cyto[t]
    )
    nuc = cl1_series.nuclei[t]
    cyt_only = np.where(nuc == 0, cl1_series.cyto[t], 0)
    ids = np.array(sorted(_cell_ids(nuc) & _cell_ids(cyt_only)))
    n = np.asarray(ndi.mean(img, nuc, ids))
    cy = np.asarray(ndi.mean(img, cyt_only, ids))
    bright = (n + cy) > 100
    measured = pd.Series(n / np.maximum(cy, 1.0), index=ids)[bright]
    rho = measured.corr(truth.loc[measured.index, _RATIO], method="spearman")
    assert rho > 0.8


# ------------------------------------------------------------------ imaging modes


def _snr(f: SimulatedField) -> float:
    values = []
    for c in range(f.image.shape[1]):
        img = f.image[0, c].astype(np.float64)
        bg = img[f.cyto[0] == 0]
        values.append((np.median(img[f.cyto[0] > 0]) - np.median(bg)) / bg.std())
    return float(np.median(values))


def test_widefield_has_larger_cells_and_lower_snr() -> None:
    conf = simulate_field("CL1", size=256, timepoints=1, seed=4)
    wide = simulate_field("CL1", size=384, timepoints=1, seed=4, mode="widefield")
    assert wide.pixel_size_um == pytest.approx(0.32)

    def median_area(f: SimulatedField) -> float:
        areas = np.bincount(f.cyto[0].ravel())[1:]
        return float(np.median(areas[areas > 0]))

    ratio = np.sqrt(median_area(wide) / median_area(conf))
    assert 2.5 < ratio < 6.0
    assert _snr(wide) < 0.7 * _snr(conf)


# ------------------------------------------------------------------ argument checking


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"preset": "CL9"}, ValueError, r"unknown cell line 'CL9'.*'CL1'.*'CL5'"),
        ({"preset": 3}, TypeError, r"CellLinePreset"),
        ({"size": 32}, ValueError, r"size must be >= 64, got 32"),
        ({"size": (64, 10)}, ValueError, r"size\[1\] must be >= 64, got 10"),
        ({"size": (64, 64, 64)}, ValueError, r"\(y, x\) pair, got 3"),
        ({"size": 64.0}, TypeError, r"size must be an int"),
        ({"timepoints": 0}, ValueError, r"timepoints must be >= 1, got 0"),
        ({"seed": -1}, ValueError, r"non-negative"),
        ({"seed": "x"}, TypeError, r"seed must be"),
        ({"mode": "spinning"}, ValueError, r"unknown mode 'spinning'.*'confocal'.*'widefield'"),
    ],
)
def test_bad_arguments_raise_helpful_errors(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    args: dict[str, object] = {"preset": "CL1", "size": 64, "timepoints": 1, "seed": 0}
    args.update(kwargs)
    preset = args.pop("preset")
    with pytest.raises(error, match=match):
        simulate_field(preset, **args)  # type: ignore[arg-type]


def test_bad_specs_raise_helpful_errors() -> None:
    with pytest.raises(ValueError, match=r"localization must be one of .*'membrane'"):
        ChannelSpec("x", "golgi")
    with pytest.raises(ValueError, match=r"dark_fraction"):
        ChannelSpec("x", "er", dark_fraction=1.5)
    with pytest.raises(ValueError, match=r"at least one channel"):
        CellLinePreset(name="empty", description="", channels=())
    with pytest.raises(ValueError, match=r"repeat"):
        CellLinePreset(
            name="dup", description="", channels=(ChannelSpec("a", "er"), ChannelSpec("a", "er"))
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rows": 0}, r"rows must be >= 1, got 0"),
        ({"fields": 0}, r"fields must be >= 1"),
        ({"cell_line": "CLX"}, r"unknown cell line"),
        ({"mode": "tirf"}, r"unknown mode"),
    ],
)
def test_simulate_plate_validates_before_writing(
    tmp_path: pathlib.Path, kwargs: dict[str, object], match: str
) -> None:
    out = tmp_path / "bad.zarr"
    with pytest.raises(ValueError, match=match):
        simulate_plate(out, size=64, **kwargs)  # type: ignore[arg-type]
    assert not out.exists()


# ------------------------------------------------------------------ plate writer


@pytest.mark.parametrize("ngff_version", ["0.4", "0.5"])
def test_simulate_plate_writes_valid_ome_zarr(
    tmp_path: pathlib.Path, ngff_version: str, caplog: pytest.LogCaptureFixture
) -> None:
    from ome_zarr_models import open_ome_zarr

    path = tmp_path / "plate.zarr"
    with caplog.at_level(logging.INFO, logger="structfree_dask.simulate"):
        out = simulate_plate(
            path, cell_line="CL5", rows=2, cols=2, fields=2, timepoints=2, size=64, seed=3,
            ngff_version=ngff_version,
        )
    assert out == path and path.is_dir()
    model = open_ome_zarr(zarr.open_group(str(path), mode="r"))
    assert type(model).__name__ == "HCS"

    messages = [r.getMessage() for r in caplog.records if r.name == "structfree_dask.simulate"]
    assert len(messages) == 2 * 2 * 2

    root = zarr.open_group(str(path), mode="r")
    image_a = np.asarray(root["A/1/0/0"])
    assert image_a.shape == (2, 4, 64, 64) and image_a.dtype == np.uint16
    labels = np.asarray(root["A/1/0/labels/gt_nuclei/0"])
    cyto = np.asarray(root["A/1/0/labels/gt_cyto/0"])
    assert labels.shape[0] == 2 and labels.shape[-2:] == (64, 64)
    assert np.all((labels == 0) | (labels == cyto))
    # per-field seeds: fields differ, and each equals a direct simulation with its derived seed
    image_b = np.asarray(root["B/2/1/0"])
    assert not np.array_equal(image_a, image_b)
    direct = simulate_field(
        "CL5", size=64, timepoints=2,
        seed=np.random.SeedSequence(entropy=3, spawn_key=(1, 1, 1)),
    )
    assert np.array_equal(image_b, direct.image)


def _field_truth(cell_line: str | CellLinePreset, plate_seed: int, where: tuple[int, int, int],
                 timepoints: int) -> pd.DataFrame:
    seed = np.random.SeedSequence(entropy=plate_seed, spawn_key=where)
    return simulate_field(cell_line, size=64, timepoints=timepoints, seed=seed).truth


def test_simulate_plate_writes_the_truth_tables(tmp_path: pathlib.Path) -> None:
    ngio = pytest.importorskip("ngio")
    path = simulate_plate(tmp_path / "plate.zarr", cell_line="CL1", cols=2, timepoints=3,
                          size=64, seed=5)
    expected = {col: _field_truth("CL1", 5, (0, int(col) - 1, 0), 3) for col in ("1", "2")}
    assert all(len(e) for e in expected.values())

    # the field's feature table, read with ngio (``label`` is its index)
    for col, want in expected.items():
        table = ngio.open_ome_zarr_plate(str(path)).get_image("A", col, "0").get_table(
            TRUTH_TABLE)
        got = table.dataframe.reset_index()
        got = got.sort_values(["t", "label"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want)
    attrs = dict(zarr.open_group(str(path), mode="r")[f"A/1/0/tables/{TRUTH_TABLE}"].attrs)
    assert attrs["type"] == "feature_table"
    assert attrs["region"] == {"path": "../labels/gt_cyto"}
    assert attrs["measurement_columns"] == [_RATIO]

    # the plate-level dataset, read with pandas
    plate = pd.read_parquet(path / "measurements" / TRUTH_TABLE)
    plate = plate.sort_values(["column", "t", "label"]).reset_index(drop=True)
    want = pd.concat(
        [e.assign(well=f"A{col}", row="A", column=col, field=np.int32(0))
         for col, e in expected.items()], ignore_index=True,
    )
    want = want[["well", "row", "column", "field", *expected["1"].columns]]
    pd.testing.assert_frame_equal(plate, want, check_dtype=False)
    assert [str(d) for d in plate.dtypes[3:]] == ["int32", "int64", "int32", "int64", "float64"]


def test_simulate_plate_writes_empty_truth_parts(tmp_path: pathlib.Path) -> None:
    # one short-lived cell: it dies after the first timepoint, leaving the field empty
    lonely = CellLinePreset(
        name="lonely", description="", channels=(ChannelSpec("tr", "translocation"),),
        confluence=0.01, death_rate_per_h=1.0, cell_diameter_um=60.0,
    )
    path = simulate_plate(tmp_path / "plate.zarr", cell_line=lonely, timepoints=2, size=64,
                          seed=2)
    expected = _field_truth(lonely, 2, (0, 0, 0), 2)
    assert expected["t"].tolist() == [0]
    part = path / "A/1/0/tables" / TRUTH_TABLE / "table.parquet" / "t00001.parquet"
    plate_part = path / "measurements" / TRUTH_TABLE / "A-1-0-t00001.parquet"
    assert pq.read_table(part).num_rows == pq.read_table(plate_part).num_rows == 0
    assert pq.read_schema(part).names == list(expected.columns)
    assert pq.read_schema(plate_part).names == [
        "well", "row", "column", "field", *expected.columns]
    from structfree_dask.io import open_plate, read_feature_table

    got = read_feature_table(open_plate(path).field("A/1/0"), TRUTH_TABLE)
    pd.testing.assert_frame_equal(got, expected)


def test_simulate_plate_writes_the_truth_tables_to_an_object_store(s3_env) -> None:
    from structfree_dask.io import open_plate, read_feature_table, read_plate_dataset, remove_tree

    s3_env("admin")
    url = "s3://plates/truth.zarr"
    remove_tree(url)
    assert simulate_plate(url, cell_line="CL2", timepoints=2, size=64, seed=4) == url
    expected = _field_truth("CL2", 4, (0, 0, 0), 2)
    got = read_feature_table(open_plate(url).field("A/1/0"), TRUTH_TABLE)
    pd.testing.assert_frame_equal(got, expected)
    plate = read_plate_dataset(url, TRUTH_TABLE)
    assert plate["well"].unique().tolist() == ["A1"]
    pd.testing.assert_frame_equal(plate.drop(columns=["well", "row", "column", "field"]),
                                  expected)

"""Tests of structfree_dask.simulate.field: simulate_field, SimulatedField and the truth table."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from structfree_dask.config import true_ratio_column
from structfree_dask.simulate import (
    PRESETS,
    TIME_INTERVAL_H,
    CellLinePreset,
    ChannelSpec,
    Localization,
    SimulatedField,
    simulate_field,
)
from structfree_dask.simulate.field import (
    DEFOCUS_SIGMA_UM,
    TRUTH_DTYPES,
    TRUTH_KEYS,
    defocused_timepoints,
    rendered_field,
    stage_shifts,
    truth_columns,
    truth_frame,
    truth_rows,
)
from structfree_dask.simulate.options import child_rng
from structfree_dask.simulate.render import progress, translocation_ratio

_RATIO = true_ratio_column("translocation-reporter")


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


def test_simulated_field_defaults_and_times() -> None:
    image = np.zeros((3, 1, 4, 4), np.uint16)
    labels = np.zeros((3, 4, 4), np.uint32)
    f = SimulatedField(image=image, nuclei=labels, cyto=labels, channel_names=("a",),
                       pixel_size_um=0.5, time_interval_h=1.5)
    assert f.times_h.dtype == np.float64
    assert f.times_h.tolist() == [0.0, 1.5, 3.0]
    assert f.mode == "confocal" and f.cell_line == "" and f.lineage == {}
    assert list(f.truth.columns) == list(TRUTH_KEYS) and len(f.truth) == 0
    assert [str(d) for d in f.truth.dtypes] == ["int64", "int32", "int64"]


def test_rendered_field_takes_metadata_from_cell_line_and_mode() -> None:
    preset = PRESETS["CL3"]
    image = np.zeros((2, 4, 64, 64), np.uint16)
    labels = np.zeros((2, 64, 64), np.uint32)
    truth = truth_frame([], truth_columns(preset))
    f = rendered_field(image, labels, labels, preset, "widefield", truth, {7: 3})
    assert f.image is image and f.truth is truth and f.lineage == {7: 3}
    assert f.pixel_size_um == pytest.approx(0.32)
    assert f.time_interval_h == TIME_INTERVAL_H
    assert f.cell_line == "CL3" and f.mode == "widefield"
    assert f.channel_names == preset.channel_names
    assert f.localizations == ("nuclei", "cytoplasm", "er", "translocation")


# ------------------------------------------------------------------ ground-truth table


def test_truth_columns_follow_the_translocation_channels() -> None:
    assert truth_columns(PRESETS["CL4"]) == ["label", "t", "parent_label"]
    assert truth_columns(PRESETS["CL1"]) == ["label", "t", "parent_label", _RATIO]
    two = CellLinePreset(name="two", description="", channels=(
        ChannelSpec("a", "translocation"), ChannelSpec("m", "mitochondria"),
        ChannelSpec("b", "translocation")))
    assert truth_columns(two) == [*TRUTH_KEYS, true_ratio_column("a"), true_ratio_column("b")]


def test_truth_frame_is_typed_when_empty_and_concatenates_parts() -> None:
    columns = [*TRUTH_KEYS, _RATIO]
    empty = truth_frame([], columns)
    assert list(empty.columns) == columns and len(empty) == 0
    assert [str(d) for d in empty.dtypes] == ["int64", "int32", "int64", "float64"]
    assert TRUTH_DTYPES == {"label": np.int64, "t": np.int32, "parent_label": np.int64}
    parts = [
        {"label": np.array([1, 2], np.int64), "t": np.zeros(2, np.int32),
         "parent_label": np.zeros(2, np.int64), _RATIO: np.array([0.5, 0.6])},
        {"label": np.array([4], np.int64), "t": np.ones(1, np.int32),
         "parent_label": np.array([2], np.int64), _RATIO: np.array([1.5])},
    ]
    got = truth_frame(parts, columns)
    assert got["label"].tolist() == [1, 2, 4]
    assert got["t"].tolist() == [0, 0, 1]
    assert got["parent_label"].tolist() == [0, 0, 2]
    assert got[_RATIO].tolist() == [0.5, 0.6, 1.5]
    assert [str(d) for d in got.dtypes] == ["int64", "int32", "int64", "float64"]


def test_truth_rows_lists_the_labelled_cells_with_their_ratios() -> None:
    preset = PRESETS["CL1"]  # channel 1 is the translocation reporter
    n_c = len(preset.channels)
    cells = {
        "id": np.array([2, 5, 9], np.int64),  # cell 9 is not in the labels
        "onset": np.full((3, n_c), 10.0),
        "tau": np.full((3, n_c), 4.0),
        "responder": np.array([[1.0] * n_c, [0.0] * n_c, [1.0] * n_c]),
    }
    cyto = np.zeros((8, 8), np.uint32)
    cyto[:4] = 5
    cyto[4:] = 2
    rows = truth_rows(cells, preset, {5: 1, 9: 2}, cyto, t=3, t_h=9.0)
    assert list(rows) == ["label", "t", "parent_label", _RATIO]
    assert rows["label"].tolist() == [2, 5] and rows["label"].dtype == np.int64
    assert rows["t"].tolist() == [3, 3] and rows["t"].dtype == np.int32
    assert rows["parent_label"].tolist() == [0, 1]
    spec = preset.channels[1]
    want = translocation_ratio(spec, progress(cells, 1, 9.0))[[0, 1]]
    np.testing.assert_array_equal(rows[_RATIO], want.astype(np.float64))
    assert rows[_RATIO].dtype == np.float64
    # the non-responder stays at the start ratio; the responder has moved towards the end
    assert rows[_RATIO][1] == pytest.approx(spec.nc_ratio_start, rel=1e-6)
    assert spec.nc_ratio_start < rows[_RATIO][0] < spec.nc_ratio_end


def test_truth_lists_every_labelled_cell_once(cl1_series: SimulatedField, cell_ids) -> None:
    truth = cl1_series.truth
    assert list(truth.columns) == ["label", "t", "parent_label", _RATIO]
    assert [str(d) for d in truth.dtypes] == ["int64", "int32", "int64", "float64"]
    assert not truth.duplicated(["t", "label"]).any()
    assert truth.equals(truth.sort_values(["t", "label"]).reset_index(drop=True))
    for t, lab in enumerate(cl1_series.cyto):
        assert truth.loc[truth["t"] == t, "label"].tolist() == sorted(cell_ids(lab))
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


# ------------------------------------------------------------------ stage jitter


def _window(a: np.ndarray, jitter: int, shift: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The field's window, at the stage's ``shift``, on a world ``jitter`` px larger per side."""
    y0, x0 = jitter + int(shift[0]), jitter + int(shift[1])
    return a[..., y0:y0 + shape[0], x0:x0 + shape[1]]


def test_stage_jitter_zero_is_bitwise_the_default() -> None:
    a = simulate_field("CL2", size=(64, 80), timepoints=3, seed=4)
    b = simulate_field("CL2", size=(64, 80), timepoints=3, seed=4, stage_jitter_px=0)
    for name in ("image", "nuclei", "cyto"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert a.lineage == b.lineage
    assert b.stage_jitter_px == 0
    assert b.stage_shift.shape == (3, 2) and b.stage_shift.dtype == np.int64
    assert not b.stage_shift.any()
    assert "stage_dy" not in b.truth and "stage_dx" not in b.truth


def test_stage_shifts_are_bounded_drawn_per_timepoint_and_start_at_zero() -> None:
    ss = np.random.SeedSequence(9)
    shifts = stage_shifts(ss, 40, 15)
    assert shifts.shape == (40, 2) and shifts.dtype == np.int64
    assert shifts[0].tolist() == [0, 0]
    assert np.abs(shifts).max() <= 15 and np.abs(shifts).max() >= 10
    assert len({tuple(s) for s in shifts[1:]}) > 30  # drawn anew at every timepoint
    # each timepoint from its own child stream (5, t): prefixes agree, other draws untouched
    assert np.array_equal(stage_shifts(ss, 3, 15), shifts[:3])
    want = child_rng(ss, 5, 7).integers(-15, 15, size=2, endpoint=True)
    assert shifts[7].tolist() == want.tolist()
    assert ss.n_children_spawned == 0
    assert not stage_shifts(ss, 5, 0).any()


def test_stage_jitter_records_the_shifts_in_the_truth() -> None:
    j = simulate_field("CL1", size=64, timepoints=5, seed=3, stage_jitter_px=15)
    assert j.stage_jitter_px == 15
    assert np.array_equal(j.stage_shift, stage_shifts(np.random.SeedSequence(3), 5, 15))
    assert j.stage_shift[0].tolist() == [0, 0] and j.stage_shift[1:].any()
    assert list(j.truth.columns) == [
        "label", "t", "parent_label", "stage_dy", "stage_dx", _RATIO]
    assert [str(d) for d in j.truth.dtypes[:5]] == ["int64", "int32", "int64", "int32", "int32"]
    for t, rows in j.truth.groupby("t"):
        assert (rows["stage_dy"] == j.stage_shift[t, 0]).all()
        assert (rows["stage_dx"] == j.stage_shift[t, 1]).all()
        assert sorted(rows["label"]) == sorted(set(np.unique(j.cyto[t])) - {0})
    # the same draws with another seed give other shifts
    other = simulate_field("CL1", size=64, timepoints=5, seed=4, stage_jitter_px=15)
    assert not np.array_equal(other.stage_shift, j.stage_shift)


def test_jittered_labels_are_the_worlds_labels_seen_through_the_shifted_window() -> None:
    jitter, shape, n_t = 15, (64, 80), 4
    j = simulate_field("CL1", size=shape, timepoints=n_t, seed=1, stage_jitter_px=jitter)
    # the world: the same seed on a field larger by the jitter on every side, not jittered
    world = simulate_field("CL1", size=(shape[0] + 2 * jitter, shape[1] + 2 * jitter),
                           timepoints=n_t, seed=1)
    assert np.abs(j.stage_shift[1:]).max() >= 5
    for t in range(n_t):
        for name in ("cyto", "nuclei"):
            got = getattr(j, name)[t]
            want = _window(getattr(world, name)[t], jitter, j.stage_shift[t], shape)
            inside = got > 0
            assert np.array_equal(got[inside], want[inside]), (t, name)
            # what the window shows and the labels lack: stray pieces of labelled cells only
            lost = (want > 0) & ~inside
            assert set(np.unique(want[lost]).tolist()) <= set(np.unique(got).tolist())
            assert lost.sum() <= 0.02 * inside.sum()
        # one identity and one lineage: the same IDs mean the same cells
        assert all(world.lineage[d] == m for d, m in j.lineage.items())
    ids = [set(np.unique(c).tolist()) - {0} for c in j.cyto]
    assert ids[0] & ids[-1]  # cells persist across the shifts


def test_jittered_image_is_the_worlds_image_seen_through_the_shifted_window() -> None:
    jitter, shape, n_t = 10, (64, 64), 3
    j = simulate_field("CL1", size=shape, timepoints=n_t, seed=1, stage_jitter_px=jitter)
    world = simulate_field("CL1", size=(shape[0] + 2 * jitter, shape[1] + 2 * jitter),
                           timepoints=n_t, seed=1)

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])

    for t in range(n_t):
        img = j.image[t, 0]  # the cytoplasm reporter
        scores = {
            (dy, dx): corr(img, _window(world.image[t, 0], jitter, np.array([dy, dx]), shape))
            for dy in range(-jitter, jitter + 1, 1) for dx in range(-jitter, jitter + 1, 1)
        }
        assert max(scores, key=scores.__getitem__) == tuple(j.stage_shift[t].tolist())
        assert scores[tuple(j.stage_shift[t].tolist())] > 0.9
        # and the image shows the labels: cells are brighter than the background
        cells = j.cyto[t] > 0
        assert np.median(img[cells]) > 1.5 * np.median(img[~cells])


def test_stage_jitter_moves_the_content_by_minus_the_shift() -> None:
    j = simulate_field("CL1", size=96, timepoints=2, seed=1, stage_jitter_px=15)
    dy, dx = j.stage_shift[1]
    assert max(abs(dy), abs(dx)) >= 5

    def centroids(lab: np.ndarray) -> dict[int, np.ndarray]:
        edge = set(np.unique(np.r_[lab[0], lab[-1], lab[:, 0], lab[:, -1]]).tolist())
        out = {}
        for i in set(np.unique(lab).tolist()) - edge - {0}:
            yy, xx = np.nonzero(lab == i)
            out[i] = np.array([yy.mean(), xx.mean()])
        return out

    c0, c1 = centroids(j.cyto[0]), centroids(j.cyto[1])
    shared = sorted(set(c0) & set(c1))
    assert len(shared) >= 3
    moved = np.median([c1[i] - c0[i] for i in shared], axis=0)
    np.testing.assert_allclose(moved, [-dy, -dx], atol=2.0)  # cells themselves move little


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (-1, ValueError, r"stage_jitter_px must be >= 0, got -1"),
        (2.5, TypeError, r"stage_jitter_px must be an int >= 0, got float 2.5"),
        (True, TypeError, r"stage_jitter_px must be an int"),
        ("3", TypeError, r"stage_jitter_px must be an int"),
        (33, ValueError, r"stage_jitter_px must be <= 32 \(half the field's smaller side\)"),
    ],
)
def test_stage_jitter_refuses_bad_values(value: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        simulate_field("CL1", size=(64, 96), stage_jitter_px=value)  # type: ignore[arg-type]


# ------------------------------------------------------------------ defocus and motion scale


def test_defocus_and_motion_scale_at_their_defaults_are_bitwise_the_default() -> None:
    a = simulate_field("CL2", size=(64, 80), timepoints=3, seed=4)
    b = simulate_field("CL2", size=(64, 80), timepoints=3, seed=4, defocus_p=0.0,
                       motion_scale=1.0)
    for name in ("image", "nuclei", "cyto"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert a.lineage == b.lineage
    assert (b.defocus_p, b.motion_scale) == (0.0, 1.0)
    assert b.defocused.shape == (3,) and b.defocused.dtype == bool and not b.defocused.any()
    assert "defocused" not in b.truth


def test_defocused_timepoints_are_drawn_per_timepoint_and_never_the_first() -> None:
    ss = np.random.SeedSequence(9)
    drawn = defocused_timepoints(ss, 200, 0.3)
    assert drawn.shape == (200,) and drawn.dtype == bool
    assert not drawn[0]
    assert 0.2 < drawn[1:].mean() < 0.4
    # each timepoint from its own child stream (6, t): prefixes agree, other draws untouched
    assert np.array_equal(defocused_timepoints(ss, 5, 0.3), drawn[:5])
    assert bool(drawn[7]) == (child_rng(ss, 6, 7).random() < 0.3)
    assert ss.n_children_spawned == 0
    assert defocused_timepoints(ss, 4, 1.0).tolist() == [False, True, True, True]
    assert not defocused_timepoints(ss, 50, 0.0).any()


def _sharpness(img: np.ndarray) -> float:
    """Variance of the Laplacian of a lightly smoothed plane (high-frequency energy)."""
    return float(np.var(ndi.laplace(ndi.gaussian_filter(img.astype(np.float64), 1.0))))


def test_defocus_blurs_the_drawn_timepoints_and_keeps_the_cells() -> None:
    d = simulate_field("CL1", size=96, timepoints=4, seed=2, defocus_p=0.5)
    e = simulate_field("CL1", size=96, timepoints=4, seed=2)  # the same field, in focus
    assert d.defocus_p == 0.5
    assert d.defocused.tolist() == defocused_timepoints(np.random.SeedSequence(2), 4, 0.5).tolist()
    assert d.defocused.tolist() == [False, True, False, True]
    # the cells are still there: labels, lineage and truth are the field's in focus
    assert np.array_equal(d.cyto, e.cyto) and np.array_equal(d.nuclei, e.nuclei)
    assert d.lineage == e.lineage
    assert list(d.truth.columns) == ["label", "t", "parent_label", "defocused", _RATIO]
    assert str(d.truth["defocused"].dtype) == "bool"
    pd.testing.assert_frame_equal(d.truth.drop(columns="defocused"), e.truth)
    for t, rows in d.truth.groupby("t"):
        assert (rows["defocused"] == d.defocused[t]).all()
        assert sorted(rows["label"]) == sorted(set(np.unique(d.cyto[t])) - {0})
    for t in range(4):
        if not d.defocused[t]:  # in focus: the same image, bit for bit
            assert np.array_equal(d.image[t], e.image[t]), t
            continue
        for c in range(d.image.shape[1]):
            blurred, sharp = d.image[t, c], e.image[t, c]
            assert _sharpness(blurred) < 0.05 * _sharpness(sharp), (t, c)
            # and far blurrier than every in-focus timepoint of the field
            assert _sharpness(blurred) < 0.05 * min(
                _sharpness(d.image[u, c]) for u in range(4) if not d.defocused[u])
            # the light is spread, not lost
            assert blurred.mean() == pytest.approx(sharp.mean(), rel=0.01)


def test_defocus_blur_is_wide_and_does_not_wrap_around() -> None:
    assert DEFOCUS_SIGMA_UM >= 5.0  # about a nucleus' radius or more
    sparse = CellLinePreset(name="sparse", description="", confluence=0.04,
                            channels=(ChannelSpec("c", "cytoplasm", dark_fraction=0.0),))
    d = simulate_field(sparse, size=128, timepoints=2, seed=2, defocus_p=1.0)
    assert d.defocused.tolist() == [False, True]
    ref = simulate_field(sparse, size=128, timepoints=2, seed=2)  # in focus
    img, sharp = d.image[1, 0].astype(np.float64), ref.image[1, 0].astype(np.float64)
    cells = d.cyto[1] > 0
    assert cells[0].any() or cells[-1].any() or cells[:, 0].any() or cells[:, -1].any()
    # light leaves the cells: the cells get dimmer, their surroundings brighter
    near = ndi.binary_dilation(cells, iterations=3) & ~cells
    assert img[cells].mean() < 0.9 * sharp[cells].mean()
    assert img[near].mean() > 1.1 * sharp[near].mean()
    # far from every cell (and off the field's edges) nothing changes: no light wraps
    # around from a cell at the opposite edge, as a circular (Fourier) blur would bring
    far = ~ndi.binary_dilation(cells, iterations=round(4 * DEFOCUS_SIGMA_UM / 1.24) + 12)
    far[:6] = far[-6:] = far[:, :6] = far[:, -6:] = False
    assert far.mean() > 0.3
    assert np.abs(ndi.gaussian_filter(img - sharp, 4.0)[far]).max() < 15.0


def test_defocus_with_stage_jitter_has_both_truths() -> None:
    f = simulate_field("CL1", size=64, timepoints=3, seed=1, stage_jitter_px=8, defocus_p=1.0)
    assert list(f.truth.columns) == [
        "label", "t", "parent_label", "stage_dy", "stage_dx", "defocused", _RATIO]
    assert f.truth.groupby("t")["defocused"].first().tolist() == [False, True, True]
    j = simulate_field("CL1", size=64, timepoints=3, seed=1, stage_jitter_px=8)
    assert np.array_equal(f.cyto, j.cyto) and np.array_equal(f.stage_shift, j.stage_shift)


def _steps_in_radii(f: SimulatedField) -> np.ndarray:
    """Centroid displacement of every cell between consecutive timepoints, in cell radii.

    Cells that touch the field's edge at either timepoint are left out.
    """
    out = []
    for a, b in zip(f.cyto[:-1], f.cyto[1:], strict=True):
        edge = set(np.unique(np.r_[a[0], a[-1], a[:, 0], a[:, -1],
                                   b[0], b[-1], b[:, 0], b[:, -1]]).tolist())
        shared = np.array(sorted((set(np.unique(a).tolist()) & set(np.unique(b).tolist()))
                                 - edge - {0}))
        ca = np.array(ndi.center_of_mass(np.ones_like(a), a, shared))
        cb = np.array(ndi.center_of_mass(np.ones_like(b), b, shared))
        radius = np.sqrt(np.bincount(a.ravel())[shared] / np.pi)
        out.append(np.linalg.norm(cb - ca, axis=1) / radius)
    return np.concatenate(out)


def test_motion_scale_makes_small_cells_move_further_than_their_radius() -> None:
    slow = simulate_field("CL3", size=128, timepoints=4, seed=0)
    fast = simulate_field("CL3", size=128, timepoints=4, seed=0, motion_scale=10.0)
    assert fast.motion_scale == 10.0 and slow.motion_scale == 1.0
    s, f = _steps_in_radii(slow), _steps_in_radii(fast)
    assert len(s) >= 30 and len(f) >= 30
    assert np.median(s) < 0.3  # the cell line's own pace: a fraction of a radius
    assert np.median(f) > 1.0 and (f > 1.0).mean() > 0.5  # most move beyond their radius
    assert np.median(f) > 5 * np.median(s)
    # still a valid field: nuclei inside their cells, the truth lists the labels
    assert np.all((fast.nuclei == 0) | (fast.nuclei == fast.cyto))
    assert len(fast.truth) == sum(len(np.unique(c)) - 1 for c in fast.cyto)
    # the first timepoint is drawn before any motion: the same
    assert np.array_equal(fast.cyto[0], slow.cyto[0])
    assert np.array_equal(fast.image[0], slow.image[0])


def test_motion_scale_zero_keeps_cells_from_walking() -> None:
    still = simulate_field("CL3", size=128, timepoints=3, seed=0, motion_scale=0.0)
    slow = simulate_field("CL3", size=128, timepoints=3, seed=0)
    assert np.median(_steps_in_radii(still)) < np.median(_steps_in_radii(slow))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"defocus_p": -0.1}, ValueError, r"defocus_p must be in \[0, 1\], got -0\.1"),
        ({"defocus_p": 1.5}, ValueError, r"defocus_p must be in \[0, 1\], got 1\.5"),
        ({"defocus_p": float("nan")}, ValueError, r"defocus_p must be in \[0, 1\], got nan"),
        ({"defocus_p": True}, TypeError, r"defocus_p must be a number in \[0, 1\], got bool"),
        ({"defocus_p": "0.5"}, TypeError, r"defocus_p must be a number .*got str '0\.5'"),
        ({"defocus_p": None}, TypeError, r"defocus_p must be a number"),
        ({"motion_scale": -1}, ValueError, r"motion_scale must be in \[0, 100\], got -1\.0"),
        ({"motion_scale": 101.0}, ValueError, r"motion_scale must be in \[0, 100\]"),
        ({"motion_scale": float("inf")}, ValueError, r"motion_scale must be in \[0, 100\]"),
        ({"motion_scale": False}, TypeError, r"motion_scale must be a number"),
        ({"motion_scale": "2"}, TypeError, r"motion_scale must be a number"),
    ],
)
def test_defocus_and_motion_scale_refuse_bad_values(
    kwargs: dict[str, object], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        simulate_field("CL1", size=64, **kwargs)  # type: ignore[arg-type]

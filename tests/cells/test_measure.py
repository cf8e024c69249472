import numpy as np
import pandas as pd
import pytest

from structfree_dask.cells.columns import (
    intensity_column,
    ratio_column,
    raw_ratio_column,
    readout_columns,
)
from structfree_dask.cells.measure import (
    BACKGROUND_GAP_PX,
    BACKGROUND_WIDTH_PX,
    MIN_RING_CONTRAST,
    NUCLEUS_EROSION_PX,
    RING_GAP_PX,
    RING_WIDTH_PX,
    column_dtypes,
    empty_measurements,
    field_background,
    measure_cells,
)
from structfree_dask.simulate import simulate_field


def test_measurements_match_numpy_on_simulated_cells():
    f = simulate_field("CL2", size=96, timepoints=1, seed=4)
    cells, nuclei, image = f.cyto[0], f.nuclei[0], f.image[0]
    owned = np.unique(cells)[1:]
    df = measure_cells(cells, nuclei, image, owned=owned, channel_names=f.channel_names,
                       pixel_size_um=(f.pixel_size_um, f.pixel_size_um),
                       field_shape=cells.shape, n_nuclei=np.ones(len(owned)))
    assert list(df.columns) == list(column_dtypes(f.channel_names))
    assert df["label"].tolist() == owned.tolist()
    for _, row in df.iterrows():
        lab = int(row["label"])
        cell = cells == lab
        nuc = cell & (nuclei == lab)
        cyt = cell & ~nuc
        assert row["area_px"] == cell.sum() and row["nucleus_area_px"] == nuc.sum()
        ys, xs = np.nonzero(cell)
        assert row["centroid_y"] == pytest.approx(ys.mean())
        assert row["area_um2"] == pytest.approx(cell.sum() * f.pixel_size_um ** 2)
        edge = ys.min() == 0 or xs.min() == 0 or ys.max() == 95 or xs.max() == 95
        assert bool(row["touches_edge"]) == edge
        for j, ch in enumerate(f.channel_names):
            img = image[j].astype(float)
            assert row[intensity_column(ch, "cell", "mean")] == pytest.approx(img[cell].mean())
            assert row[intensity_column(ch, "cell", "median")] == pytest.approx(
                np.median(img[cell]))
            assert row[intensity_column(ch, "cell", "integrated")] == pytest.approx(
                img[cell].sum())
            if nuc.any() and cyt.any():
                assert row[raw_ratio_column(ch)] == pytest.approx(
                    img[nuc].mean() / img[cyt].mean())
            else:
                assert np.isnan(row[raw_ratio_column(ch)]) and np.isnan(row[ratio_column(ch)])


def test_window_offset_owned_subset_and_no_nucleus():
    cells = np.zeros((10, 10), np.uint32)
    cells[2:6, 2:6] = 4
    cells[6:9, 6:9] = 9
    image = np.arange(100, dtype=np.float32).reshape(1, 10, 10)
    df = measure_cells(cells, np.zeros_like(cells), image, owned=np.array([4]),
                       channel_names=["a"], pixel_size_um=(1.0, 2.0), field_shape=(50, 50),
                       n_nuclei=np.array([0]), offset=(20, 30))
    assert df["label"].tolist() == [4]
    assert df["centroid_y"].item() == pytest.approx(23.5)
    assert df["centroid_x_um"].item() == pytest.approx((30 + 3.5) * 2.0)
    assert df["n_nuclei"].item() == 0 and np.isnan(df[ratio_column("a")].item())
    assert np.isnan(df[intensity_column("a", "nucleus", "mean")].item())
    assert df[intensity_column("a", "cytoplasm", "mean")].item() == pytest.approx(
        image[0, 2:6, 2:6].mean())


def test_empty_table_has_every_column():
    empty = empty_measurements(["a", "b"])
    assert len(empty) == 0 and list(empty.columns) == list(column_dtypes(["a", "b"]))
    none = measure_cells(np.zeros((4, 4), np.uint32), np.zeros((4, 4), np.uint32),
                         np.zeros((1, 4, 4)), owned=np.array([], np.int64), channel_names=["a"],
                         pixel_size_um=(1, 1), field_shape=(4, 4), n_nuclei=np.array([]))
    pd.testing.assert_frame_equal(none, empty_measurements(["a"]))
    with pytest.raises(ValueError, match="channels"):
        measure_cells(np.zeros((4, 4), np.uint32), np.zeros((4, 4), np.uint32),
                      np.zeros((2, 4, 4)), owned=np.array([1]), channel_names=["a"],
                      pixel_size_um=(1, 1), field_shape=(4, 4), n_nuclei=np.array([0]))


def _blurred_cell(background: float, cyto: float, nucleus: float, sigma: float = 1.5):
    """A round cell with a round nucleus, blurred, on a background."""
    from scipy import ndimage as ndi

    yy, xx = np.mgrid[:80, :80]
    r = np.hypot(yy - 40, xx - 40)
    cells = (r < 18).astype(np.uint32)
    linked = (r < 8).astype(np.uint32)
    truth = np.where(r < 8, nucleus, np.where(r < 18, cyto, 0.0))
    image = (ndi.gaussian_filter(truth, sigma) + background)[None]
    return cells, linked, image


def _one(cells, linked, image, **kw):
    return measure_cells(cells, linked, image, owned=np.array([1]), channel_names=["a"],
                         pixel_size_um=(1.0, 1.0), field_shape=cells.shape,
                         n_nuclei=np.array([1]), **kw).iloc[0]


def test_the_readout_resists_blur_and_background():
    """Core and ring recover the true ratio where whole compartments and no background don't."""
    cells, linked, image = _blurred_cell(background=200.0, cyto=100.0, nucleus=300.0)
    row = _one(cells, linked, image)
    bg, core, ring, ratio, raw = (row[c] for c in readout_columns("a"))
    assert bg == pytest.approx(200.0, abs=1e-6)  # the annulus is beyond the blur
    assert ratio == pytest.approx(3.0, rel=0.12)  # the truth: 300 / 100
    assert abs(raw - 3.0) > 4 * abs(ratio - 3.0)  # background and blur mix the compartments
    assert core > row[intensity_column("a", "nucleus", "mean")]  # the eroded core is purer
    assert ring - bg == pytest.approx(100.0, rel=0.15)  # the cytoplasm, less the background


def test_readout_compartments_by_hand():
    """The core, ring and annulus follow the documented pixel distances."""
    from scipy import ndimage as ndi

    cells, linked, _ = _blurred_cell(0.0, 0.0, 0.0)
    rng = np.random.default_rng(0)
    image = rng.uniform(100, 200, (1, 80, 80)) + 300.0 * (cells == 1)
    row = _one(cells, linked, image)
    inside = ndi.distance_transform_edt(linked)  # distance to the nucleus's outside
    core = (linked == 1) & (inside > NUCLEUS_EROSION_PX)
    outside = ndi.distance_transform_edt(linked == 0)
    ring = (cells == 1) & (outside > RING_GAP_PX) & (outside <= RING_GAP_PX + RING_WIDTH_PX)
    free = ndi.distance_transform_edt(cells == 0)
    annulus = (free > BACKGROUND_GAP_PX) & (free <= BACKGROUND_GAP_PX + BACKGROUND_WIDTH_PX)
    bg, c, r, ratio, _ = (row[k] for k in readout_columns("a"))
    assert bg == pytest.approx(np.median(image[0][annulus]))
    assert c == pytest.approx(image[0][core].mean(), rel=0.02)
    assert r == pytest.approx(image[0][ring].mean(), rel=0.02)
    assert ratio == pytest.approx((c - bg) / (r - bg))


def test_no_cytoplasm_signal_above_background_gives_no_ratio():
    cells, linked, image = _blurred_cell(background=200.0, cyto=0.2, nucleus=5.0)
    row = _one(cells, linked, image)
    assert (row["a__cytoplasm_ring_mean"] - row["a__background"]
            < MIN_RING_CONTRAST * row["a__cytoplasm_ring_mean"])
    assert np.isnan(row[ratio_column("a")]) and np.isfinite(row[raw_ratio_column("a")])


def test_a_confluent_window_takes_the_fields_background():
    cells = np.ones((30, 30), np.uint32)
    linked = np.zeros_like(cells)
    linked[10:20, 10:20] = 1
    image = np.full((1, 30, 30), 50.0)
    image[0, 10:20, 10:20] = 80.0
    row = _one(cells, linked, image, background=np.array([20.0]))
    assert row["a__background"] == 20.0
    assert row[ratio_column("a")] == pytest.approx((80 - 20) / (50 - 20))


def test_field_background():
    cells = np.zeros((50, 50), np.uint32)
    cells[5:25, 5:25] = 3
    image = np.stack([np.full((50, 50), 7.0), np.full((50, 50), 11.0)])
    image[:, 5:25, 5:25] = 1000
    assert field_background(cells, image).tolist() == [7.0, 11.0]
    full = np.ones((50, 50), np.uint32)  # no pixel away from cells: the dark pixels
    ramp = np.arange(2500, dtype=float).reshape(1, 50, 50)
    assert field_background(full, ramp).tolist() == [pytest.approx(np.percentile(ramp, 1))]


def test_an_empty_channel_gives_no_ratio_and_no_error():
    """A channel with nothing in it (all zeros): intensities 0, ratios NaN, other channels kept."""
    cells, linked, image = _blurred_cell(background=200.0, cyto=100.0, nucleus=300.0)
    both = np.concatenate([image, np.zeros_like(image)])
    df = measure_cells(cells, linked, both, owned=np.array([1]), channel_names=["a", "empty"],
                       pixel_size_um=(1.0, 1.0), field_shape=cells.shape,
                       n_nuclei=np.array([1]))
    row = df.iloc[0]
    assert row[intensity_column("empty", "cell", "mean")] == 0.0
    assert row["empty__background"] == 0.0
    assert np.isnan(row[ratio_column("empty")]) and np.isnan(row[raw_ratio_column("empty")])
    assert row[ratio_column("a")] == pytest.approx(3.0, rel=0.12)


def test_label_medians_equal_scipy_per_channel():
    from scipy import ndimage as ndi

    from structfree_dask.cells.measure import label_medians

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 7, (40, 50))
    intensity = rng.random((40, 50, 3)) * 100
    intensity[..., 1] = np.round(intensity[..., 1])  # ties
    ids = np.array([1, 2, 4, 6])
    got = label_medians(labels, intensity, ids)
    for j in range(3):
        np.testing.assert_array_equal(got[:, j], ndi.median(intensity[..., j], labels, ids))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_label_medians_of_small_integers_equal_scipy(dtype):
    """8- and 16-bit images take another path (one 32-bit key sorted per channel)."""
    from scipy import ndimage as ndi

    from structfree_dask.cells.measure import label_medians

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 9, (37, 41))
    top = np.iinfo(dtype).max
    intensity = rng.integers(0, top + 1, (37, 41, 2)).astype(dtype)
    intensity[..., 1] //= max(1, top // 7)  # few values: many ties
    ids = np.array([1, 3, 4, 8])
    got = label_medians(labels, intensity, ids)
    for j in range(2):
        np.testing.assert_array_equal(got[:, j], ndi.median(intensity[..., j], labels, ids))


def test_integer_images_measure_exactly_as_their_float_values():
    """uint16 pixels (sums, histogram and key-sorted medians) give the float64 path's table."""
    f = simulate_field("CL1", size=128, timepoints=1, seed=9)
    cells, nuclei, image = f.cyto[0], f.nuclei[0], f.image[0]
    assert image.dtype == np.uint16
    owned = np.unique(cells)[1:]
    kwargs = dict(owned=owned, channel_names=f.channel_names, pixel_size_um=(0.5, 0.5),
                  field_shape=cells.shape, n_nuclei=np.ones(len(owned)))
    as_int = measure_cells(cells, nuclei, image, **kwargs)
    as_float = measure_cells(cells, nuclei, image.astype(np.float64), **kwargs)
    pd.testing.assert_frame_equal(as_int, as_float, check_exact=True)
    np.testing.assert_array_equal(field_background(cells, image),
                                  field_background(cells, image.astype(np.float64)))


def test_measure_columns_are_the_tables_columns():
    from structfree_dask.cells.measure import measure_columns

    f = simulate_field("CL2", size=64, timepoints=1, seed=2)
    owned = np.unique(f.cyto[0])[1:]
    cols = measure_columns(f.cyto[0], f.nuclei[0], f.image[0], owned=owned,
                           channel_names=f.channel_names, pixel_size_um=(1.0, 1.0),
                           field_shape=(64, 64), n_nuclei=np.ones(len(owned)))
    dtypes = column_dtypes(f.channel_names)
    assert list(cols) == list(dtypes)
    assert all(np.dtype(cols[k].dtype) == np.dtype(v) for k, v in dtypes.items())
    none = measure_columns(np.zeros((4, 4), np.uint32), np.zeros((4, 4), np.uint32),
                           np.zeros((1, 4, 4)), owned=np.array([1]), channel_names=["a"],
                           pixel_size_um=(1.0, 1.0), field_shape=(4, 4), n_nuclei=np.ones(1))
    assert list(none) == list(column_dtypes(["a"])) and all(len(v) == 0 for v in none.values())

import numpy as np
import pandas as pd
import pytest

from structfree_dask.cells.columns import intensity_column, ratio_column
from structfree_dask.cells.measure import column_dtypes, empty_measurements, measure_cells
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
                assert row[ratio_column(ch)] == pytest.approx(img[nuc].mean() / img[cyt].mean())
            else:
                assert np.isnan(row[ratio_column(ch)])


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

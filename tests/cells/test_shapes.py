"""cells.shapes: scikit-image's regionprops values for all objects at once."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import regionprops_table
from skimage.segmentation import relabel_sequential

from structfree_dask.cells.shapes import shape_props
from structfree_dask.simulate import simulate_field

PROPS = ("label", "area", "centroid", "bbox", "eccentricity", "axis_major_length",
         "axis_minor_length", "solidity")


def _compare(labels: np.ndarray) -> int:
    labels = relabel_sequential(labels.astype(np.int64))[0]
    n = int(labels.max())
    ours = shape_props(labels, n)
    ref = regionprops_table(labels, properties=PROPS)
    np.testing.assert_array_equal(ours["area"], ref["area"])
    np.testing.assert_array_equal(ours["bbox"], np.stack([ref[f"bbox-{k}"] for k in range(4)], 1))
    np.testing.assert_array_equal(ours["centroid"][:, 0], ref["centroid-0"])  # exact sums
    np.testing.assert_array_equal(ours["centroid"][:, 1], ref["centroid-1"])
    # the convex area exactly (scikit-image's polygon test against our half-planes)
    np.testing.assert_array_equal(ours["solidity"], ref["solidity"])
    for name in ("eccentricity", "axis_major_length", "axis_minor_length"):
        np.testing.assert_allclose(ours[name], ref[name], rtol=1e-9, atol=1e-9, err_msg=name)
    return n


@pytest.mark.parametrize(("line", "seed"), [("CL1", 1), ("CL2", 2), ("CL3", 3), ("CL5", 4)])
def test_simulated_cells_and_nuclei_equal_regionprops(line, seed):
    f = simulate_field(line, size=160, timepoints=2, seed=seed)
    assert sum(_compare(plane) for plane in (*f.cyto, *f.nuclei)) > 20


def test_real_annotated_cells_equal_regionprops(real_dev):
    import imageio.v3 as iio

    for path in sorted((real_dev / "Kc167").glob("*_masks.png")):
        assert _compare(iio.imread(path)) > 20


def test_odd_shapes_equal_regionprops():
    rng = np.random.default_rng(0)
    labels = np.zeros((60, 70), np.int64)
    labels[3, 3] = 1                      # one pixel
    labels[6, 5:25] = 2                   # a line
    labels[10:30, 40] = 3                 # a column
    labels[np.arange(30, 50), np.arange(30, 50)] = 4  # a diagonal
    yy, xx = np.mgrid[:60, :70]
    labels[((yy - 45) ** 2 + (xx - 12) ** 2 < 80) & ((yy - 45) ** 2 + (xx - 12) ** 2 > 20)] = 5
    noisy = (rng.random((60, 70)) < 0.6) & (yy > 50) & (xx > 40)
    labels[noisy] = 6                     # scattered pixels: one object, many holes
    assert _compare(labels) == 6


def test_missing_labels_are_refused():
    labels = np.zeros((4, 4), np.int64)
    labels[0, 0] = 2
    with pytest.raises(ValueError, match="must all be present"):
        shape_props(labels, 2)

"""Ownership, ID offsets and block pasting."""

from __future__ import annotations

import numpy as np

from structfree_dask.pipeline.integrate import cut_cells, owned_cells
from structfree_dask.pipeline.normalize import normalize, percentile_bounds
from structfree_dask.pipeline.stitching import encode_patch, paste_block, region_offsets


def test_owned_cells_by_centroid():
    lab = np.zeros((10, 10), np.uint32)
    lab[0:4, 3:7] = 4  # centroid (1.5, 4.5) -> region x < 5
    lab[6:9, 5:9] = 9  # centroid (7, 6.5) -> region x >= 5
    left, n_left = owned_cells(lab, (0, 0), (0, 10, 0, 5))
    right, n_right = owned_cells(lab, (0, 0), (0, 10, 5, 10))
    assert (n_left, n_right) == (1, 1)
    assert set(np.unique(left)) == {0, 1} and (left > 0).sum() == 16
    assert (right > 0).sum() == 12
    # origin shifts the ownership test into field coordinates
    _, n = owned_cells(lab, (100, 100), (0, 10, 0, 5))
    assert n == 0
    assert cut_cells(left, (5, 0), (100, 100)) == 1  # touches the top edge inside the field
    assert cut_cells(left, (0, 0), (10, 10)) == 0


def test_paste_block_offsets_and_first_wins():
    a = np.zeros((6, 6), np.uint32)
    a[1:3, 1:5] = 1
    b = np.zeros((6, 6), np.uint32)
    b[2:5, 2:4] = 1
    b[5, 5] = 2
    pa = encode_patch(a, (0, 6, 0, 6), 1)
    pb = encode_patch(b, (2, 8, 2, 8), 2)
    offsets = region_offsets([pa.n, pb.n])
    block = paste_block((0, 4, 0, 4), [(pa, offsets[0]), (pb, offsets[1])])
    assert block[1, 1] == 1 and block[2, 2] == 1  # a's cell keeps contested pixels
    assert block[3, 3] == 0  # b's cell starts at (2,2) in its window: field (4, 4), outside
    full = paste_block((0, 8, 0, 8), [(pa, 0), (pb, 1)])
    assert full[4, 4] == 2 and full[7, 7] == 3
    again = paste_block((0, 8, 0, 8), [(pa, 0), (pb, 1)])
    assert np.array_equal(full, again) and full.dtype == np.uint32


def test_normalization_matches_cellpose_normalize99():
    from cellpose.transforms import normalize99

    rng = np.random.default_rng(0)
    img = rng.gamma(2.0, 100.0, (300, 300)).astype(np.float32)
    ours = normalize(img, *percentile_bounds(img))
    np.testing.assert_allclose(ours, normalize99(img), rtol=1e-5, atol=1e-5)
    # tiles of one field share the field's statistics
    lo, hi = percentile_bounds(img)
    np.testing.assert_array_equal(normalize(img[:100, :100], lo, hi), ours[:100, :100])
    assert not normalize(np.zeros((4, 4)), 0.0, 0.0).any()

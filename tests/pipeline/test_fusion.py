"""Tests of the mask-fusion baselines in structfree_dask.pipeline.fusion."""

import numpy as np
import pytest

from structfree_dask.config import FUSION_BASELINES
from structfree_dask.pipeline.fusion import (
    fuse_masks,
    match_instances,
    simple,
    staple,
)


def _square(shape, rows, cols, value=1, dtype=np.int32):
    img = np.zeros(shape, dtype=dtype)
    img[rows[0] : rows[1], cols[0] : cols[1]] = value
    return img


def _assert_consecutive(out):
    assert out.dtype == np.uint32
    ids = np.unique(out)
    np.testing.assert_array_equal(ids, np.arange(ids.size, dtype=np.uint32))


@pytest.mark.parametrize("method", FUSION_BASELINES)
def test_three_agreeing_raters_give_the_same_cell(method):
    shape = (20, 20)
    raters = [_square(shape, (4, 14), (3, 13), value=v) for v in (1, 7, 250)]
    out = fuse_masks(raters, method=method)
    _assert_consecutive(out)
    np.testing.assert_array_equal(out, raters[0].astype(np.uint32))


def test_cell_seen_by_one_rater_kept_by_voting_dropped_by_majority():
    shape = (20, 30)
    common = _square(shape, (2, 12), (2, 12))
    lonely = _square(shape, (2, 12), (18, 28), value=2)
    raters = [common + lonely, common * 3, common * 5]
    voting = fuse_masks(raters, method="voting")
    majority = fuse_masks(raters, method="majority")
    assert voting.max() == 2
    np.testing.assert_array_equal(voting == 2, lonely > 0)
    assert majority.max() == 1
    np.testing.assert_array_equal(majority == 1, common > 0)
    # SIMPLE starts from the majority vote, so the lonely cell is dropped as well
    assert fuse_masks(raters, method="simple").max() == 1


def test_pixel_majority_on_shifted_square():
    shape = (14, 16)
    raters = [_square(shape, (2, 12), (c, c + 10)) for c in (0, 1, 2)]  # IoU >= 2/3
    # column votes: 0 -> 1, 1 -> 2, 2..9 -> 3, 10 -> 2, 11 -> 1; majority = > 1.5 votes
    expected = _square(shape, (2, 12), (1, 11)).astype(np.uint32)
    np.testing.assert_array_equal(fuse_masks(raters, method="majority"), expected)
    # voting: >= half of the 3 detecting raters, same here
    np.testing.assert_array_equal(fuse_masks(raters, method="voting"), expected)


def test_voting_with_two_detections_is_union():
    shape = (14, 16)
    a = _square(shape, (2, 12), (0, 10))
    b = _square(shape, (2, 12), (2, 12))
    out = fuse_masks([a, b, np.zeros_like(a)], method="voting")
    np.testing.assert_array_equal(out > 0, (a > 0) | (b > 0))
    assert fuse_masks([a, b, np.zeros_like(a)], method="majority").max() == 1


def test_staple_identical_raters_return_the_mask():
    mask = _square((12, 12), (2, 9), (3, 8)).astype(bool)
    res = staple(np.stack([mask, mask, mask]))
    np.testing.assert_array_equal(res.posterior, mask.astype(float))
    np.testing.assert_array_equal(res.sensitivity, 1.0)
    np.testing.assert_array_equal(res.specificity, 1.0)
    one = staple(mask[None])
    np.testing.assert_array_equal(one.posterior, mask.astype(float))
    empty = staple(np.zeros((3, 5, 5), dtype=bool))
    assert not empty.posterior.any()


def test_staple_down_weights_a_wrong_rater():
    good = _square((20, 20), (5, 15), (5, 15)).astype(bool)
    bad = _square((20, 20), (0, 6), (0, 20)).astype(bool)
    slightly_off = _square((20, 20), (5, 15), (6, 15)).astype(bool)
    res = staple(np.stack([good, slightly_off, bad]))
    assert 1 <= res.n_iter <= 50  # EM is slow near p = 1; bounded by max_iter
    np.testing.assert_array_equal(res.posterior >= 0.5, good)
    assert res.sensitivity[2] < res.sensitivity[0]
    assert res.specificity[2] < res.specificity[0]
    assert np.all((res.posterior >= 0) & (res.posterior <= 1))


def test_staple_in_fuse_masks():
    shape = (20, 20)
    raters = [_square(shape, (4, 14), (4, 14), value=v) for v in (1, 2)]
    raters.append(_square(shape, (4, 14), (4, 16), value=3))  # IoU 100/120
    out = fuse_masks(raters, method="staple")
    _assert_consecutive(out)
    np.testing.assert_array_equal(out > 0, raters[0] > 0)


def _simple_case():
    """A, A, B, B agree up to a 2-px shift; X is grossly too wide (all in one group)."""
    shape = (14, 22)
    a = _square(shape, (2, 12), (0, 10))
    b = _square(shape, (2, 12), (2, 12))
    x = _square(shape, (2, 12), (0, 18))  # IoU with A = 100 / 180
    return [a, a, b, b, x]


def test_simple_discards_outlier_rater():
    raters = _simple_case()
    res = simple(np.stack([r > 0 for r in raters]))
    assert res.kept.tolist() == [True, True, True, True, False]
    assert res.weights[4] == 0.0
    # without X: weighted majority of A, A, B, B with equal weights = A & B (ties -> background)
    expected = (raters[0] > 0) & (raters[2] > 0)
    np.testing.assert_array_equal(res.mask, expected)
    # with X, plain majority (3 of 5) lets X's votes pull in columns 0-1 and 10-11
    majority = fuse_masks(raters, method="majority")
    np.testing.assert_array_equal(majority > 0, (raters[0] > 0) | (raters[2] > 0))
    fused = fuse_masks(raters, method="simple")
    np.testing.assert_array_equal(fused > 0, expected)


def test_overlap_goes_to_higher_support():
    shape = (12, 20)
    weak = _square(shape, (1, 11), (6, 16), value=1)  # seen by one rater, group 0
    strong = _square(shape, (1, 11), (0, 10), value=1)  # seen by two raters, group 1
    out = fuse_masks([weak, strong, strong], method="voting")
    _assert_consecutive(out)
    assert out.max() == 2
    np.testing.assert_array_equal(out == 2, strong > 0)  # wins the contested columns 6-9
    np.testing.assert_array_equal(out == 1, _square(shape, (1, 11), (10, 16)) > 0)


def test_overlap_tie_goes_to_first_group_and_is_deterministic():
    shape = (12, 20)
    p = _square(shape, (1, 11), (0, 10), value=4)
    q = _square(shape, (1, 11), (6, 16), value=9)  # IoU 40/160 -> separate groups
    out = fuse_masks([p, q], method="voting")
    np.testing.assert_array_equal(out == 1, p > 0)  # tie at columns 6-9 -> group 0
    np.testing.assert_array_equal(out == 2, _square(shape, (1, 11), (10, 16)) > 0)
    for _ in range(3):
        np.testing.assert_array_equal(fuse_masks([p, q], method="voting"), out)
    swapped = fuse_masks([q, p], method="voting")
    np.testing.assert_array_equal(swapped == 1, q > 0)


def test_min_size_and_consecutive_ids():
    shape = (20, 40)
    img = np.zeros(shape, dtype=np.uint16)
    img[0:5, 0:5] = 3  # 25 px
    img[10:13, 10:13] = 8  # 9 px, below min_size
    img[0:6, 20:26] = 11  # 36 px
    out = fuse_masks([img, img.copy(), img.copy()], method="majority", min_size=15)
    _assert_consecutive(out)
    assert out.max() == 2
    assert not out[10:13, 10:13].any()
    assert (out[0:5, 0:5] == 1).all() and (out[0:6, 20:26] == 2).all()


@pytest.mark.parametrize("method", FUSION_BASELINES)
def test_single_image_is_relabelled(method):
    img = np.zeros((10, 10), dtype=np.int64)
    img[0:2, 0:2] = 40
    img[5:9, 5:9] = 7
    out = fuse_masks([img], method=method)
    assert out.dtype == np.uint32
    expected = np.where(img == 7, 1, np.where(img == 40, 2, 0))
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("method", FUSION_BASELINES)
def test_3d_and_empty(method):
    vol = np.zeros((6, 10, 10), dtype=np.int32)
    vol[1:5, 2:8, 2:8] = 2
    out = fuse_masks([vol, vol, vol], method=method)
    np.testing.assert_array_equal(out, (vol > 0).astype(np.uint32))
    empty = np.zeros((6, 10, 10), dtype=np.uint8)
    out = fuse_masks([empty, empty], method=method)
    assert out.dtype == np.uint32 and not out.any()


def test_match_instances_groups_with_original_ids():
    shape = (10, 30)
    a = _square(shape, (0, 10), (0, 10), value=2**40, dtype=np.uint64)
    a[:, 20:30] = 5
    b = _square(shape, (0, 10), (1, 10), value=77, dtype=np.uint64)
    groups = match_instances([a, b])
    # groups follow image 0's IDs in sorted order (5 < 2**40), then other images
    assert groups == [[(0, 5)], [(0, 2**40), (1, 77)]]


def test_match_instances_chain_and_partition():
    shape = (1, 20)
    a = np.zeros(shape, dtype=np.int32)
    a[0, 0:6] = 1
    a[0, 6:12] = 2
    b = np.zeros(shape, dtype=np.int32)
    b[0, 3:9] = 1  # IoU 3/9 with both instances of a
    c = np.zeros(shape, dtype=np.int32)
    c[0, 15:18] = 4
    groups = match_instances([a, b, c], iou_threshold=0.3)
    assert groups == [[(0, 1), (0, 2), (1, 1)], [(2, 4)]]
    assert match_instances([a, b, c], iou_threshold=0.5) == [[(0, 1)], [(0, 2)], [(1, 1)], [(2, 4)]]
    # the chained group: image 0 contributes the union of its two members
    out = fuse_masks([a, b], method="voting", iou_threshold=0.3, min_size=0)
    np.testing.assert_array_equal(out[0], (np.arange(20) < 12).astype(np.uint32))


def test_errors():
    a = np.zeros((4, 5), dtype=np.int32)
    with pytest.raises(ValueError, match="at least one"):
        fuse_masks([], method="voting")
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(5, 4\)"):
        fuse_masks([a, np.zeros((5, 4), dtype=np.int32)], method="voting")
    with pytest.raises(ValueError, match="voting.*majority.*staple.*simple"):
        fuse_masks([a, a], method="mean")
    with pytest.raises(TypeError, match="float32"):
        fuse_masks([a, a.astype(np.float32)], method="voting")
    neg = a.copy()
    neg[0, 0] = -3
    with pytest.raises(ValueError, match="negative"):
        fuse_masks([a, neg], method="staple")
    with pytest.raises(ValueError, match="iou_threshold"):
        match_instances([a, a], iou_threshold=1.5)
    with pytest.raises(ValueError, match="min_size"):
        fuse_masks([a, a], method="simple", min_size=-1)
    with pytest.raises(ValueError, match="K >= 1"):
        staple(np.zeros((0, 3, 3), dtype=bool))

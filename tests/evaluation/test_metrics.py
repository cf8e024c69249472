"""Tests of structfree_dask.evaluation.metrics on hand-made label images."""

import json

import numpy as np
import pytest
from cellpose import metrics as cp_metrics
from skimage.segmentation import relabel_sequential

from structfree_dask.evaluation.metrics import (
    AP_THRESHOLDS,
    MatchScores,
    aggregated_jaccard_index,
    ap_per_threshold,
    average_precision,
    combine,
    evaluate,
    match_scores,
    matched_f1,
    paired_bootstrap_f1,
)


def _shifted_pair():
    """True: 10x10 square + 4x4 square; pred: the big square shifted by 2 columns + a blob.

    Square IoU = 80 / 120 = 2/3; the small true square is missed (fn), the blob is an fp.
    """
    true = np.zeros((30, 30), dtype=np.int32)
    true[0:10, 0:10] = 1
    true[20:24, 0:4] = 2
    pred = np.zeros_like(true)
    pred[0:10, 2:12] = 1
    pred[20:23, 20:23] = 2
    return true, pred


def test_shifted_square_counts_and_iou():
    true, pred = _shifted_pair()
    s = match_scores(true, pred)
    assert isinstance(s, MatchScores)
    assert (s.tp, s.fp, s.fn, s.n_true, s.n_pred) == (1, 1, 1, 2, 2)
    assert s.precision == pytest.approx(0.5)
    assert s.recall == pytest.approx(0.5)
    assert s.f1 == pytest.approx(0.5)
    assert s.mean_matched_jaccard == pytest.approx(2 / 3)


def test_threshold_above_iou_gives_no_match():
    true, pred = _shifted_pair()
    s = match_scores(true, pred, iou_threshold=0.7)
    assert (s.tp, s.fp, s.fn) == (0, 2, 2)
    assert s.mean_matched_jaccard == 0.0
    assert s.f1 == 0.0


def test_iou_exactly_at_threshold_counts():
    true = np.zeros((1, 10), dtype=np.uint8)
    true[0, 0:10] = 1
    pred = np.zeros_like(true)
    pred[0, 0:5] = 3  # IoU exactly 0.5
    assert match_scores(true, pred, iou_threshold=0.5).tp == 1


def test_both_empty():
    z = np.zeros((8, 8), dtype=np.uint16)
    s = match_scores(z, z)
    assert (s.tp, s.fp, s.fn) == (0, 0, 0)
    assert (s.precision, s.recall, s.f1) == (1.0, 1.0, 1.0)
    assert s.mean_matched_jaccard == 0.0
    assert aggregated_jaccard_index(z, z) == 1.0
    assert average_precision(z, z) == 1.0
    assert matched_f1(z, z) == 1.0


@pytest.mark.parametrize("empty_side", ["true", "pred"])
def test_one_empty(empty_side):
    z = np.zeros((8, 8), dtype=np.int32)
    full = z.copy()
    full[1:3, 1:3] = 4
    full[5:7, 5:7] = 9
    true, pred = (z, full) if empty_side == "true" else (full, z)
    s = match_scores(true, pred)
    assert s.tp == 0
    assert (s.fp, s.fn) == ((2, 0) if empty_side == "true" else (0, 2))
    assert (s.precision, s.recall, s.f1) == (0.0, 0.0, 0.0)
    assert aggregated_jaccard_index(true, pred) == 0.0
    assert average_precision(true, pred) == 0.0


def test_non_consecutive_ids_match_consecutive():
    true, pred = _shifted_pair()
    true_nc = np.where(true == 1, 2**40, np.where(true == 2, 7, 0)).astype(np.int64)
    pred_nc = np.where(pred == 1, 1000, np.where(pred == 2, 3, 0)).astype(np.uint32)
    assert match_scores(true_nc, pred_nc) == match_scores(true, pred)
    assert evaluate(true_nc, pred_nc) == evaluate(true, pred)


def test_3d_cubes():
    true = np.zeros((6, 6, 6), dtype=np.uint16)
    true[0:4, 0:4, 0:4] = 5
    pred = np.zeros_like(true)
    pred[1:5, 0:4, 0:4] = 2  # shifted by one plane: 48 / 80
    s = match_scores(true, pred)
    assert (s.tp, s.fp, s.fn) == (1, 0, 0)
    assert s.mean_matched_jaccard == pytest.approx(0.6)
    assert aggregated_jaccard_index(true, pred) == pytest.approx(0.6)


def test_aji_by_hand():
    true = np.zeros((60, 20), dtype=np.int32)
    pred = np.zeros_like(true)
    true[0:10, 0:10] = 1  # G1, 100 px
    pred[0:10, 2:12] = 1  # P1: inter 80, union 120
    true[20:24, 0:4] = 2  # G2, 16 px, overlaps nothing -> union += 16
    pred[30:32, 0:2] = 3  # P3, 4 px, unused -> union += 4
    true[40:50, 0:10] = 3  # G3, 100 px, split into
    pred[40:50, 0:6] = 4  # P4 (IoU .6): inter 60, union 100
    pred[40:50, 6:10] = 5  # P5 (IoU .4), unused -> union += 40
    expected = (80 + 60) / (120 + 16 + 4 + 100 + 40)
    assert aggregated_jaccard_index(true, pred) == pytest.approx(expected)
    d = evaluate(true, pred)
    assert (d["aji_intersection"], d["aji_union"]) == (140, 280)


def test_aji_pred_shared_by_two_true_objects():
    true = np.zeros((10, 10), dtype=np.int32)
    true[:, 0:5] = 1
    true[:, 5:10] = 2
    pred = np.ones_like(true)  # IoU 0.5 with both: both pick it, its area counts twice
    assert aggregated_jaccard_index(true, pred) == pytest.approx(100 / 200)


def test_ap_per_threshold_by_hand():
    true = np.zeros((12, 12), dtype=np.int32)
    true[0:10, 0:10] = 1
    pred = np.zeros_like(true)
    pred[0:10, 2:12] = 1  # IoU 2/3
    ap = ap_per_threshold(true, pred)
    assert ap.shape == (len(AP_THRESHOLDS),)
    np.testing.assert_allclose(ap, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    assert average_precision(true, pred) == pytest.approx(0.4)
    assert evaluate(true, pred)["ap_50_95"] == pytest.approx(0.4)


def test_optimal_matching_beats_greedy_at_low_threshold():
    true = np.zeros((1, 14), dtype=np.int32)
    true[0, 0:10] = 1
    true[0, 10:14] = 2
    pred = np.zeros_like(true)
    pred[0, 6:14] = 1  # IoU 4/14 with T1, 4/8 with T2
    pred[0, 0:5] = 2  # IoU 5/10 with T1
    s = match_scores(true, pred, iou_threshold=0.25)
    assert s.tp == 2
    assert s.mean_matched_jaccard == pytest.approx(0.5)
    _, tp, _, _ = cp_metrics.average_precision(true, pred, threshold=[0.25])
    assert int(tp[0]) == 2


def _random_labels(seed, shape=(96, 96), n=30):
    rng = np.random.default_rng(seed)
    img = np.zeros(shape, dtype=np.int32)
    for i in range(1, n + 1):
        y, x = rng.integers(0, shape[0] - 14, 2)
        h, w = rng.integers(4, 14, 2)
        img[y : y + h, x : x + w] = i
    return relabel_sequential(img)[0]


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_cellpose(seed):
    true = _random_labels(seed)
    pred = np.roll(_random_labels(seed), seed - 2, axis=1)
    pred = np.where(_random_labels(seed + 100) > 0, _random_labels(seed + 100) + 100, pred)
    pred = relabel_sequential(pred)[0]
    ths = [0.3, 0.5, 0.75]
    ap, tp, fp, fn = cp_metrics.average_precision(true, pred, threshold=ths)
    for i, th in enumerate(ths):
        s = match_scores(true, pred, iou_threshold=th)
        assert (s.tp, s.fp, s.fn) == (int(tp[i]), int(fp[i]), int(fn[i]))
    np.testing.assert_allclose(ap_per_threshold(true, pred, thresholds=ths), ap, rtol=1e-6)


def test_combine_equals_concatenated_images():
    t1, p1 = _shifted_pair()
    t2 = _random_labels(3, shape=(30, 30), n=8)
    p2 = np.roll(t2, 1, axis=0)
    scores = [evaluate(t1, p1), evaluate(t2, p2)]
    pooled = combine(scores)
    # side by side, with IDs of the second image shifted so objects stay distinct
    t_cat = np.concatenate([t1, np.where(t2 > 0, t2 + 100, 0)], axis=1)
    p_cat = np.concatenate([p1, np.where(p2 > 0, p2 + 100, 0)], axis=1)
    whole = evaluate(t_cat, p_cat)
    for key in ("tp", "fp", "fn", "n_true", "n_pred", "aji_intersection", "aji_union"):
        assert pooled[key] == whole[key], key
    for key in ("precision", "recall", "f1", "aji", "mean_matched_jaccard"):
        assert pooled[key] == pytest.approx(whole[key]), key
    w = np.array([s["n_true"] for s in scores], dtype=float)
    expected_ap = (w * [s["ap_50_95"] for s in scores]).sum() / w.sum()
    assert pooled["ap_50_95"] == pytest.approx(expected_ap)
    assert pooled["n_images"] == 2


def test_evaluate_keys_and_json():
    true, pred = _shifted_pair()
    d = evaluate(true, pred)
    expected = {
        "precision",
        "recall",
        "f1",
        "mean_matched_jaccard",
        "aji",
        "ap_50_95",
        "tp",
        "fp",
        "fn",
        "n_true",
        "n_pred",
        "aji_intersection",
        "aji_union",
    }
    assert set(d) == expected
    for key in ("tp", "fp", "fn", "n_true", "n_pred", "aji_intersection", "aji_union"):
        assert type(d[key]) is int, key
    for key in expected - {"tp", "fp", "fn", "n_true", "n_pred", "aji_intersection", "aji_union"}:
        assert type(d[key]) is float, key
    json.dumps(d)
    json.dumps(combine([d, d]))


def test_matched_f1_symmetric():
    true, pred = _shifted_pair()
    assert matched_f1(true, pred) == matched_f1(pred, true) == pytest.approx(0.5)


def test_bad_inputs():
    a = np.zeros((4, 5), dtype=np.int32)
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(5, 4\)"):
        match_scores(a, np.zeros((5, 4), dtype=np.int32))
    with pytest.raises(TypeError, match="float64"):
        match_scores(a, np.zeros((4, 5)))
    with pytest.raises(TypeError, match="bool"):
        evaluate(a.astype(bool), a)
    neg = a.copy()
    neg[0, 0] = -1
    with pytest.raises(ValueError, match="negative"):
        aggregated_jaccard_index(neg, a)
    with pytest.raises(ValueError, match="iou_threshold"):
        match_scores(a, a, iou_threshold=0.0)
    with pytest.raises(ValueError, match="thresholds"):
        ap_per_threshold(a, a, thresholds=[])
    with pytest.raises(ValueError, match="at least one"):
        combine([])
    with pytest.raises(ValueError, match="lacks keys"):
        combine([{"tp": 1}])


def test_paired_bootstrap_f1():
    """Pooled F1 difference on the same images: sign, symmetry and clear errors."""
    rng = np.random.default_rng(1)
    b = rng.integers(5, 20, size=(25, 3))
    a = b + np.array([2, -1, -1])  # a finds more cells on every image (b >= 5)
    d, lo, hi = paired_bootstrap_f1(a, b, n_resamples=500, seed=3)
    pooled = [2 * x[0] / (2 * x[0] + x[1] + x[2]) for x in (a.sum(0), b.sum(0))]
    assert d == pytest.approx(pooled[0] - pooled[1]) and 0 < lo <= d <= hi
    back = paired_bootstrap_f1(b, a, n_resamples=500, seed=3)  # same draws, mirrored
    assert back == pytest.approx((-d, -hi, -lo))
    assert paired_bootstrap_f1(a, a) == (0.0, 0.0, 0.0)
    wide = paired_bootstrap_f1(a, b, n_resamples=500, seed=3, confidence=0.99)
    assert wide[1] <= lo and wide[2] >= hi
    for kwargs, message in [({"counts_b": b[:3]}, "shapes"), ({"n_resamples": 0}, "n_resamples"),
                            ({"confidence": 1.0}, "confidence")]:
        args = {"counts_a": a, "counts_b": b, **kwargs}
        with pytest.raises(ValueError, match=message):
            paired_bootstrap_f1(args.pop("counts_a"), args.pop("counts_b"), **args)

"""Instance segmentation metrics for label images.

All functions take integer label images of any dimensionality (2D, 3D, ...), where ``0`` is
background and every other value is an object ID. IDs need not be consecutive: they are
relabelled internally.

Matching follows :mod:`cellpose.metrics` (and stardist): the IoU of every pair of overlapping
objects is computed, and true and predicted objects are matched one-to-one with
:func:`scipy.optimize.linear_sum_assignment`, using the same cost as
``cellpose.metrics._true_positive`` (maximise the number of pairs with IoU >= threshold, then
their summed IoU). Unlike ``cellpose.metrics._intersection_over_union``, which allocates a
dense ``(n_true + 1) x (n_pred + 1)`` matrix, the overlaps are kept as a sparse list of
overlapping pairs, so images with many thousands of objects stay cheap; the tests check that
the counts agree with ``cellpose.metrics.average_precision``.

Definitions
-----------
precision
    ``tp / n_pred``; recall ``tp / n_true``; f1 ``2 tp / (2 tp + fp + fn)``. When both images
    are empty all three are 1.0; when exactly one is empty all three are 0.0.
mean_matched_jaccard
    Mean IoU of the matched pairs; 0.0 when nothing is matched (including both empty).
aji
    Aggregated Jaccard Index (Kumar et al. 2017): every true object is paired with the
    predicted object of highest IoU (ties: lowest predicted ID); the AJI is the sum of the
    pairs' intersections over the sum of their unions plus the areas of true objects that
    overlap nothing and of predicted objects paired with no true object. 1.0 when both images
    are empty.
average precision
    ``tp / (tp + fp + fn)`` per IoU threshold (1.0 when both images are empty), averaged over
    :data:`AP_THRESHOLDS` (0.50, 0.55, ..., 0.95).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..pipeline.overlap import check_labels, check_threshold, label_overlaps

__all__ = [
    "AP_THRESHOLDS",
    "MatchScores",
    "match_scores",
    "aggregated_jaccard_index",
    "average_precision",
    "ap_per_threshold",
    "evaluate",
    "combine",
    "matched_f1",
    "paired_bootstrap_f1",
    "pooled_f1",
]

logger = logging.getLogger(__name__)

#: IoU thresholds of the "AP 50:95" score: 0.50, 0.55, ..., 0.95 (rounded, so that an IoU of
#: exactly 0.7 passes the 0.7 threshold).
AP_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))

_COMBINE_KEYS = (
    "tp",
    "fp",
    "fn",
    "n_true",
    "n_pred",
    "aji_intersection",
    "aji_union",
    "ap_50_95",
    "mean_matched_jaccard",
)


@dataclass(frozen=True)
class MatchScores:
    """Object-level scores of a one-to-one matching at one IoU threshold.

    Attributes
    ----------
    tp, fp, fn : int
        Matched pairs, unmatched predicted objects and unmatched true objects.
    precision, recall, f1 : float
        See the module docstring for the empty-image conventions.
    mean_matched_jaccard : float
        Mean IoU of the matched pairs, 0.0 when nothing is matched.
    n_true, n_pred : int
        Number of objects in the true and the predicted image.
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    mean_matched_jaccard: float
    n_true: int
    n_pred: int


# --------------------------------------------------------------------------------------------
# Input checks (the label checks and the overlap count are :mod:`..pipeline.overlap`'s)
# --------------------------------------------------------------------------------------------


def _check_pair(true: ArrayLike, pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (true, pred) pair of label images."""
    true_arr = np.asarray(true)
    pred_arr = np.asarray(pred)
    if true_arr.shape != pred_arr.shape:
        raise ValueError(
            f"true and pred must have the same shape, got {true_arr.shape} and {pred_arr.shape}"
        )
    return check_labels(true_arr, "true"), check_labels(pred_arr, "pred")


@dataclass(frozen=True)
class _Overlaps:
    """Relabelled overlaps of a (true, pred) pair."""

    n_true: int
    n_pred: int
    it: np.ndarray
    ip: np.ndarray
    inter: np.ndarray
    iou: np.ndarray
    area_true: np.ndarray
    area_pred: np.ndarray


def _overlaps(true: ArrayLike, pred: ArrayLike) -> _Overlaps:
    o = label_overlaps(*_check_pair(true, pred))  # index i <-> the i-th label, 0 background
    return _Overlaps(len(o.ids_a) - 1, len(o.ids_b) - 1, o.ia, o.ib, o.inter, o.iou(),
                     o.area_a, o.area_b)


# --------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------


def _one_to_one(
    rows: np.ndarray, cols: np.ndarray, iou: np.ndarray, threshold: float
) -> np.ndarray:
    """Return the optimal one-to-one matching among pairs >= threshold (indices into rows).

    Maximises the number of pairs, then their summed IoU (cost of
    ``cellpose.metrics._true_positive``), solved per connected component of the bipartite
    graph of candidate pairs.
    """
    cand = np.flatnonzero(iou >= threshold)
    if cand.size == 0:
        return cand
    r, c = rows[cand], cols[cand]
    if np.unique(r).size == r.size and np.unique(c).size == c.size:
        return cand  # already one-to-one: the usual case for thresholds >= 0.5
    # imported here: rarely needed (pairs that compete), and 0.27 s to import, which the
    # command line's start (its parser reads this layer's defaults) need not pay
    from scipy.optimize import linear_sum_assignment

    ur, r_idx = np.unique(r, return_inverse=True)
    uc, c_idx = np.unique(c, return_inverse=True)
    n_nodes = ur.size + uc.size
    graph = coo_matrix((np.ones(cand.size), (r_idx, ur.size + c_idx)), shape=(n_nodes, n_nodes))
    _, comp = connected_components(graph, directed=False)
    edge_comp = comp[r_idx]
    keep: list[np.ndarray] = []
    for cid in np.unique(edge_comp):
        e = np.flatnonzero(edge_comp == cid)
        if e.size == 1:
            keep.append(cand[e])
            continue
        sub_r, sub_r_idx = np.unique(r_idx[e], return_inverse=True)
        sub_c, sub_c_idx = np.unique(c_idx[e], return_inverse=True)
        sub_iou = np.zeros((sub_r.size, sub_c.size))
        sub_iou[sub_r_idx, sub_c_idx] = iou[cand[e]]
        edge_of = np.full(sub_iou.shape, -1, dtype=np.int64)
        edge_of[sub_r_idx, sub_c_idx] = cand[e]
        n_min = min(sub_iou.shape)
        costs = -(sub_iou >= threshold).astype(float) - sub_iou / (2 * n_min)
        ri, ci = linear_sum_assignment(costs)
        chosen = edge_of[ri, ci]
        keep.append(chosen[chosen >= 0])
    return np.sort(np.concatenate(keep))


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 with the module's empty-image conventions."""
    n_pred, n_true = tp + fp, tp + fn
    if n_true == 0 and n_pred == 0:
        return 1.0, 1.0, 1.0
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn)
    return float(precision), float(recall), float(f1)


def _scores_from_overlaps(ov: _Overlaps, threshold: float) -> MatchScores:
    matched = _one_to_one(ov.it, ov.ip, ov.iou, threshold)
    tp = int(matched.size)
    fp, fn = ov.n_pred - tp, ov.n_true - tp
    precision, recall, f1 = _prf(tp, fp, fn)
    mmj = float(ov.iou[matched].mean()) if tp else 0.0
    return MatchScores(tp, fp, fn, precision, recall, f1, mmj, ov.n_true, ov.n_pred)


def match_scores(true: ArrayLike, pred: ArrayLike, *, iou_threshold: float = 0.5) -> MatchScores:
    """Match objects one-to-one at an IoU threshold and score the matching.

    Parameters
    ----------
    true, pred : array_like of int
        Label images of the same shape (any number of dimensions); 0 is background.
    iou_threshold : float, optional
        A pair is a true positive when its IoU is >= this value, in (0, 1].

    Returns
    -------
    MatchScores
        Counts, precision, recall, F1 and the mean IoU of the matched pairs.

    Raises
    ------
    ValueError
        If the shapes differ, a label is negative or the threshold is outside (0, 1].
    TypeError
        If a label image does not have an integer dtype.

    Examples
    --------
    >>> true = np.zeros((4, 6), dtype=np.int32)
    >>> true[0:2, 0:4] = 1
    >>> pred = np.zeros_like(true)
    >>> pred[0:2, 1:4] = 7
    >>> pred[3, 5] = 9
    >>> s = match_scores(true, pred)
    >>> (s.tp, s.fp, s.fn, s.mean_matched_jaccard)
    (1, 1, 0, 0.75)
    """
    threshold = check_threshold(iou_threshold)
    return _scores_from_overlaps(_overlaps(true, pred), threshold)


def matched_f1(labels_a: ArrayLike, labels_b: ArrayLike, *, iou_threshold: float = 0.5) -> float:
    """F1 of the one-to-one matching of two label images (symmetric in its arguments).

    Parameters
    ----------
    labels_a, labels_b : array_like of int
        Label images of the same shape.
    iou_threshold : float, optional
        Matching threshold on the IoU.

    Returns
    -------
    float
        ``2 tp / (2 tp + fp + fn)``; 1.0 when both images are empty.

    Raises
    ------
    ValueError, TypeError
        As :func:`match_scores`.

    Examples
    --------
    >>> a = np.array([[1, 1, 0, 2, 2]])
    >>> b = np.array([[5, 5, 0, 0, 0]])
    >>> round(matched_f1(a, b), 3)
    0.667
    """
    return match_scores(labels_a, labels_b, iou_threshold=iou_threshold).f1


# --------------------------------------------------------------------------------------------
# AJI and AP
# --------------------------------------------------------------------------------------------


def _aji_parts(ov: _Overlaps) -> tuple[int, int]:
    """Numerator (summed intersections) and denominator (summed unions) of the AJI."""
    area_t, area_p = ov.area_true[1:], ov.area_pred[1:]
    if ov.it.size == 0:
        return 0, int(area_t.sum() + area_p.sum())
    # per true object, the pred of highest IoU (ties: lowest pred ID)
    order = np.lexsort((ov.ip, -ov.iou, ov.it))
    it, ip, inter = ov.it[order], ov.ip[order], ov.inter[order]
    first = np.ones(it.size, dtype=bool)
    first[1:] = it[1:] != it[:-1]
    bt, bp, binter = it[first], ip[first], inter[first]
    intersection = int(binter.sum())
    union = int((ov.area_true[bt] + ov.area_pred[bp] - binter).sum())
    t_paired = np.zeros(ov.n_true + 1, dtype=bool)
    t_paired[bt] = True
    p_used = np.zeros(ov.n_pred + 1, dtype=bool)
    p_used[bp] = True
    union += int(area_t[~t_paired[1:]].sum() + area_p[~p_used[1:]].sum())
    return intersection, union


def aggregated_jaccard_index(true: ArrayLike, pred: ArrayLike) -> float:
    """Compute the Aggregated Jaccard Index (AJI, Kumar et al. 2017).

    Every true object is paired with the predicted object of highest IoU (ties: lowest ID);
    a predicted object may be paired with several true objects. The AJI is the sum of the
    pairs' intersections divided by the sum of their unions plus the areas of true objects
    overlapping no prediction and of predicted objects paired with no true object.

    Parameters
    ----------
    true, pred : array_like of int
        Label images of the same shape.

    Returns
    -------
    float
        AJI in [0, 1]; 1.0 when both images are empty.

    Raises
    ------
    ValueError, TypeError
        As :func:`match_scores`.

    Examples
    --------
    >>> true = np.array([[1, 1, 1, 1, 0, 0]])
    >>> pred = np.array([[0, 3, 3, 3, 0, 4]])
    >>> aggregated_jaccard_index(true, pred)  # 3 / (4 + 1)
    0.6
    """
    inter, union = _aji_parts(_overlaps(true, pred))
    return 1.0 if union == 0 else inter / union


def _check_thresholds(thresholds: Iterable[float]) -> np.ndarray:
    ths = np.asarray(list(thresholds), dtype=float).ravel()
    if ths.size == 0:
        raise ValueError("thresholds must not be empty")
    for th in ths:
        check_threshold(th, "thresholds")
    return ths


def _ap_from_overlaps(ov: _Overlaps, thresholds: np.ndarray) -> np.ndarray:
    out = np.empty(thresholds.size)
    for i, th in enumerate(thresholds):
        tp = int(_one_to_one(ov.it, ov.ip, ov.iou, th).size)
        denom = ov.n_true + ov.n_pred - tp  # tp + fp + fn
        out[i] = 1.0 if denom == 0 else tp / denom
    return out


def ap_per_threshold(
    true: ArrayLike, pred: ArrayLike, *, thresholds: Iterable[float] = AP_THRESHOLDS
) -> np.ndarray:
    """Cellpose/stardist-style average precision ``tp / (tp + fp + fn)`` per IoU threshold.

    Parameters
    ----------
    true, pred : array_like of int
        Label images of the same shape.
    thresholds : iterable of float, optional
        IoU thresholds in (0, 1]; default :data:`AP_THRESHOLDS`.

    Returns
    -------
    numpy.ndarray
        float64 array, one value per threshold (1.0 where both images are empty).

    Raises
    ------
    ValueError, TypeError
        As :func:`match_scores`, or if ``thresholds`` is empty.

    Examples
    --------
    >>> true = np.array([[1, 1, 1, 1, 0, 2]])
    >>> pred = np.array([[1, 1, 1, 0, 0, 2]])
    >>> ap_per_threshold(true, pred, thresholds=[0.5, 0.8])
    array([1.        , 0.33333333])
    """
    ths = _check_thresholds(thresholds)
    return _ap_from_overlaps(_overlaps(true, pred), ths)


def average_precision(
    true: ArrayLike, pred: ArrayLike, *, thresholds: Iterable[float] = AP_THRESHOLDS
) -> float:
    """Mean over IoU thresholds of ``tp / (tp + fp + fn)`` (see :func:`ap_per_threshold`).

    Parameters
    ----------
    true, pred : array_like of int
        Label images of the same shape.
    thresholds : iterable of float, optional
        IoU thresholds in (0, 1]; default :data:`AP_THRESHOLDS` (AP 50:95).

    Returns
    -------
    float
        The mean of the per-threshold values.

    Raises
    ------
    ValueError, TypeError
        As :func:`ap_per_threshold`.

    Examples
    --------
    >>> true = np.array([[1, 1, 1, 1, 0, 2]])
    >>> pred = np.array([[1, 1, 1, 0, 0, 2]])
    >>> round(average_precision(true, pred, thresholds=[0.5, 0.8]), 4)
    0.6667
    """
    return float(ap_per_threshold(true, pred, thresholds=thresholds).mean())


# --------------------------------------------------------------------------------------------
# Per-image evaluation and pooling
# --------------------------------------------------------------------------------------------


def evaluate(true: ArrayLike, pred: ArrayLike, *, iou_threshold: float = 0.5) -> dict[str, Any]:
    """All scores of one image pair, as a JSON-serialisable dict.

    Parameters
    ----------
    true, pred : array_like of int
        Label images of the same shape.
    iou_threshold : float, optional
        Threshold of the matching behind tp/fp/fn, precision, recall, f1 and
        mean_matched_jaccard (AP always uses :data:`AP_THRESHOLDS`).

    Returns
    -------
    dict
        Keys ``precision``, ``recall``, ``f1``, ``mean_matched_jaccard``, ``aji``,
        ``ap_50_95`` (floats), ``tp``, ``fp``, ``fn``, ``n_true``, ``n_pred`` (ints) and the
        AJI's numerator and denominator ``aji_intersection``, ``aji_union`` (ints), which
        :func:`combine` uses to pool the AJI exactly.

    Raises
    ------
    ValueError, TypeError
        As :func:`match_scores`.

    Examples
    --------
    >>> true = np.array([[1, 1, 1, 1, 0, 2]])
    >>> pred = np.array([[1, 1, 1, 0, 0, 2]])
    >>> d = evaluate(true, pred)
    >>> d["tp"], d["f1"], d["aji_intersection"], d["aji_union"]
    (2, 1.0, 4, 5)
    """
    threshold = check_threshold(iou_threshold)
    ov = _overlaps(true, pred)
    out: dict[str, Any] = asdict(_scores_from_overlaps(ov, threshold))
    inter, union = _aji_parts(ov)
    out["aji"] = 1.0 if union == 0 else inter / union
    out["aji_intersection"] = inter
    out["aji_union"] = union
    out["ap_50_95"] = float(_ap_from_overlaps(ov, np.asarray(AP_THRESHOLDS)).mean())
    logger.debug("evaluate: %s", out)
    return out


def _weighted_mean(values: np.ndarray, weights: np.ndarray, empty: float) -> float:
    total = weights.sum()
    if total > 0:
        return float((values * weights).sum() / total)
    return float(values.mean()) if values.size else empty


def combine(scores: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Pool per-image :func:`evaluate` results into overall scores.

    tp, fp, fn, n_true, n_pred and the AJI parts are summed; precision, recall and f1 are
    computed from the summed counts and the AJI from the summed parts, so they equal the
    scores of the images laid side by side. ``mean_matched_jaccard`` is weighted by ``tp``
    (the mean IoU over all matched pairs, also exact); ``ap_50_95`` is weighted by ``n_true``
    (plain mean if no image has true objects).

    Parameters
    ----------
    scores : iterable of mapping
        Dicts as returned by :func:`evaluate`.

    Returns
    -------
    dict
        The keys of :func:`evaluate` plus ``n_images``.

    Raises
    ------
    ValueError
        If ``scores`` is empty or a dict lacks a needed key.

    Examples
    --------
    >>> a = evaluate(np.array([[1, 1, 0]]), np.array([[1, 1, 0]]))
    >>> b = evaluate(np.array([[1, 0, 2]]), np.array([[0, 0, 2]]))
    >>> c = combine([a, b])
    >>> c["tp"], c["fn"], round(c["recall"], 3), c["aji"]
    (2, 1, 0.667, 0.75)
    """
    rows: list[Mapping[str, Any]] = list(scores)
    if not rows:
        raise ValueError("combine() needs at least one score dict")
    for i, row in enumerate(rows):
        missing = [k for k in _COMBINE_KEYS if k not in row]
        if missing:
            raise ValueError(f"score dict {i} lacks keys {missing}")
    sums = {k: int(sum(int(r[k]) for r in rows)) for k in _COMBINE_KEYS[:7]}
    precision, recall, f1 = _prf(sums["tp"], sums["fp"], sums["fn"])
    tp_w = np.array([r["tp"] for r in rows], dtype=float)
    nt_w = np.array([r["n_true"] for r in rows], dtype=float)
    mmj = np.array([r["mean_matched_jaccard"] for r in rows], dtype=float)
    ap = np.array([r["ap_50_95"] for r in rows], dtype=float)
    union = sums["aji_union"]
    out: dict[str, Any] = {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "mean_matched_jaccard": _weighted_mean(mmj, tp_w, 0.0) if tp_w.sum() > 0 else 0.0,
        "aji": 1.0 if union == 0 else sums["aji_intersection"] / union,
        "ap_50_95": _weighted_mean(ap, nt_w, math.nan),
        **sums,
        "n_images": len(rows),
    }
    return out


def paired_bootstrap_f1(counts_a: ArrayLike, counts_b: ArrayLike, *, n_resamples: int = 2000,
                        confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Difference of pooled F1 between two methods on the same images, with an interval.

    The images are resampled with replacement (the same draw for both methods), the
    counts of each method are pooled and the F1 difference ``a - b`` is taken; the
    interval is the percentile interval of those differences.

    Parameters
    ----------
    counts_a, counts_b : array_like
        ``(n_images, 3)`` per-image ``(tp, fp, fn)`` of each method, images in the same
        order.
    n_resamples : int
    confidence : float
        Interval coverage, in (0, 1).
    seed : int

    Returns
    -------
    tuple of float
        ``(difference on all images, lower, upper)``.

    Raises
    ------
    ValueError
        Shapes that differ or are not ``(n, 3)`` with n >= 1; bad ``n_resamples`` or
        ``confidence``.

    Examples
    --------
    >>> a = [[9, 1, 1], [8, 0, 2], [10, 1, 0]]
    >>> d, lo, hi = paired_bootstrap_f1(a, [[7, 2, 3], [8, 1, 2], [9, 2, 1]])
    >>> round(d, 3), lo <= d <= hi
    (0.102, True)
    >>> paired_bootstrap_f1(a, a)
    (0.0, 0.0, 0.0)
    """
    a = np.asarray(counts_a, dtype=np.float64)
    b = np.asarray(counts_b, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3 or a.shape != b.shape or len(a) == 0:
        raise ValueError(f"expected two (n_images, 3) arrays of (tp, fp, fn) with n >= 1; got "
                         f"shapes {a.shape} and {b.shape}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be an integer >= 1; got {n_resamples!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")

    draw = np.random.default_rng(seed).integers(0, len(a), size=(n_resamples, len(a)))
    diffs = pooled_f1(a[draw].sum(axis=1)) - pooled_f1(b[draw].sum(axis=1))
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(diffs, [tail, 100 - tail])
    return float(pooled_f1(a.sum(axis=0)) - pooled_f1(b.sum(axis=0))), float(lo), float(hi)


def pooled_f1(counts: ArrayLike) -> np.ndarray:
    """F1 of ``(tp, fp, fn)`` counts along the last axis, vectorized.

    As everywhere in this module, F1 is 1.0 where there is nothing to find and nothing
    was found.

    Examples
    --------
    >>> pooled_f1([[9, 1, 1], [0, 0, 0], [0, 2, 0]]).tolist()
    [0.9, 1.0, 0.0]
    """
    tp, fp, fn = np.moveaxis(np.asarray(counts, dtype=np.float64), -1, 0)
    den = 2 * tp + fp + fn
    return np.divide(2 * tp, den, out=np.ones_like(den), where=den > 0)

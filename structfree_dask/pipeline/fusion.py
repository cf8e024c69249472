"""Fusion of per-channel segmentations into one instance label image.

Mask-fusion baselines
---------------------
The baseline the package is compared against runs the segmentation model on every reporter
channel alone, which gives K instance label images ("raters"), and fuses them:

1. :func:`match_instances` groups instances across the K images: nodes are (image, label),
   edges join instances of different images with IoU >= ``iou_threshold``, and every connected
   component is one candidate cell.
2. Within a group every rater contributes one binary mask (the union of its members, or an
   all-zero mask when it did not detect the cell), on the group's bounding box plus a margin
   of ``3`` pixels, and the masks are fused by one of
   :data:`~structfree_dask.config.FUSION_BASELINES`:

   ``"voting"``
       The group is always kept; a pixel is in the cell when at least half of the raters that
       detected the cell include it. Support = number of votes.
   ``"majority"``
       Majority voting: the group is kept only when more than K/2 raters detected it; a pixel
       is in the cell when more than K/2 of all K raters include it. Support = votes.
   ``"staple"``
       STAPLE (Warfield et al. 2004), see :func:`staple`; pixel in the cell when the posterior
       is >= 0.5. Support = posterior.
   ``"simple"``
       SIMPLE (Langerak et al. 2010), see :func:`simple`. Support = summed rater weights.

3. A pixel claimed by several fused cells goes to the cell with the highest support there (ties
   to the group that comes first); cells smaller than ``min_size`` pixels are removed and the
   result is relabelled 1..N (uint32) in group order. Groups are ordered by their first member,
   members by (image index, label), so the output is deterministic.

The functions of this section are self-contained numpy/scipy code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit
from skimage.segmentation import relabel_sequential

from ..config import DEFAULT_MIN_SIZE, FUSION_BASELINES
from .overlap import check_labels, check_threshold, label_overlaps

__all__ = [
    "StapleResult",
    "SimpleResult",
    "fuse_masks",
    "match_instances",
    "simple",
    "staple",
]

logger = logging.getLogger(__name__)

# ============================================================================================
# Mask-fusion baselines (per-channel instance masks -> one fused instance label image)
# ============================================================================================

_BBOX_MARGIN = 3
_PROB_EPS = 1e-6


@dataclass(frozen=True)
class StapleResult:
    """Output of :func:`staple`.

    Attributes
    ----------
    posterior : numpy.ndarray
        float64 probability that each pixel belongs to the true mask, shape of one rater.
    sensitivity, specificity : numpy.ndarray
        float64 arrays of shape ``(K,)``: the estimated p and q of every rater.
    n_iter : int
        EM iterations run (0 in the degenerate cases).
    converged : bool
        Whether the parameters changed by less than ``tol`` before ``max_iter``.
    """

    posterior: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    n_iter: int
    converged: bool


@dataclass(frozen=True)
class SimpleResult:
    """Output of :func:`simple`.

    Attributes
    ----------
    mask : numpy.ndarray
        bool fused mask, shape of one rater.
    support : numpy.ndarray
        float64 summed weight of the kept raters that include each pixel.
    weights : numpy.ndarray
        float64 ``(K,)`` final rater weights (Dice**2; 0 for discarded raters).
    kept : numpy.ndarray
        bool ``(K,)``, raters still in the set at the end.
    n_iter : int
        Iterations run.
    """

    mask: np.ndarray
    support: np.ndarray
    weights: np.ndarray
    kept: np.ndarray
    n_iter: int


def _check_raters(raters: ArrayLike) -> np.ndarray:
    """Return raters as a bool array ``(K, n_pixels)``."""
    arr = np.asarray(raters)
    if arr.ndim < 1 or arr.shape[0] == 0:
        raise ValueError(f"raters must have shape (K, ...) with K >= 1, got {arr.shape}")
    return arr.reshape(arr.shape[0], -1).astype(bool, copy=False)


def staple(
    raters: ArrayLike, *, tol: float = 1e-5, max_iter: int = 50, prior: float | None = None
) -> StapleResult:
    """Fuse binary masks with STAPLE (Warfield, Zou & Wells, IEEE TMI 2004).

    Expectation-maximisation over K binary raters: the E-step computes the posterior W that
    each pixel is foreground given every rater's sensitivity p and specificity q, the M-step
    re-estimates ``p_k = sum(W D_k) / sum(W)`` and ``q_k = sum((1-W)(1-D_k)) / sum(1-W)``.
    p and q start at 0.99 and are clipped to ``[1e-6, 1 - 1e-6]``; the foreground prior is
    fixed. Iteration stops when no p or q changes by more than ``tol``, or after
    ``max_iter`` iterations; W is then recomputed with the final parameters.

    Parameters
    ----------
    raters : array_like
        Binary masks, shape ``(K, ...)``; nonzero = foreground.
    tol : float, optional
        Convergence tolerance on the rater parameters.
    max_iter : int, optional
        Maximum number of EM iterations.
    prior : float, optional
        Foreground prior; default the mean of all rater decisions.

    Returns
    -------
    StapleResult
        Posterior, per-rater sensitivity and specificity, iterations, convergence flag. With
        one rater, or identical raters, the posterior is that mask and p = q = 1.

    Raises
    ------
    ValueError
        If there are no raters.

    Examples
    --------
    >>> good = np.zeros((8, 8), dtype=bool)
    >>> good[2:6, 2:6] = True
    >>> bad = np.zeros_like(good)
    >>> bad[0:3, 0:8] = True
    >>> res = staple(np.stack([good, good, bad]))
    >>> bool(((res.posterior >= 0.5) == good).all())
    True
    >>> bool(res.specificity[2] < res.specificity[0])
    True
    """
    flat = _check_raters(raters)
    shape = np.asarray(raters).shape[1:]
    n_raters, n_pix = flat.shape
    if n_raters == 1 or n_pix == 0 or (flat == flat[:1]).all():
        ones = np.ones(n_raters)
        return StapleResult(flat[0].astype(float).reshape(shape), ones, ones.copy(), 0, True)
    d = flat.astype(float)
    f = float(d.mean()) if prior is None else float(prior)
    f = min(max(f, _PROB_EPS), 1.0 - _PROB_EPS)
    logit_prior = np.log(f) - np.log1p(-f)
    p = np.full(n_raters, 0.99)
    q = np.full(n_raters, 0.99)

    def e_step(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        # logit W = logit f + sum_k D_k log(p_k / (1 - q_k)) + (1 - D_k) log((1 - p_k) / q_k)
        a = np.log(p) - np.log1p(-q)
        b = np.log1p(-p) - np.log(q)
        return expit(logit_prior + b.sum() + (a - b) @ d)

    converged = False
    n_iter = 0
    for it in range(1, max_iter + 1):
        n_iter = it
        w = e_step(p, q)
        sw = w.sum()
        sb = n_pix - sw
        p_new = d @ w / sw if sw > 0 else p
        q_new = (1.0 - d) @ (1.0 - w) / sb if sb > 0 else q
        p_new = np.clip(p_new, _PROB_EPS, 1.0 - _PROB_EPS)
        q_new = np.clip(q_new, _PROB_EPS, 1.0 - _PROB_EPS)
        delta = max(np.abs(p_new - p).max(), np.abs(q_new - q).max())
        p, q = p_new, q_new
        if delta < tol:
            converged = True
            break
    w = e_step(p, q)
    return StapleResult(w.reshape(shape), p, q, n_iter, converged)


def _dice(flat: np.ndarray, est: np.ndarray) -> np.ndarray:
    """Dice of every rater row of ``flat`` with ``est`` (1.0 when both are empty)."""
    inter = (flat & est).sum(axis=1).astype(float)
    denom = flat.sum(axis=1) + est.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(denom > 0, 2.0 * inter / denom, 1.0)
    return dice


def simple(raters: ArrayLike, *, alpha: float = 1.0, max_iter: int = 10) -> SimpleResult:
    """Fuse binary masks with SIMPLE (Langerak et al., IEEE TMI 2010).

    "Selective and Iterative Method for Performance Level Estimation": start from the
    majority vote (pixels in more than K/2 masks); then repeat: compute each kept rater's Dice
    with the current estimate, discard raters whose Dice < mean - ``alpha`` * std (over the
    kept raters; the best one is always kept), and re-estimate by weighted voting with
    weights Dice**2: a pixel is in the mask when its weighted vote exceeds half the total
    weight (ties go to background, as in argmax weighted majority voting). Stops when no rater
    is discarded, or after ``max_iter`` iterations.

    Parameters
    ----------
    raters : array_like
        Binary masks, shape ``(K, ...)``; nonzero = foreground.
    alpha : float, optional
        Number of standard deviations below the mean Dice at which a rater is discarded.
    max_iter : int, optional
        Maximum number of iterations.

    Returns
    -------
    SimpleResult
        Fused mask, per-pixel support (summed weights), final weights and kept raters.

    Raises
    ------
    ValueError
        If there are no raters.

    Examples
    --------
    >>> good = np.zeros((10, 10), dtype=bool)
    >>> good[2:7, 2:7] = True
    >>> wild = np.ones_like(good)
    >>> res = simple(np.stack([good, good, good, wild]))
    >>> res.kept.tolist()
    [True, True, True, False]
    >>> bool((res.mask == good).all())
    True
    """
    flat = _check_raters(raters)
    shape = np.asarray(raters).shape[1:]
    n_raters = flat.shape[0]
    support = flat.sum(axis=0).astype(float)
    est = support > n_raters / 2
    kept = np.ones(n_raters, dtype=bool)
    weights = np.ones(n_raters)
    n_iter = 0
    for it in range(1, max_iter + 1):
        n_iter = it
        dice = _dice(flat, est)
        d_kept = dice[kept]
        cut = d_kept.mean() - alpha * d_kept.std()
        new_kept = kept & (dice >= cut - 1e-12)
        if not new_kept.any():
            new_kept[int(np.argmax(np.where(kept, dice, -np.inf)))] = True
        weights = np.where(new_kept, dice**2, 0.0)
        total = weights.sum()
        support = weights @ flat
        est = support > total / 2 if total > 0 else np.zeros_like(est)
        stable = bool((new_kept == kept).all())
        kept = new_kept
        if stable:
            break
    return SimpleResult(est.reshape(shape), support.reshape(shape), weights, kept, n_iter)


# --------------------------------------------------------------------------------------------
# Matching instances across raters
# --------------------------------------------------------------------------------------------


def _check_label_images(label_images: Sequence[ArrayLike]) -> list[np.ndarray]:
    images = [np.asarray(im) for im in label_images]
    if not images:
        raise ValueError("at least one label image is needed")
    shapes = [im.shape for im in images]
    if len(set(shapes)) > 1:
        raise ValueError(f"all label images must have the same shape, got {shapes}")
    return [check_labels(im, f"label_images[{k}]") for k, im in enumerate(images)]


@dataclass(frozen=True)
class _Relabelled:
    """Label images relabelled to consecutive IDs, with the way back."""

    labels: list[np.ndarray]  # intp, original shape
    n_labels: list[int]
    old_ids: list[np.ndarray]  # old_ids[k][new_id] = original ID


def _relabel_all(images: list[np.ndarray]) -> _Relabelled:
    labels, n_labels, old_ids = [], [], []
    for im in images:
        new, _, inv = relabel_sequential(im)
        new = new.astype(np.intp, copy=False)
        n = int(new.max()) if new.size else 0
        back = np.zeros(n + 1, dtype=im.dtype)
        back[np.asarray(inv.in_values, dtype=np.intp)] = inv.out_values
        labels.append(new)
        n_labels.append(n)
        old_ids.append(back)
    return _Relabelled(labels, n_labels, old_ids)


def _groups(rel: _Relabelled, iou_threshold: float) -> list[np.ndarray]:
    """Return the cross-image IoU graph's components as ``(m, 2)`` arrays of (k, new ID)."""
    n_img = len(rel.labels)
    n_labels = np.asarray(rel.n_labels, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_labels)])
    n_nodes = int(offsets[-1])
    if n_nodes == 0:
        return []
    rows, cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    flats = [lab.ravel() for lab in rel.labels]
    for k in range(n_img):
        for m in range(k + 1, n_img):
            o = label_overlaps(flats[k], flats[m])
            sel = o.iou() >= iou_threshold
            # labels are consecutive (1..n): the i-th label is label i, index 0 background
            rows.append(offsets[k] + o.ids_a[o.ia[sel]] - 1)
            cols.append(offsets[m] + o.ids_b[o.ib[sel]] - 1)
            logger.debug("images %d-%d: %d matched pairs", k, m, int(sel.sum()))
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(r.size), (r, c)), shape=(n_nodes, n_nodes))
    n_comp, comp = connected_components(graph, directed=False)
    node_img = np.repeat(np.arange(n_img), n_labels)
    node_id = np.concatenate([np.arange(1, n + 1) for n in n_labels])
    order = np.argsort(comp, kind="stable")  # by component, then node index
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    members = np.split(order, bounds)
    members.sort(key=lambda nodes: int(nodes[0]))  # by first node = (image, label) order
    return [np.stack([node_img[nd], node_id[nd]], axis=1) for nd in members]


def match_instances(
    label_images: Sequence[ArrayLike], *, iou_threshold: float = 0.5
) -> list[list[tuple[int, int]]]:
    """Group instances of several label images that overlap with IoU >= a threshold.

    Builds a graph whose nodes are (image index, label ID) and whose edges join instances of
    different images with IoU >= ``iou_threshold`` (IoUs from a sparse contingency table per
    image pair), and returns its connected components. A group may hold several instances of
    one image when they are chained through instances of other images.

    Parameters
    ----------
    label_images : sequence of array_like of int
        K label images of the same shape; 0 is background.
    iou_threshold : float, optional
        Minimum IoU of an edge, in (0, 1].

    Returns
    -------
    list of list of (int, int)
        One list per group of ``(image index, original label ID)`` pairs sorted by image and
        label; groups sorted by their first member. Every instance is in exactly one group.

    Raises
    ------
    ValueError
        If no image is given, the shapes differ, a label is negative or the threshold is
        outside (0, 1].
    TypeError
        If an image does not have an integer dtype.

    Examples
    --------
    >>> a = np.zeros((4, 8), dtype=np.uint16)
    >>> a[:, :3] = 1
    >>> a[:, 5:] = 2
    >>> b = np.zeros_like(a)
    >>> b[:, :3] = 7
    >>> match_instances([a, b])
    [[(0, 1), (1, 7)], [(0, 2)]]
    """
    threshold = check_threshold(iou_threshold)
    rel = _relabel_all(_check_label_images(label_images))
    return [[(int(k), int(rel.old_ids[k][i])) for k, i in grp] for grp in _groups(rel, threshold)]


# --------------------------------------------------------------------------------------------
# Fusion
# --------------------------------------------------------------------------------------------


def _group_bbox(
    grp: np.ndarray, boxes: list[list[tuple[slice, ...] | None]], shape: tuple[int, ...]
) -> tuple[slice, ...]:
    lo = np.full(len(shape), np.iinfo(np.int64).max)
    hi = np.zeros(len(shape), dtype=np.int64)
    for k, i in grp:
        box = boxes[k][i - 1]
        assert box is not None  # consecutive labels: every ID is present
        lo = np.minimum(lo, [s.start for s in box])
        hi = np.maximum(hi, [s.stop for s in box])
    lo = np.maximum(lo - _BBOX_MARGIN, 0)
    hi = np.minimum(hi + _BBOX_MARGIN, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def _fuse_group(
    raters: np.ndarray, n_detect: int, method: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """Return the fused mask and support of one group, or None when the group is dropped."""
    n_raters = raters.shape[0]
    if method in ("voting", "majority"):
        votes = raters.sum(axis=0)
        if method == "voting":
            mask = votes >= n_detect / 2
        else:
            if n_detect <= n_raters / 2:
                return None
            mask = votes > n_raters / 2
        return mask, votes.astype(float)
    if method == "staple":
        res = staple(raters)
        return res.posterior >= 0.5, res.posterior
    res_s = simple(raters)
    return res_s.mask, res_s.support


def fuse_masks(
    label_images: Sequence[ArrayLike],
    *,
    method: str,
    iou_threshold: float = 0.5,
    min_size: int = DEFAULT_MIN_SIZE,
) -> np.ndarray:
    """Fuse K instance label images (one per channel) into one instance label image.

    Instances are grouped with :func:`match_instances`, every group's K binary masks are
    fused with ``method`` (see the module docstring and
    :data:`~structfree_dask.config.FUSION_BASELINES`), pixels
    claimed by several cells go to the cell of highest support (ties: the earlier group),
    cells smaller than ``min_size`` pixels are removed and IDs are made consecutive.

    Parameters
    ----------
    label_images : sequence of array_like of int
        K >= 1 label images of the same shape (2D or 3D); 0 is background.
    method : {"voting", "majority", "staple", "simple"}
        Fusion rule.
    iou_threshold : float, optional
        IoU at which instances of different images are grouped, in (0, 1].
    min_size : int, optional
        Fused cells with fewer pixels are removed.

    Returns
    -------
    numpy.ndarray
        uint32 label image with IDs 1..N in group order. With K = 1 it is the input
        relabelled to consecutive IDs (``min_size`` is not applied).

    Raises
    ------
    ValueError
        If no image is given, the shapes differ, the method is unknown, a label is negative,
        the threshold is outside (0, 1] or ``min_size`` is negative.
    TypeError
        If an image does not have an integer dtype.

    Examples
    --------
    >>> a = np.zeros((6, 12), dtype=np.int32)
    >>> a[0:5, 0:5] = 1
    >>> a[0:5, 7:12] = 2
    >>> b = np.zeros_like(a)
    >>> b[1:6, 0:5] = 4
    >>> c = a.copy()
    >>> c[:, 7:] = 0
    >>> fuse_masks([a, b, c], method="majority", min_size=0)[:, :6]
    array([[1, 1, 1, 1, 1, 0],
           [1, 1, 1, 1, 1, 0],
           [1, 1, 1, 1, 1, 0],
           [1, 1, 1, 1, 1, 0],
           [1, 1, 1, 1, 1, 0],
           [0, 0, 0, 0, 0, 0]], dtype=uint32)
    >>> int(fuse_masks([a, b, c], method="voting", min_size=0).max())
    2
    """
    if method not in FUSION_BASELINES:
        raise ValueError(f"unknown fusion method {method!r}; valid methods: {FUSION_BASELINES}")
    if min_size < 0:
        raise ValueError(f"min_size must be >= 0, got {min_size}")
    threshold = check_threshold(iou_threshold)
    images = _check_label_images(label_images)
    shape = images[0].shape
    if len(images) == 1:
        return relabel_sequential(images[0])[0].astype(np.uint32)

    rel = _relabel_all(images)
    groups = _groups(rel, threshold)
    n_raters = len(images)
    boxes = [ndi.find_objects(lab) for lab in rel.labels]
    owner = np.zeros(shape, dtype=np.intp)  # group index + 1
    best = np.zeros(shape, dtype=np.float64)  # support of the current owner
    for gi, grp in enumerate(groups):
        n_detect = int(np.unique(grp[:, 0]).size)
        if method == "majority" and n_detect <= n_raters / 2:
            continue  # cheap early exit; _fuse_group would drop it too
        bbox = _group_bbox(grp, boxes, shape)
        raters = np.zeros((n_raters, *(s.stop - s.start for s in bbox)), dtype=bool)
        for k, i in grp:
            raters[k] |= rel.labels[k][bbox] == i
        fused = _fuse_group(raters, n_detect, method)
        if fused is None:
            continue
        mask, support = fused
        win = mask & (support > best[bbox])
        owner[bbox][win] = gi + 1
        best[bbox][win] = support[win]

    sizes = np.bincount(owner.ravel(), minlength=len(groups) + 1)
    keep = sizes >= max(min_size, 1)
    keep[0] = False
    lut = np.zeros(len(groups) + 1, dtype=np.uint32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    logger.debug("fuse_masks(%s): %d groups, %d cells kept", method, len(groups), int(keep.sum()))
    return lut[owner]

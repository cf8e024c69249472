"""The one overlap count of two label images: which objects share pixels, and how many.

Scoring (IoU matching), mask fusion (the cross-image IoU graph), linking (nucleus by
cell) and tracking (objects of one timepoint matched to another) all start from the same
sparse contingency table of two label arrays. It is computed here, once, for label IDs of
any size: memory follows the number of objects, not the largest ID.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

__all__ = ["Overlaps", "check_labels", "check_threshold", "label_overlaps"]

_I64 = np.int64


@dataclass(frozen=True)
class Overlaps:
    """The sparse contingency table of two label arrays ``a`` and ``b``.

    Attributes
    ----------
    ids_a, ids_b : numpy.ndarray
        The labels of each array, sorted, starting with 0 (the background, present or
        not): index ``i`` stands for label ``ids_a[i]``.
    ia, ib : numpy.ndarray
        Index pairs of the labels that share pixels (both > 0; with ``b_background``
        also ``ib == 0``), sorted by ``ia`` then ``ib``.
    inter : numpy.ndarray
        Pixels each pair shares.
    area_a, area_b : numpy.ndarray
        Pixels of each label (index 0: the background).
    """

    ids_a: npt.NDArray[np.int64]
    ids_b: npt.NDArray[np.int64]
    ia: npt.NDArray[np.int64]
    ib: npt.NDArray[np.int64]
    inter: npt.NDArray[np.int64]
    area_a: npt.NDArray[np.int64]
    area_b: npt.NDArray[np.int64]

    def iou(self) -> npt.NDArray[np.float64]:
        """Intersection over union of each pair."""
        if not self.inter.size:
            return np.zeros(0)
        return self.inter / (self.area_a[self.ia] + self.area_b[self.ib] - self.inter)


def check_labels(arr: ArrayLike, name: str) -> np.ndarray:
    """Return ``arr`` as an array after checking it is a non-negative integer label image."""
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must have an integer dtype, got {arr.dtype}")
    if arr.size and np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise ValueError(f"{name} contains negative labels (min {arr.min()})")
    return arr


def check_threshold(threshold: float, name: str = "iou_threshold") -> float:
    """Return an IoU threshold after checking it is in (0, 1]."""
    threshold = float(threshold)
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {threshold}")
    return threshold


def _index(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted labels with 0 first, each pixel's index into them, and each label's area.

    IDs up to twice the number of pixels are counted directly (one pass, no sort: the
    lookup table is no larger than the image); larger IDs are sorted (memory by the
    number of objects, whatever their IDs).
    """
    top = int(labels.max()) if labels.size else 0
    if top <= 2 * labels.size + 1024:
        labels = labels.astype(np.intp, copy=False)
        counts = np.bincount(labels, minlength=1)
        ids = np.flatnonzero(counts)
        if not ids.size or ids[0] != 0:
            ids = np.concatenate([np.zeros(1, ids.dtype), ids])
        lut = np.zeros(top + 1, _I64)
        lut[ids] = np.arange(len(ids), dtype=_I64)
        return ids.astype(_I64), lut[labels], counts[ids].astype(_I64)
    ids = np.unique(labels)
    if ids[0] != 0:
        ids = np.concatenate([np.zeros(1, ids.dtype), ids])
    index = np.searchsorted(ids, labels).astype(_I64)
    return ids.astype(_I64), index, np.bincount(index, minlength=len(ids)).astype(_I64)


def label_overlaps(a: npt.ArrayLike, b: npt.ArrayLike, *, b_background: bool = False,
                   areas: bool = True) -> Overlaps:
    """Count the pixels that each pair of labels of ``a`` and ``b`` shares.

    Parameters
    ----------
    a, b : array_like
        Integer label arrays of one shape (0: background).
    b_background : bool
        Also count the pixels of ``a``'s labels over ``b``'s background (pairs with
        ``ib == 0``), as linking needs for nuclei outside every cell.
    areas : bool
        Count every label's area (IoU needs them). False (linking): only the pixels of
        the pairs are read, ``ids_*`` hold only the labels of pairs and ``area_*`` count
        those pixels only.

    Returns
    -------
    Overlaps

    Raises
    ------
    ValueError
        If the arrays differ in shape.

    Examples
    --------
    >>> o = label_overlaps([[1, 1, 0, 7]], [[3, 0, 0, 3]])
    >>> o.ids_a.tolist(), o.ids_b.tolist()
    ([0, 1, 7], [0, 3])
    >>> [(int(o.ids_a[i]), int(o.ids_b[j]), int(n)) for i, j, n in zip(o.ia, o.ib, o.inter)]
    [(1, 3, 1), (7, 3, 1)]
    >>> o.iou().round(2).tolist()
    [0.33, 0.5]
    >>> label_overlaps([[1, 1, 0, 7]], [[3, 0, 0, 3]], b_background=True).ib.tolist()
    [0, 1, 1]
    """
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"label arrays differ in shape: {a_arr.shape} and {b_arr.shape}")
    a_px, b_px = a_arr.ravel(), b_arr.ravel()
    if not areas:  # the pairs' pixels only: no pass over the rest
        shared = (a_px != 0) if b_background else (a_px != 0) & (b_px != 0)
        a_px, b_px = a_px[shared], b_px[shared]
    ids_a, ia_px, area_a = _index(a_px)
    ids_b, ib_px, area_b = _index(b_px)
    keep = (ia_px > 0) if b_background else (ia_px > 0) & (ib_px > 0)
    codes, inter = np.unique(ia_px[keep] * len(ids_b) + ib_px[keep], return_counts=True)
    return Overlaps(ids_a, ids_b, codes // len(ids_b), codes % len(ids_b),
                    inter.astype(_I64), area_a, area_b)

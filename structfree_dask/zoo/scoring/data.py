"""Annotated planes of a plate: loading them as samples and scoring a segmentation on them.

* :class:`Plane` is one (field, timepoint, z) plane, its channels and its ground truth;
  :func:`load_planes` reads the planes of some fields.
* :func:`load_samples` turns them into grayscale training samples: every channel of
  every plane is its own sample.
* :func:`score_planes` segments each plane and pools the scores (:data:`SCORE_KEYS`)
  against the ground truth; :func:`pool_scores` pools per-plane scores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...evaluation.metrics import combine, evaluate
from ...io import Plate, open_labels
from ..training.jobs import _open

__all__ = ["SCORE_KEYS", "Plane", "load_planes", "load_samples", "pool_scores", "score_planes"]

#: Scores copied from :func:`structfree_dask.evaluation.metrics.combine` into cards and tables.
SCORE_KEYS = ("f1", "precision", "recall", "aji", "ap_50_95", "mean_matched_jaccard", "tp",
              "fp", "fn", "n_true", "n_pred", "n_images")


@dataclass(frozen=True, eq=False)
class Plane:
    """One (field, timepoint, z) plane with ground truth.

    Attributes
    ----------
    field : str
    t, z : int
    image : numpy.ndarray
        ``(c, y, x)`` raw channels, in the order asked for.
    labels : numpy.ndarray
        ``(y, x)`` ground truth.
    """

    field: str
    t: int
    z: int
    image: np.ndarray
    labels: np.ndarray


def load_planes(plate: str | Path | Plate, fields: Sequence[str], channels: Sequence[int | str],
                gt: str) -> list[Plane]:
    """Read the planes (every timepoint and z) of some fields, with their ground truth.

    Raises
    ------
    KeyError
        Unknown field or channel, or a field without the ``gt`` label image.
    ValueError
        If ``fields`` or ``channels`` is empty.
    """
    if not fields:
        raise ValueError("no fields given to load")
    if not channels:
        raise ValueError("no channels given to load")
    pl = _open(plate)
    out = []
    for path in fields:
        info = pl.field(path)
        idx = [info.channel_index(c) for c in channels]
        labels = open_labels(info, gt)
        arr = info.open_array(0)
        lab_arr = labels.open_array(0, mode="r")
        for t in range(info.sizes["t"]):
            for z in range(info.sizes["z"]):
                image = np.stack([np.asarray(arr[info.plane_index(t, z, c)]) for c in idx])
                lab = np.asarray(lab_arr[info.plane_index(t, z)])
                out.append(Plane(path, t, z, image, lab))
    return out


def load_samples(plate: str | Path | Plate, fields: Sequence[str], channels: Sequence[int | str],
                 gt: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grayscale training samples: every channel of every plane is its own sample.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        ``(y, x)`` raw image and ``(y, x)`` labels, by field, timepoint, z, channel.
    """
    return [(plane.image[k], plane.labels) for plane in load_planes(plate, fields, channels, gt)
            for k in range(plane.image.shape[0])]


def pool_scores(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Pool per-plane :func:`structfree_dask.evaluation.metrics.evaluate` results.

    Parameters
    ----------
    rows : iterable of mapping
        Scores of :func:`structfree_dask.evaluation.metrics.evaluate`, one per plane.

    Returns
    -------
    dict
        :data:`SCORE_KEYS` of :func:`structfree_dask.evaluation.metrics.combine`.

    Examples
    --------
    >>> from structfree_dask.evaluation.metrics import evaluate
    >>> truth = np.array([[1, 1, 0, 2]])
    >>> s = pool_scores([evaluate(truth, truth), evaluate(truth, np.zeros_like(truth))])
    >>> s["tp"], s["fn"], s["n_images"], list(s) == list(SCORE_KEYS)
    (2, 2, 2, True)
    """
    pooled = combine(rows)
    return {k: pooled[k] for k in SCORE_KEYS}


def score_planes(planes: Sequence[Plane],
                 segment: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
    """Segment each plane's ``(c, y, x)`` image and pool the scores against its labels.

    Returns
    -------
    dict
        :data:`SCORE_KEYS` of :func:`structfree_dask.evaluation.metrics.combine` (IoU 0.5).
    """
    rows = [evaluate(p.labels.astype(np.int64), segment(p.image).astype(np.int64))
            for p in planes]
    return pool_scores(rows)


def _forget_model(path: str | Path) -> None:
    """Drop a weights file from the backbone's per-process model cache (frees memory)."""
    from ...backbones import cellpose as backbone

    cache = getattr(backbone, "_CACHE", None)
    if isinstance(cache, dict):
        with backbone._LOCK:
            for key in [k for k in cache if k[0] == str(path)]:
                del cache[key]

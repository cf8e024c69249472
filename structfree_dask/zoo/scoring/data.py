"""Annotated planes of a plate: loading them as samples and scoring a segmentation on them.

* :class:`Plane` is one (field, timepoint, z) plane, its channels and its ground truth;
  :func:`load_planes` reads the planes of some fields.
* :func:`load_samples` turns them into grayscale training samples: every channel of
  every plane is its own sample.
* :func:`score_planes` segments each plane and pools the scores (:data:`SCORE_KEYS`)
  against the ground truth; :func:`pool_scores` pools per-plane scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...config import STRATEGIES
from ...evaluation.metrics import combine, evaluate
from ...io import Plate, open_labels, open_plate

__all__ = ["SCORE_KEYS", "VANILLA", "Plane", "load_planes", "load_samples", "pool_scores",
           "score_planes", "pair_key", "fold_order", "summarize_scores"]

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
    pl = open_plate(plate)
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


def forget_model(path: str | Path) -> None:
    """Drop a weights file from the backbone's per-process model cache (frees memory)."""
    from ...backbones import cellpose as backbone

    cache = getattr(backbone, "_CACHE", None)
    if isinstance(cache, dict):
        with backbone._LOCK:
            for key in [k for k in cache if k[0] == str(path)]:
                del cache[key]


# ------------------------------------------------------------- score rows over folds

#: The strategy of the Vanilla baseline's rows (the base model, not fine-tuned).
VANILLA = "vanilla"


def pair_key(row: Mapping[str, Any]) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """Key a candidate row by (strategy, training channels, evaluation channels).

    Rows without training channels (Vanilla) get an empty tuple there.

    Examples
    --------
    >>> pair_key({"strategy": "mc", "train_channels": [0, 1, 2], "eval_channels": [0, 1]})
    ('mc', (0, 1, 2), (0, 1))
    >>> pair_key({"strategy": "vanilla", "train_channels": None, "eval_channels": [2]})
    ('vanilla', (), (2,))
    """
    return (str(row["strategy"]), tuple(int(c) for c in row.get("train_channels") or ()),
            tuple(int(c) for c in row["eval_channels"]))


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std of the finite values (std NaN with fewer than two)."""
    finite = np.array([v for v in values if math.isfinite(v)], dtype=float)
    if not finite.size:
        return math.nan, math.nan
    std = float(finite.std()) if finite.size > 1 else math.nan
    return float(finite.mean()), std


def fold_order(row: Mapping[str, Any]) -> int:
    """Sort key of score rows by fold (a single split, fold None, first)."""
    fold = row.get("fold")
    return -1 if fold is None else int(fold)


def summarize_scores(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pool score rows over folds: one row per (strategy, training, evaluation) subset.

    Parameters
    ----------
    rows : iterable of mapping
        Rows of :func:`score_split` (any number of folds; Vanilla rows included).

    Returns
    -------
    list of dict
        ``strategy``, ``train_channels``, ``eval_channels``, their names, ``val_f1`` and
        ``test_f1`` (means over the folds), ``val_f1_std`` and ``test_f1_std``
        (population std over the folds; NaN with one fold), ``n_folds``, ``folds``, and
        the ``model_ids`` and ``fold`` of the first fold. Sorted Vanilla, CW, MC, then
        by evaluation subset size and channels.

    Examples
    --------
    >>> rows = [{"strategy": "cw", "train_channels": [0], "eval_channels": [0],
    ...          "val_f1": v, "test_f1": t, "fold": f, "model_ids": {0: f"m{f}"}}
    ...         for f, v, t in [(0, 0.6, 0.5), (1, 0.8, 0.7)]]
    >>> [s] = summarize_scores(rows)
    >>> round(s["val_f1"], 3), round(s["test_f1_std"], 3), s["n_folds"], s["model_ids"]
    (0.7, 0.1, 2, {0: 'm0'})
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(pair_key(row), []).append(row)
    order = {VANILLA: 0, **{s: i + 1 for i, s in enumerate(STRATEGIES)}}
    out = []
    for key, members in groups.items():
        members = sorted(members, key=fold_order)
        first = members[0]
        val, val_std = _mean_std([_num(r.get("val_f1")) for r in members])
        test, test_std = _mean_std([_num(r.get("test_f1")) for r in members])
        out.append({
            "strategy": key[0], "train_channels": list(key[1]), "eval_channels": list(key[2]),
            "train_channel_names": list(first.get("train_channel_names", [])),
            "eval_channel_names": list(first.get("eval_channel_names", [])),
            "val_f1": val, "val_f1_std": val_std, "test_f1": test, "test_f1_std": test_std,
            "n_folds": len(members), "folds": [r.get("fold") for r in members],
            "model_ids": first.get("model_ids"), "fold": first.get("fold"),
        })
    out.sort(key=lambda r: (order.get(r["strategy"], 9), len(r["eval_channels"]),
                            r["eval_channels"], len(r["train_channels"]), r["train_channels"]))
    return out

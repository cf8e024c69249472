"""Cellpose's thresholds for a zoo's selection, chosen on the validation fields.

Cellpose removes a mask when the flows of the finished mask differ from the network's by
more than ``flow_threshold`` (mean squared error, default 0.4), and follows only pixels whose
cell probability (in logits) is above ``cellprob_threshold`` (default 0). Flow Averaging
integrates *averaged* maps, which are shorter than one channel's wherever the channels
disagree, so at 0.4 the flow check removes more of FA's good masks than of a single
channel's; and a weak reporter gives a cell probability that stays low over part of the
object (a nucleus seen only as the hole in the mitochondria around it), so at 0 its masks
come out small or are lost. After the best (training subset, evaluation subset) pair is
chosen, the selected models are run with FA on the validation fields at each (flow, cell
probability) pair of two short lists (Cellpose's 0.4 and 0 among them), and the pair of
highest F1 is stored with the selection; ``segment --zoo`` uses it unless given others.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ... import limits
from ...config import DEFAULT_CELLPROB_THRESHOLD, DEFAULT_FLOW_THRESHOLD
from ...io import Plate, open_plate
from ..selection import Selection, as_selection
from .data import pool_scores
from .predict import (
    load_eval_planes,
    method_scores,
    reference_card,
    selected_models,
    threshold_pair,
)

__all__ = [
    "CELLPROB_THRESHOLDS",
    "FLOW_THRESHOLDS",
    "best_thresholds",
    "check_cellprob_thresholds",
    "check_flow_thresholds",
    "choice_key",
    "choose_thresholds",
    "threshold_scores",
]

logger = logging.getLogger(__name__)

#: Flow-error thresholds a selection chooses from by default.
FLOW_THRESHOLDS: tuple[float, ...] = (0.4, 0.6, 0.8)

#: Cell probability thresholds (logits) a selection chooses from by default.
CELLPROB_THRESHOLDS: tuple[float, ...] = (0.0, -1.0, -2.0)


def _check_grid(values: Sequence[float], valid: Any, expected: str) -> list[float]:
    grid = list(dict.fromkeys(float(v) for v in values))
    if not grid or any(not valid(v) for v in grid):
        raise ValueError(f"{expected}; got {values!r}")
    return grid


def check_flow_thresholds(values: Sequence[float]) -> list[float]:
    """Return the thresholds as floats, duplicates dropped, in the order given.

    Examples
    --------
    >>> check_flow_thresholds([0.4, "0.6", 0.4])
    [0.4, 0.6]
    >>> check_flow_thresholds([])
    Traceback (most recent call last):
    ...
    ValueError: flow_thresholds must be one or more numbers >= 0; got []
    """
    return _check_grid(values, lambda v: v >= 0,
                       "flow_thresholds must be one or more numbers >= 0")


def check_cellprob_thresholds(values: Sequence[float]) -> list[float]:
    """Return the cell probability thresholds as floats, duplicates dropped, in order.

    Examples
    --------
    >>> check_cellprob_thresholds([0, "-1", -2, 0])
    [0.0, -1.0, -2.0]
    >>> check_cellprob_thresholds([0, 500])
    Traceback (most recent call last):
    ...
    ValueError: cellprob_thresholds must be one or more numbers from -100 to 100; got [0, 500]
    """
    low, high = limits.CELLPROB_THRESHOLD
    return _check_grid(values, lambda v: low <= v <= high,
                       f"cellprob_thresholds must be one or more numbers from {low:g} to "
                       f"{high:g}")


def choice_key(f1: float, n_channels: int, threshold: float,
               cellprob: float = DEFAULT_CELLPROB_THRESHOLD) -> tuple[float, ...]:
    """Sort key of a (channel subset, thresholds) choice; the largest key wins.

    Higher F1 (NaN lowest) first; on ties fewer channels, then the flow threshold
    nearest Cellpose's 0.4, then the cell probability threshold nearest its 0.

    Examples
    --------
    >>> max([(0.9, 3, 0.6), (0.9, 2, 0.8), (0.9, 2, 0.4)], key=lambda c: choice_key(*c))
    (0.9, 2, 0.4)
    >>> max([(0.9, 2, 0.4, -2.0), (0.9, 2, 0.4, -1.0)], key=lambda c: choice_key(*c))
    (0.9, 2, 0.4, -1.0)
    """
    return (float(np.nan_to_num(float(f1), nan=-1.0)), -int(n_channels),
            -abs(float(threshold) - DEFAULT_FLOW_THRESHOLD),
            -abs(float(cellprob) - DEFAULT_CELLPROB_THRESHOLD))


def best_thresholds(f1_by_pair: Mapping[tuple[float, float], float]) -> tuple[float, float]:
    """Return the (flow, cell probability) pair of highest F1.

    Ties go to the flow threshold nearest Cellpose's 0.4, then to the cell probability
    threshold nearest 0.

    Examples
    --------
    >>> best_thresholds({(0.4, 0.0): 0.90, (0.6, 0.0): 0.91, (0.8, -1.0): 0.91})
    (0.6, 0.0)
    >>> best_thresholds({(0.4, 0.0): 0.90, (0.4, -1.0): 0.90})
    (0.4, 0.0)
    """
    if not f1_by_pair:
        raise ValueError("no thresholds were scored")
    best = max(f1_by_pair, key=lambda t: choice_key(f1_by_pair[t], 0, *t))
    return threshold_pair(tuple(best))


def threshold_scores(zoo: Any, selection: Selection | Mapping[str, Any], plate: Any,
                     flow_thresholds: Sequence[float] = FLOW_THRESHOLDS,
                     cellprob_thresholds: Sequence[float] = CELLPROB_THRESHOLDS, *,
                     gt: str | None = None, batch_size: int | None = None,
                     ) -> dict[tuple[float, float], dict[str, Any]]:
    """Score the selected pair with FA on the validation fields at each threshold pair.

    The flows of each plane are computed once; only the integration is repeated (once
    per (flow, cell probability) pair).

    Returns
    -------
    dict
        ``{(flow, cellprob): pooled scores}`` (see
        :data:`~structfree_dask.zoo.scoring.data.SCORE_KEYS`).
    """
    grid = [(f, c) for f in check_flow_thresholds(flow_thresholds)
            for c in check_cellprob_thresholds(cellprob_thresholds)]
    sel = as_selection(selection)
    pl = plate if isinstance(plate, Plate) else open_plate(str(plate))
    val = reference_card(zoo, sel).split.val
    models = selected_models(zoo, sel, pl.field(val[0]).channel_names)
    planes = load_eval_planes(zoo, sel, pl, models.channels, gt, val)
    every = tuple(range(len(models.channels)))
    rows = method_scores(models, planes, [every], batch_size, grid, methods=("fa",))
    return {t: pool_scores(rows[("fa", every, t)]) for t in grid}


def _slice(f1: Mapping[tuple[float, float], float], best: tuple[float, float],
           axis: int) -> dict[str, float]:
    """F1 along one threshold with the other at its chosen value, thresholds as text."""
    return {f"{pair[axis]:g}": v for pair, v in f1.items() if pair[1 - axis] == best[1 - axis]}


def choose_thresholds(zoo_dir: str | Path | Any, cell_line: str, organelle: str,
                      flow_thresholds: Sequence[float] = FLOW_THRESHOLDS,
                      cellprob_thresholds: Sequence[float] = CELLPROB_THRESHOLDS, *,
                      plate: Any = None, gt: str | None = None,
                      batch_size: int | None = None) -> Selection:
    """Choose the selection's flow and cell probability thresholds on validation; store them.

    Parameters
    ----------
    zoo_dir : str, Path or Zoo
        A zoo with a selection for ``cell_line`` / ``organelle``.
    cell_line, organelle : str
    flow_thresholds : sequence of float
        Flow-error candidates (Cellpose's 0.4 should be among them).
    cellprob_thresholds : sequence of float
        Cell probability candidates, in logits (Cellpose's 0 should be among them).
    plate : str, Path or Plate, optional
        Plate with the validation fields (default: the one recorded with the selection).
    gt : str, optional
        Ground-truth label image (default: the one recorded with the selection).
    batch_size : int, optional

    Returns
    -------
    Selection
        The stored selection, with ``flow_threshold`` and ``cellprob_threshold``, and the
        validation F1 along each (the other at its chosen value; thresholds as text):
        ``flow_threshold_val_f1`` and ``cellprob_threshold_val_f1``.

    Raises
    ------
    KeyError
        No selection, or no plate recorded and none given.
    ValueError
        A list of thresholds is empty or holds a value out of range.
    """
    from ..registry import Zoo

    zoo = zoo_dir if isinstance(zoo_dir, Zoo) else Zoo(zoo_dir)
    selection = zoo.selection(cell_line, organelle)
    plate = plate if plate is not None else selection.plate
    if plate is None:
        raise KeyError(f"the selection of {cell_line}/{organelle} records no plate; pass plate=")
    scores = threshold_scores(zoo, selection, plate, flow_thresholds, cellprob_thresholds,
                              gt=gt, batch_size=batch_size)
    f1 = {t: float(s["f1"]) for t, s in scores.items()}
    best = best_thresholds(f1)
    logger.info("thresholds for %s/%s: flow %g, cell probability %g (validation F1 %s)",
                cell_line, organelle, *best,
                ", ".join(f"{t:g}/{c:g}: {v:.3f}" for (t, c), v in f1.items()))
    chosen = replace(selection, flow_threshold=best[0], cellprob_threshold=best[1],
                     flow_threshold_val_f1=_slice(f1, best, 0),
                     cellprob_threshold_val_f1=_slice(f1, best, 1))
    return zoo.set_selection(cell_line, organelle, chosen)

"""Cellpose's flow-error threshold for a zoo's selection, chosen on the validation fields.

Cellpose removes a mask when the flows of the finished mask differ from the network's by
more than ``flow_threshold`` (mean squared error, default 0.4). Flow Averaging integrates
*averaged* maps, which are shorter than one channel's wherever the channels disagree, so at
0.4 that check removes more of FA's good masks than of a single channel's. After the best
(training subset, evaluation subset) pair is chosen, the selected models are run with FA on
the validation fields at each threshold of a short list (Cellpose's 0.4 among them), and the
one of highest F1 is stored with the selection; ``segment --zoo`` uses it unless given
another.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ...config import DEFAULT_FLOW_THRESHOLD
from ...io import Plate, open_plate
from ..selection import Selection, as_selection
from .data import pool_scores
from .predict import load_eval_planes, method_scores, reference_card, selected_models

__all__ = [
    "FLOW_THRESHOLDS",
    "best_flow_threshold",
    "choice_key",
    "check_flow_thresholds",
    "choose_flow_threshold",
    "flow_threshold_scores",
]

logger = logging.getLogger(__name__)

#: Thresholds a selection chooses from by default.
FLOW_THRESHOLDS: tuple[float, ...] = (0.4, 0.6, 0.8)


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
    grid = list(dict.fromkeys(float(v) for v in values))
    if not grid or any(not v >= 0 for v in grid):
        raise ValueError(f"flow_thresholds must be one or more numbers >= 0; got {values!r}")
    return grid


def choice_key(f1: float, n_channels: int, threshold: float) -> tuple[float, int, float]:
    """Sort key of a (channel subset, flow threshold) choice; the largest key wins.

    Higher F1 (NaN lowest) first; on ties fewer channels, then the threshold nearest
    Cellpose's 0.4.

    Examples
    --------
    >>> max([(0.9, 3, 0.6), (0.9, 2, 0.8), (0.9, 2, 0.4)], key=lambda c: choice_key(*c))
    (0.9, 2, 0.4)
    """
    return (float(np.nan_to_num(float(f1), nan=-1.0)), -int(n_channels),
            -abs(float(threshold) - DEFAULT_FLOW_THRESHOLD))


def best_flow_threshold(f1_by_threshold: Mapping[float, float]) -> float:
    """Return the threshold of highest F1; ties go to the one nearest Cellpose's 0.4.

    Examples
    --------
    >>> best_flow_threshold({0.4: 0.90, 0.6: 0.91, 0.8: 0.91})
    0.6
    >>> best_flow_threshold({0.4: 0.90, 0.6: 0.90})
    0.4
    """
    if not f1_by_threshold:
        raise ValueError("no flow threshold was scored")
    return float(max(f1_by_threshold, key=lambda t: choice_key(f1_by_threshold[t], 0, t)))


def flow_threshold_scores(zoo: Any, selection: Selection | Mapping[str, Any], plate: Any,
                          thresholds: Sequence[float] = FLOW_THRESHOLDS, *,
                          gt: str | None = None, batch_size: int | None = None,
                          ) -> dict[float, dict[str, Any]]:
    """Score the selected pair with FA on the validation fields at each threshold.

    The flows of each plane are computed once; only the integration is repeated.

    Returns
    -------
    dict
        ``{threshold: pooled scores}`` (see :data:`~structfree_dask.zoo.scoring.data.SCORE_KEYS`).
    """
    grid = check_flow_thresholds(thresholds)
    sel = as_selection(selection)
    pl = plate if isinstance(plate, Plate) else open_plate(str(plate))
    val = reference_card(zoo, sel).split.val
    models = selected_models(zoo, sel, pl.field(val[0]).channel_names)
    planes = load_eval_planes(zoo, sel, pl, models.channels, gt, val)
    every = tuple(range(len(models.channels)))
    rows = method_scores(models, planes, [every], batch_size, grid, methods=("fa",))
    return {t: pool_scores(rows[("fa", every, t)]) for t in grid}


def choose_flow_threshold(zoo_dir: str | Path | Any, cell_line: str, organelle: str,
                          thresholds: Sequence[float] = FLOW_THRESHOLDS, *,
                          plate: Any = None, gt: str | None = None,
                          batch_size: int | None = None) -> Selection:
    """Choose the selection's flow threshold on the validation fields and store it.

    Parameters
    ----------
    zoo_dir : str, Path or Zoo
        A zoo with a selection for ``cell_line`` / ``organelle``.
    cell_line, organelle : str
    thresholds : sequence of float
        Candidates (Cellpose's 0.4 should be among them).
    plate : str, Path or Plate, optional
        Plate with the validation fields (default: the one recorded with the selection).
    gt : str, optional
        Ground-truth label image (default: the one recorded with the selection).
    batch_size : int, optional

    Returns
    -------
    Selection
        The stored selection, with ``flow_threshold`` and ``flow_threshold_val_f1``
        (``{threshold: validation F1}``, thresholds as text).

    Raises
    ------
    KeyError
        No selection, or no plate recorded and none given.
    """
    from ..registry import Zoo

    zoo = zoo_dir if isinstance(zoo_dir, Zoo) else Zoo(zoo_dir)
    selection = zoo.selection(cell_line, organelle)
    plate = plate if plate is not None else selection.plate
    if plate is None:
        raise KeyError(f"the selection of {cell_line}/{organelle} records no plate; pass plate=")
    scores = flow_threshold_scores(zoo, selection, plate, thresholds, gt=gt,
                                   batch_size=batch_size)
    f1 = {t: float(s["f1"]) for t, s in scores.items()}
    best = best_flow_threshold(f1)
    logger.info("flow threshold for %s/%s: %g (validation F1 %s)", cell_line, organelle, best,
                ", ".join(f"{t:g}: {v:.3f}" for t, v in f1.items()))
    chosen = replace(selection, flow_threshold=best,
                     flow_threshold_val_f1={f"{t:g}": v for t, v in f1.items()})
    return zoo.set_selection(cell_line, organelle, chosen)

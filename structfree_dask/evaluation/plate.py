"""Score label images of a plate against ground-truth label images."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import ImageInfo, check_output_file, open_labels, open_plate
from .metrics import combine, evaluate
from .tables import format_table, write_csv

__all__ = ["evaluate_plate", "write_scores", "format_scores", "score_rows"]

_COLUMNS = ("precision", "recall", "f1", "aji", "mean_matched_jaccard", "ap_50_95", "tp",
            "fp", "fn", "n_true", "n_pred")


def _plane(info: ImageInfo, data: np.ndarray, t: int) -> np.ndarray:
    idx = tuple(t if ax == "t" else 0 if ax == "c" else slice(None) for ax in info.axes)
    return np.asarray(data[idx]).astype(np.int64)


def evaluate_plate(
    plate: str, *, pred: str, gt: str, wells: Sequence[str] | None = None,
    timepoints: Sequence[int] | None = None, iou_threshold: float = 0.5,
) -> dict[str, Any]:
    """Score ``labels/<pred>`` against ``labels/<gt>`` per field and timepoint.

    Parameters
    ----------
    plate : str
    pred, gt : str
        Label image names.
    wells : sequence of str, optional
    timepoints : sequence of int, optional
    iou_threshold : float
        Matching threshold for precision, recall and F1.

    Returns
    -------
    dict
        ``{"rows": [...], "overall": {...}}``; each row has ``field``, ``t`` and the
        scores of :func:`structfree_dask.evaluation.metrics.evaluate`.

    Raises
    ------
    KeyError
        If a field lacks either label image.
    """
    rows = []
    for info in open_plate(plate).fields(list(wells) if wells is not None else None):
        p_lab, g_lab = open_labels(info, pred), open_labels(info, gt)
        if p_lab.shapes[0] != g_lab.shapes[0]:
            raise ValueError(f"{info.url}: labels/{pred} has shape {p_lab.shapes[0]} but "
                             f"labels/{gt} has {g_lab.shapes[0]}")
        p_arr, g_arr = p_lab.open_array(0, mode="r"), g_lab.open_array(0, mode="r")
        tps = range(info.n_timepoints) if timepoints is None else timepoints
        for t in tps:
            scores = evaluate(_plane(info, g_arr, t), _plane(info, p_arr, t),
                              iou_threshold=iou_threshold)
            rows.append({"field": info.path or "(image)", "t": int(t), **scores})
    if not rows:
        raise ValueError(f"nothing to evaluate in {plate}")
    return {"pred": pred, "gt": gt, "iou_threshold": iou_threshold, "rows": rows,
            "overall": combine(rows)}


def score_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per field/timepoint, then ``overall`` (its ``t`` empty), counts as integers."""
    counts = _COLUMNS[6:]
    return [{"field": r["field"], "t": r["t"],
             **{c: int(r[c]) if c in counts else float(r[c]) for c in _COLUMNS}}
            for r in [*result["rows"], {"field": "overall", "t": "", **result["overall"]}]]


def format_scores(result: dict[str, Any]) -> str:
    """Format scores as an aligned text table (one row per field/timepoint + overall)."""
    return format_table(score_rows(result), ["field", "t", *_COLUMNS])


def write_scores(result: dict[str, Any], *, json_path: str | None = None,
                 csv_path: str | None = None) -> None:
    """Write scores as JSON (everything) and/or CSV (one row per field/timepoint + overall).

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError
        A path whose folder does not exist, that is a folder, or that cannot be
        written (checked for both files before either is written).
    """
    for path, what in ((json_path, "json_path"), (csv_path, "csv_path")):
        if path:
            check_output_file(path, what)
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2))
    if csv_path:
        write_csv(score_rows(result), csv_path, ["field", "t", *_COLUMNS])

"""The one table writer: score rows as aligned text and as CSV.

Used by ``structfree-dask evaluate`` (:func:`~structfree_dask.evaluation.plate.format_scores`)
and the zoo's tables and report.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["format_cell", "format_table", "write_csv"]


def format_cell(value: Any) -> str:
    """Return a value as table text: floats to 3 decimals, NaN and None as ``-``.

    Examples
    --------
    >>> format_cell(0.12345), format_cell(None), format_cell(float("nan")), format_cell(7)
    ('0.123', '-', '-', '7')
    >>> format_cell(np.float32(0.12345)), format_cell(np.float32("nan"))
    ('0.123', '-')
    """
    if value is None or (isinstance(value, float | np.floating) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float | np.floating):
        return f"{value:.3f}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as a plain text table with aligned columns (NaN and None as ``-``).

    Examples
    --------
    >>> print(format_table([{"a": "x", "b": 0.5}, {"a": "yy", "b": None}], ["a", "b"]))
    a   b
    x   0.500
    yy  -
    """
    cells = [list(columns)] + [[format_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path,
              columns: Sequence[str] | None = None, *, digits: int | None = None) -> Path:
    """Write rows as CSV (NaN and None empty; floats rounded to ``digits``); return the path.

    Examples
    --------
    >>> import tempfile
    >>> out = write_csv([{"a": 1, "b": 0.123456}], tempfile.mkdtemp() + "/t.csv", digits=2)
    >>> out.read_text().splitlines()
    ['a,b', '1,0.12']
    """
    path = Path(path)
    columns = list(columns or (rows[0].keys() if rows else []))

    def text(value: Any) -> Any:
        if value is None or (isinstance(value, float | np.floating) and not math.isfinite(value)):
            return ""
        if isinstance(value, float | np.floating) and digits is not None:
            return round(value, digits)
        return value

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows([[text(r.get(c)) for c in columns] for r in rows])
    return path

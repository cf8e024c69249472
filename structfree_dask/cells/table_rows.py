"""A unit's measured rows, written into the field's table and the plate's dataset.

Each (field, timepoint) writes its rows twice: into the field's ngio feature table and
into the plate's Parquet dataset, whose rows begin with the plate's keys
(:data:`~.columns.PLATE_KEYS`) and end with the well's plate-map values when the plate has
a map.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..io import (
    ImageInfo,
    concurrently,
    plate_part_location,
    with_annotation,
    write_parquet,
    write_table_part,
)
from .columns import PLATE_KEYS
from .measure import empty_measurements

__all__ = ["arrow_rows", "plate_keys", "row_schemas", "well_of", "write_rows"]


@functools.lru_cache(maxsize=16)
def row_schemas(names: tuple[str, ...]) -> tuple[Any, Any]:
    """Return the Arrow schemas of a field's and the plate's table parts (cached)."""
    import pyarrow as pa

    schema = pa.Schema.from_pandas(empty_measurements(names), preserve_index=False)
    plate_schema = pa.schema(
        [pa.field(k, pa.int32() if k == "field" else pa.string()) for k in PLATE_KEYS]
        + list(schema))
    return schema, plate_schema


def arrow_rows(cols: dict[str, np.ndarray], schema: Any, keys: dict[str, Any] | None = None
                ) -> Any:
    """Arrow table of measured columns in ``schema``; ``keys`` fill the plate's key columns."""
    import pyarrow as pa

    n = len(cols["label"])
    keys = keys or {}
    return pa.Table.from_arrays(
        [pa.array(np.full(n, keys[f.name]) if f.name in keys else cols[f.name], type=f.type)
         for f in schema], schema=schema)


def well_of(annotations: dict[str, dict[str, Any]] | None, field_path: str
            ) -> dict[str, Any] | None:
    """Return the plate map's values of a field's well (None: no map, or not in it)."""
    return (annotations or {}).get(plate_keys(field_path)["well"])


def _with_plate_keys(df: Any, field_path: str) -> Any:
    keys = plate_keys(field_path)
    out = df.copy()
    for i, k in enumerate(PLATE_KEYS):
        value = keys[k]
        out.insert(i, k, np.full(len(df), value, np.int32 if k == "field" else object))
        if k != "field":
            out[k] = out[k].astype(str)
    return out


def plate_keys(field_path: str) -> dict[str, Any]:
    """Return the plate's key columns of a field (``well``, ``row``, ``column``, ``field``).

    Examples
    --------
    >>> plate_keys("B/3/1")
    {'well': 'B3', 'row': 'B', 'column': '3', 'field': 1}
    """
    parts = field_path.split("/") if field_path else ["", "", "0"]
    row, column, fld = (parts + ["", "", "0"])[:3]
    return {"well": f"{row}{column}", "row": row, "column": column, "field": int(fld)}


def write_rows(image: ImageInfo, table: str, plate_store: str, df: Any,
               annotation: dict[str, Any] | None = None, annotated: bool = False
               ) -> list[int]:
    """Write the rows of each timepoint in ``df`` over its parts (both tables).

    ``annotated``: the plate has a plate map, whose columns (the well's values,
    ``annotation``, from ``io.well_annotations``) end the plate's parts. Per timepoint
    the plate-level part is written first, then the field's part: that one is the record
    that the unit is complete. The frame is converted to Arrow once and sliced per
    timepoint; the timepoints are written at once (:func:`~structfree_dask.io.concurrently`).
    Returns the timepoints written, in order.
    """
    import pyarrow as pa

    ordered = df.sort_values("t", kind="stable").reset_index(drop=True)
    field_rows = pa.Table.from_pandas(ordered, preserve_index=False)
    plate_rows = pa.Table.from_pandas(_with_plate_keys(ordered, image.path),
                                      preserve_index=False)
    if annotated:
        plate_rows = with_annotation(plate_rows, annotation)
    ts = ordered["t"].to_numpy()

    def write(t: int) -> int:
        start, stop = np.searchsorted(ts, t), np.searchsorted(ts, t, side="right")
        location = plate_part_location(plate_store, table, image.path, t)
        write_parquet(plate_rows.slice(start, stop - start), location)
        write_table_part(image, table, t, field_rows.slice(start, stop - start))
        return t

    return concurrently(write, [int(t) for t in np.unique(ts)])  # timepoints at once

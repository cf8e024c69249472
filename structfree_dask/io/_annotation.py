"""The plate map's columns in a plate's per-cell datasets.

Once a plate holds a plate map (``<plate>/tables/plate_map``, stored by
``structfree-dask annotate``), every part of its plate-level datasets
(``<plate>/measurements/<name>/<field>-t<t>.parquet``) carries the map's columns
(:data:`~._platemap.PLATE_MAP_ANNOTATION_COLUMNS`) after its own, with its well's values:
parts written after the map was stored get them as they are written (measuring,
tracking), and storing a map rewrites the parts written before it
(:func:`annotate_plate_datasets`). A query over the dataset (pandas, polars, DuckDB) then
groups by condition without a join. A well the map does not name gets missing values.

Examples
--------
>>> import pyarrow as pa
>>> rows = pa.table({"well": ["A1", "A1"], "label": [1, 2]})
>>> values = {"condition": "DMSO", "compound": None, "dose": float("nan"),
...           "dose_unit": None, "role": "negative"}
>>> with_annotation(rows, values).column_names
['well', 'label', 'condition', 'compound', 'dose', 'dose_unit', 'role']
>>> with_annotation(rows, values).column("condition").to_pylist()
['DMSO', 'DMSO']
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from ..config import PLATE_MAP_TABLE
from ._location import join
from ._platemap import PLATE_MAP_ANNOTATION_COLUMNS
from ._tables import (
    list_plate_datasets,
    plate_dataset,
    plate_dataset_parts,
    read_arrow,
    read_plate_table,
    write_parquet,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["annotate_plate_datasets", "annotation_fields", "annotations_of",
           "well_annotations", "with_annotation"]

logger = logging.getLogger(__name__)

#: A part of a plate-level dataset: ``<row>-<column>-<field>-t<t>.parquet``.
_PART = re.compile(r"^[^.].*-t\d{5}\.parquet$")

#: A well's values: {column: value} for the columns of the plate map.
Annotation = dict[str, Any]


def annotation_fields() -> list[pa.Field]:
    """Return the Arrow fields of the plate map's columns in a dataset's parts, in order."""
    import pyarrow as pa

    return [pa.field(c, pa.float64() if c == "dose" else pa.string())
            for c in PLATE_MAP_ANNOTATION_COLUMNS]


def well_annotations(plate_store: str) -> dict[str, Annotation] | None:
    """Return the stored plate map as ``{well: {column: value}}`` (None: the plate has none)."""
    pm = read_plate_table(plate_store, PLATE_MAP_TABLE)
    return None if pm is None else annotations_of(pm)


def annotations_of(plate_map: pd.DataFrame) -> dict[str, Annotation]:
    """Return a plate map's rows as ``{well: {column: value}}`` (missing: None, dose NaN)."""
    import math

    pm = plate_map.reset_index(drop=plate_map.index.name is None)
    out: dict[str, Annotation] = {}
    for rec in pm.to_dict("records"):
        values: Annotation = {}
        for c in PLATE_MAP_ANNOTATION_COLUMNS:
            v = rec.get(c)
            if c == "dose":
                values[c] = float(v) if v is not None and v == v else math.nan
            else:
                values[c] = None if v is None or (isinstance(v, float) and v != v) else str(v)
        out[str(rec["well"])] = values
    return out


def with_annotation(rows: pa.Table, values: Annotation | None) -> pa.Table:
    """Return ``rows`` with the plate map's columns set to a well's ``values``.

    Columns already there are replaced; ``None``: missing values (a well the map does
    not name).
    """
    import pyarrow as pa

    keep = [c for c in rows.column_names if c not in PLATE_MAP_ANNOTATION_COLUMNS]
    out = rows.select(keep)
    n = out.num_rows
    for f in annotation_fields():
        value = None if values is None else values.get(f.name)
        if f.name == "dose" and value is None:
            value = float("nan")
        out = out.append_column(f, pa.array([value] * n, type=f.type))
    return out


def annotate_plate_datasets(plate_store: str, annotations: dict[str, Annotation]) -> int:
    """Rewrite the parts of every plate-level dataset of a plate with the map's columns.

    Parts are rewritten one by one, each in one piece (:func:`~._tables.write_parquet`);
    a part without a ``well`` column is left alone. Returns the number of parts rewritten.
    """
    done = 0
    for name in list_plate_datasets(plate_store):
        for part in plate_dataset_parts(plate_store, name):
            if not _PART.match(part):
                continue
            location = join(plate_dataset(plate_store, name), part)
            rows = read_arrow(location)
            if "well" not in rows.column_names:
                continue
            wells = set(rows.column("well").to_pylist())
            well = next(iter(wells)) if len(wells) == 1 else None
            write_parquet(with_annotation(rows, annotations.get(well) if well else None),
                          location)
            done += 1
    logger.info("plate map's columns written into %d part(s) of the datasets of %s", done,
                plate_store)
    return done

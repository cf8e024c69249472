"""The plate map: the condition, compound, dose and role of every well of a plate.

A plate map is a CSV file with one row per well of the plate::

    well,condition,compound,dose,dose_unit,role
    A1,DMSO,,,,negative
    A2,staurosporine 1 uM,staurosporine,1,uM,positive
    A3,drug-X 0.1 uM,drug-X,0.1,uM,sample

``well`` and ``condition`` are required; ``compound``, ``dose`` (a number >= 0, blank for
none), ``dose_unit`` and ``role`` (``negative``, ``positive`` or ``sample``; blank:
``sample``) are optional columns. Wells are written ``A1``, ``A01`` or ``A/1``. Every
well of the plate has exactly one row (mark empty wells with a condition of their own);
a condition is one treatment (its wells agree on compound, dose, unit and role); a
compound's doses are in one unit; a dose needs its compound.

:func:`parse_plate_map` checks a map against the plate's wells (pure: a DataFrame in,
a DataFrame out; it and :func:`read_plate_map_csv` are :mod:`structfree_dask.io`'s, where
the simulator reads plate maps too, re-exported here); :func:`annotate_plate` stores it in
the plate as the ngio condition table ``<plate>/tables/plate_map`` (ngio:
``open_ome_zarr_plate(p).get_condition_table("plate_map")``), :func:`load_plate_map` reads
it back and :func:`read_annotated_dataset` reads a plate-level dataset with the plate map's
columns joined on ``well``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import PLATE_MAP_TABLE, SCREEN_ROLES
from ..io import (
    PLATE_MAP_ANNOTATION_COLUMNS,
    PLATE_MAP_COLUMNS,
    PLATE_MAP_STORED_COLUMNS,
    TABLES_GROUP,
    PlateMapError,
    TableExistsError,
    annotate_plate_datasets,
    annotations_of,
    basename,
    condition_table_meta,
    join,
    open_plate,
    parse_plate_map,
    plate_table_attrs,
    read_plate_dataset,
    read_plate_map_csv,
    read_plate_table,
    write_plate_table,
)

__all__ = ["ANNOTATION_COLUMNS", "PLATE_MAP_COLUMNS", "Annotation", "PlateMapError",
           "annotate_plate", "check_plate_map", "join_plate_map", "load_plate_map",
           "parse_plate_map", "plate_map_digest", "read_annotated_dataset",
           "read_plate_map_csv"]

logger = logging.getLogger(__name__)

#: Columns the plate map adds to per-cell and per-well rows (joined on ``well``).
ANNOTATION_COLUMNS = PLATE_MAP_ANNOTATION_COLUMNS
_STORED = PLATE_MAP_STORED_COLUMNS
_RECORD = "structfree_dask"


def plate_map_digest(pm: pd.DataFrame) -> str:
    """SHA-256 of a parsed plate map's content (not of its file's layout).

    Examples
    --------
    >>> a = pd.DataFrame({"well": ["A1"], "condition": ["x"]})
    >>> plate_map_digest(a) == plate_map_digest(a.copy())
    True
    """
    text = pm.reindex(columns=[c for c in _STORED if c in pm.columns]).to_csv(
        index=False, lineterminator="\n", float_format="%.17g")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Annotation:
    """A plate map checked against a plate (:func:`check_plate_map`, :func:`annotate_plate`).

    Attributes
    ----------
    location : str
        The condition table (``<plate>/tables/plate_map``).
    plate_map : pandas.DataFrame
        The parsed map.
    changed : bool
        Whether the plate did not hold this very map (storing it writes; False: the
        plate holds it already and nothing is written).
    """

    location: str
    plate_map: pd.DataFrame
    changed: bool

    def summary(self) -> str:
        """Return one line: wells, conditions, compounds and roles."""
        pm = self.plate_map
        roles = pm["role"].value_counts()
        return (f"{len(pm)} wells, {pm['condition'].nunique()} condition(s), "
                f"{pm['compound'].nunique()} compound(s); roles: "
                + ", ".join(f"{int(roles.get(r, 0))} {r}" for r in SCREEN_ROLES))


def check_plate_map(plate: str, csv: str | Path, *, overwrite: bool = False) -> Annotation:
    """Check a plate map CSV against the plate, and that it may be stored (nothing written).

    Raises
    ------
    FileNotFoundError
        No such CSV file, or no such plate.
    PlateMapError
        What :func:`parse_plate_map` and :func:`read_plate_map_csv` refuse.
    structfree_dask.io.TableExistsError
        The plate has another plate map and ``overwrite`` is False.
    """
    opened = open_plate(plate)
    pm = parse_plate_map(read_plate_map_csv(csv), opened.wells, source=str(csv))
    location = join(opened.store, TABLES_GROUP, PLATE_MAP_TABLE)
    attrs = plate_table_attrs(opened.store, PLATE_MAP_TABLE)
    if attrs is None:
        return Annotation(location, pm, True)
    record = attrs.get(_RECORD) if isinstance(attrs.get(_RECORD), dict) else {}
    if record.get("sha256") == plate_map_digest(pm):
        return Annotation(location, pm, False)
    if not overwrite:
        raise TableExistsError(
            f"{opened.store} already has another plate map (tables/{PLATE_MAP_TABLE}, from "
            f"{record.get('source', 'elsewhere')}); pass overwrite=True (--overwrite) to "
            "replace it")
    return Annotation(location, pm, True)


def annotate_plate(plate: str, csv: str | Path, *, overwrite: bool = False) -> Annotation:
    """Check a plate map against the plate, then store it as the plate's condition table.

    ``<plate>/tables/plate_map``: an ngio ``condition_table`` (``index_key: well``) whose
    rows are in ``table.parquet`` (columns of :func:`parse_plate_map`). Storing the same
    map again writes nothing; another map replaces it only with ``overwrite``. The parts
    of the plate's per-cell datasets written before are then rewritten with the map's
    columns (:func:`structfree_dask.io.annotate_plate_datasets`); those written after get
    them as they are written.

    Parameters
    ----------
    plate : str
        The OME-Zarr plate (a path or a URL).
    csv : str or Path
        The plate map CSV (see the module's documentation).
    overwrite : bool
        Replace a different plate map.

    Returns
    -------
    Annotation

    Raises
    ------
    PlateMapError
        A plate map with mistakes (nothing is written).
    structfree_dask.io.TableExistsError
        The plate has another plate map and ``overwrite`` is False.
    """
    import pyarrow as pa

    checked = check_plate_map(plate, csv, overwrite=overwrite)
    if not checked.changed:
        logger.info("%s already holds this plate map; nothing written", checked.location)
        return checked
    pm = checked.plate_map
    record = {"kind": "plate_map", "source": basename(str(csv)),
              "sha256": plate_map_digest(pm), "columns": list(_STORED)}
    store = open_plate(plate).store
    write_plate_table(store, PLATE_MAP_TABLE, pa.Table.from_pandas(pm, preserve_index=False),
                      {**condition_table_meta("well"), _RECORD: record}, overwrite=True)
    logger.info("plate map %s stored in %s", csv, checked.location)
    annotate_plate_datasets(store, annotations_of(pm))
    return checked


def load_plate_map(plate: str) -> pd.DataFrame | None:
    """Read the plate map stored in a plate (None when it has none).

    Raises
    ------
    ValueError
        If ``tables/plate_map`` is not a plate map (a column is missing).
    """
    pm = read_plate_table(str(plate), PLATE_MAP_TABLE)
    if pm is None:
        return None
    missing = [c for c in _STORED if c not in pm.columns]
    if missing:
        raise ValueError(f"tables/{PLATE_MAP_TABLE} of {plate} is not a plate map: it has no "
                         f"column(s) {', '.join(missing)}; store one with structfree-dask "
                         "annotate")
    pm = pm.reset_index(drop=True) if pm.index.name is None else pm.reset_index()
    return pm[list(_STORED)].astype({"dose": float}).reset_index(drop=True)


def join_plate_map(df: pd.DataFrame, plate_map: pd.DataFrame) -> pd.DataFrame:
    """Add the plate map's columns to rows that have a ``well`` column (joined on it).

    Columns the rows already have are kept as they are; rows of wells the map does not
    name get missing values.

    Examples
    --------
    >>> pm = pd.DataFrame({"well": ["A1"], "condition": ["DMSO"], "compound": [None],
    ...                    "dose": [float("nan")], "dose_unit": [None], "role": ["negative"]})
    >>> join_plate_map(pd.DataFrame({"well": ["A1", "A1"], "label": [1, 2]}), pm)
      well  label condition compound  dose dose_unit      role
    0   A1      1      DMSO     None   NaN      None  negative
    1   A1      2      DMSO     None   NaN      None  negative
    """
    add = [c for c in ANNOTATION_COLUMNS if c in plate_map.columns and c not in df.columns]
    if not add:
        return df.copy()
    right = plate_map[["well", *add]].astype({"well": str})
    return df.merge(right, on="well", how="left", validate="many_to_one")


def read_annotated_dataset(plate: str, table: str) -> pd.DataFrame:
    """Read a plate-level dataset with the plate map's columns joined on ``well``.

    The per-cell rows of ``<plate>/measurements/<table>`` with ``condition``,
    ``compound``, ``dose``, ``dose_unit`` and ``role``.

    Raises
    ------
    KeyError
        If the plate has no plate map (store one with :func:`annotate_plate`).
    """
    pm = load_plate_map(plate)
    if pm is None:
        raise KeyError(f"{plate} has no plate map (tables/{PLATE_MAP_TABLE}); store one with "
                       "structfree-dask annotate PLATE --plate-map CSV")
    return join_plate_map(read_plate_dataset(str(plate), table), pm)

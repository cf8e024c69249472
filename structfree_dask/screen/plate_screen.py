"""The screen tables of a measured, annotated plate, computed on a Dask cluster.

One task per well reads the well's parts of the plate-level dataset
(``<plate>/measurements/<table>``, one per field and timepoint; only the readout
columns) and returns its per-timepoint statistics (:func:`.tables.well_stats`): the
per-cell rows never leave the workers. The driver joins the plate map
(:mod:`.platemap`) to these well rows; one task per compound fits its dose-response
curves (:func:`.tables.dose_response`), and the driver computes the two small tables
left (:func:`.tables.condition_stats`, :func:`.tables.z_prime`).

Everything is checked before a task runs (the plate map, the dataset, the readouts);
nothing is written unless every well's task succeeded. The tables are written beside the
dataset, in ``<plate>/measurements/<table>__screen/``:

``wells.parquet``, ``conditions.parquet``, ``zprime.parquet``, ``dose_response.parquet``
    The tables (columns in :mod:`.tables`; ``wells`` also has the plate map's columns),
    for pandas, polars, DuckDB and the plate view.
``screen.json``
    What they were computed from: the table, the readouts, the plate map's SHA-256, rows
    per table, the software; written last.

They are computed again (and replaced) at every run: they follow the dataset and the
plate map.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from ..cells.columns import ratio_column
from ..cells.plate_measure import measured_without_nuclei
from ..cells.report import ratio_channels
from ..config import screen_folder
from ..io import (
    MEASUREMENTS_FOLDER,
    checked_tree,
    exists,
    join,
    list_cell_datasets,
    open_plate,
    parquet_schema,
    plate_dataset,
    plate_dataset_parts,
    plate_part_name,
    read_parquet,
    write_parquet,
    write_text,
)
from .platemap import ANNOTATION_COLUMNS, load_plate_map, plate_map_digest
from .tables import condition_stats, dose_response, well_stats, z_prime

__all__ = ["SCREEN_TABLES", "ScreenPlan", "ScreenResult", "check_screen", "read_screen_tables",
           "screen_location", "screen_plate"]

logger = logging.getLogger(__name__)

#: The screen tables: name -> file in the screen folder.
SCREEN_TABLES = {"wells": "wells.parquet", "conditions": "conditions.parquet",
                 "zprime": "zprime.parquet", "dose_response": "dose_response.parquet"}
_RECORD = "screen.json"
_PART = re.compile(r"t([0-9]+)\.parquet$")  # the end of plate_part_name(field, t)


@dataclass(frozen=True)
class _WellUnit:
    """One well's task: its parts (location, timepoint) and the columns to summarize."""

    well: str
    row: str
    column: str
    parts: tuple[tuple[str, int], ...]
    readouts: tuple[str, ...]


def _well_task(unit: _WellUnit) -> pd.DataFrame:
    """Read a well's parts (the readout columns only) and summarize them (worker side)."""
    columns = ["well", "row", "column", "t", *unit.readouts]
    frames = [read_parquet(location, columns=columns) for location, _ in unit.parts]
    cells = pd.concat(frames, ignore_index=True)
    keys = pd.DataFrame({"well": unit.well, "row": unit.row, "column": unit.column,
                         "t": sorted({t for _, t in unit.parts})})
    return well_stats(cells, list(unit.readouts), keys)


def _compound_task(wells: pd.DataFrame) -> pd.DataFrame:
    """Fit one compound's dose-response curves, every timepoint and readout (worker side)."""
    return dose_response(wells)


def _run_tasks(client: Any, fn: Callable[[Any], pd.DataFrame], items: list[Any],
               names: list[str], stage: str, plate: str,
               progress: Callable[[int, int], None] | None = None) -> list[pd.DataFrame]:
    """Return each item's table, in the items' order; raise if a task failed.

    ``names`` name the items in messages; every task's Dask key starts with ``stage``.
    """
    from ..runtime.cluster import stream_outcomes

    positions = {id(item): i for i, item in enumerate(items)}
    found: dict[int, pd.DataFrame] = {}
    failed: list[str] = []
    with closing(stream_outcomes(client, fn, items, key=lambda _: stage)) as outcomes:
        for n, (item, (value, error)) in enumerate(outcomes, 1):
            i = positions[id(item)]
            if error is not None:
                failed.append(f"{names[i]}: {error}")
                logger.error("screen tables: %s failed: %s", names[i], error)
            else:
                found[i] = value
            if progress is not None:
                progress(n, len(items))
    if failed:
        raise RuntimeError(f"screen tables of {plate} not written: {len(failed)} task(s) "
                           f"failed: {'; '.join(failed[:5])}")
    return [found[i] for i in range(len(items))]


def screen_location(plate: str, table: str) -> str:
    """Return the folder of a table's screen tables: ``<plate>/measurements/<table>__screen``."""
    return plate_dataset(str(plate), screen_folder(table))


@dataclass(frozen=True)
class ScreenPlan:
    """A checked screen request (:func:`check_screen`): what each well's task reads."""

    plate: str
    store: str
    table: str
    readouts: tuple[str, ...]
    plate_map: pd.DataFrame
    units: tuple[_WellUnit, ...]
    location: str


@dataclass
class ScreenResult:
    """What :func:`screen_plate` wrote.

    Attributes
    ----------
    location : str
        The screen folder.
    tables : dict
        Table name -> its Parquet file.
    readouts : tuple of str
        The columns summarized.
    wells, timepoints : int
        Wells summarized, and timepoints (over all wells).
    zprime : pandas.DataFrame
        The Z' table (also written).
    failed_fits : int
        Dose-response rows whose fit failed (``fit_error``).
    seconds : float
    """

    location: str
    tables: dict[str, str]
    readouts: tuple[str, ...]
    wells: int
    timepoints: int
    zprime: pd.DataFrame
    failed_fits: int
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)


def _ratio_columns(columns: Sequence[str]) -> dict[str, str]:
    """Return the nucleus/cytoplasm ratio column of each channel of a table that has one."""
    return {c: ratio_column(c) for c in ratio_channels(pd.DataFrame(columns=list(columns)))}


def _resolve_readouts(readouts: Sequence[int | str] | None, columns: list[str],
                      channels: Sequence[str], source: str) -> tuple[str, ...]:
    """Return the columns of the readouts: a channel's ratio, or a column itself."""
    with_ratio = _ratio_columns(columns)
    if readouts is None:
        if not with_ratio:
            raise ValueError(f"{source} has no nucleus/cytoplasm ratio column; name the "
                             "readouts (--readouts COLUMN,...)")
        return tuple(with_ratio.values())
    out = []
    for r in readouts:
        if isinstance(r, int) and not isinstance(r, bool):
            if not 0 <= r < len(channels):
                raise ValueError(f"readout {r}: expected a channel index below "
                                 f"{len(channels)} ({', '.join(channels)}); got {r}")
            r = channels[r]
        if r in columns and r not in ("well", "row", "column", "field", "t", "label"):
            out.append(r)
        elif ratio_column(str(r)) in columns:
            out.append(ratio_column(str(r)))
        else:
            raise ValueError(f"readout {r!r}: expected a channel with a nucleus/cytoplasm "
                             f"ratio ({', '.join(with_ratio) or 'none'}) or a column of "
                             f"{source}; found neither")
    twice = sorted({c for c in out if out.count(c) > 1})
    if twice:
        raise ValueError(f"readouts name {', '.join(twice)} more than once")
    return tuple(out)


def check_screen(plate: str, table: str, *, readouts: Sequence[int | str] | None = None
                 ) -> ScreenPlan:
    """Check a screen request without writing anything; return its plan.

    Parameters
    ----------
    plate : str
        The OME-Zarr plate (a path or a URL), annotated (:func:`.platemap.annotate_plate`)
        and measured (``<plate>/measurements/<table>``).
    table : str
        The measurement table.
    readouts : sequence of int or str, optional
        Channels (index or name) whose nucleus / cytoplasm ratio is summarized, or columns
        of the table (default: every channel's ratio).

    Raises
    ------
    KeyError
        The plate has no plate map.
    FileNotFoundError
        The plate, or its dataset ``measurements/<table>``, does not exist.
    ValueError
        Unknown readouts, a readout column that is not numeric, no measured well.
    UnsafePathError
        A symbolic link on the way to, or inside, the screen folder.
    """
    opened = open_plate(plate)
    pm = load_plate_map(opened.store)
    if pm is None:
        raise KeyError(f"{plate} has no plate map (tables/plate_map); store one first with "
                       "structfree-dask annotate PLATE --plate-map CSV")
    dataset = plate_dataset(opened.store, table)
    parts = plate_dataset_parts(opened.store, table)
    if not parts:
        tables = list_cell_datasets(opened.store)
        has = (f"it has: {', '.join(tables)}" if tables else
               "it has none: measure the plate first (structfree-dask measure)")
        raise FileNotFoundError(f"{plate} has no measurements/{table} (or no part in it); "
                                f"{has}")
    schema = parquet_schema(join(dataset, parts[0]))  # the footer: no cell is read here
    channels = opened.field(opened.field_paths[0]).channel_names
    source = f"measurements/{table}"
    columns = _resolve_readouts(readouts, list(schema.names), channels, source)
    for c in columns:
        kind = schema.field(c).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise ValueError(f"readout {c!r} of {source} is not numeric ({kind})")
    ratios = [c for c in columns if c in _ratio_columns(schema.names).values()]
    if ratios and measured_without_nuclei(opened, table):
        raise ValueError(f"{source} was measured without nuclei: its nucleus/cytoplasm "
                         f"ratios ({', '.join(ratios)}) are empty; measure it with --nuclei, "
                         "or name whole-cell columns (--readouts area_um2,<channel>__cell_mean)")
    fields = {plate_part_name(p, 0)[: -len("t00000.parquet")]: p for p in opened.field_paths}
    by_well: dict[str, list[tuple[str, int]]] = {}
    for part in parts:
        m = _PART.search(part)
        path = fields.get(part[: m.start()]) if m else None
        if path is not None:
            by_well.setdefault("/".join(path.split("/")[:2]), []).append(
                (join(dataset, part), int(m[1])))
    units = []
    for well in opened.wells:
        if well in by_well:
            row, column = well.split("/")
            units.append(_WellUnit(f"{row}{column}", row, column, tuple(by_well[well]),
                                   columns))
    if not units:
        raise ValueError(f"{source} of {plate} has no part of any well of the plate")
    location = screen_location(opened.store, table)
    checked_tree(opened.store, f"{MEASUREMENTS_FOLDER}/{screen_folder(table)}")
    return ScreenPlan(str(plate), opened.store, table, columns, pm, tuple(units), location)


def _ordered(df: pd.DataFrame, orders: dict[str, dict[Any, int]], by: list[str]
             ) -> pd.DataFrame:
    """Sort by columns, those in ``orders`` by their given order (wells, readouts)."""
    return df.sort_values(by, key=lambda s: s.map(orders[s.name]) if s.name in orders else s,
                          kind="stable").reset_index(drop=True)


def screen_plate(plate: str, table: str, *, readouts: Sequence[int | str] | None = None,
                 client: Any = None, progress: Callable[[int, int], None] | None = None,
                 plan: ScreenPlan | None = None) -> ScreenResult:
    """Compute a plate's screen tables on a cluster and write them beside its dataset.

    Parameters
    ----------
    plate, table, readouts
        As for :func:`check_screen`.
    client : distributed.Client, optional
        Where the tasks run (default: a local cluster for this call): one per well (its
        statistics), then one per compound (its fits).
    progress : callable, optional
        ``progress(done, total)`` after each well.
    plan : ScreenPlan, optional
        What :func:`check_screen` returned for this request (the plate is not read again).

    Returns
    -------
    ScreenResult

    Raises
    ------
    RuntimeError
        A task failed (nothing is written).
    KeyError, FileNotFoundError, ValueError
        As :func:`check_screen` (nothing is written).
    """
    from .._provenance import software_versions
    from ..runtime.cluster import close_client, local_client

    started = time.time()
    if plan is None:
        plan = check_screen(plate, table, readouts=readouts)
    pm = plan.plate_map
    orders = {"well": {w: i for i, w in enumerate(pm["well"])},
              "readout": {r: i for i, r in enumerate(plan.readouts)}}
    own = client is None
    if own:
        client = local_client()
    try:
        frames = _run_tasks(client, _well_task, list(plan.units),
                            [f"well {u.well}" for u in plan.units], "screen-well", plan.plate,
                            progress)
        wells = pd.concat(frames, ignore_index=True).merge(
            pm[["well", *ANNOTATION_COLUMNS]], on="well", how="left", validate="many_to_one")
        wells = _ordered(wells, orders, ["well", "t", "readout"])
        dosed = wells[wells["compound"].notna() & wells["dose"].notna()
                      & (wells["role"] == "sample")]  # controls are not fitted
        groups = [g for _, g in dosed.groupby("compound", sort=False)]
        fits = _run_tasks(client, _compound_task, groups,
                          [f"compound {g['compound'].iloc[0]!r}" for g in groups],
                          "screen-fit", plan.plate)
    finally:
        if own:
            close_client(client)
    fits = [f for f in fits if len(f)]  # (an empty frame would make every column object)
    fitted = pd.concat(fits, ignore_index=True) if fits else dose_response(dosed)
    tables = {"wells": wells, "conditions": condition_stats(wells),
              "zprime": _ordered(z_prime(wells), orders, ["t", "readout"]),
              "dose_response": fitted}
    written = {}
    for name, df in tables.items():
        location = join(plan.location, SCREEN_TABLES[name])
        write_parquet(pa.Table.from_pandas(df, preserve_index=False), location)
        written[name] = location
    rows = {name: len(df) for name, df in tables.items()}
    record = {"table": plan.table, "readouts": list(plan.readouts),
              "plate_map_sha256": plate_map_digest(pm), "files": dict(SCREEN_TABLES),
              "rows": rows, "wells": len(plan.units),
              "statistics": {
                  "wells": "per well, timepoint and readout: the cells' finite values",
                  "conditions": "the wells' medians of each condition",
                  "zprime": "1 - 3 (sd_pos + sd_neg) / |mean_pos - mean_neg| of the control "
                            "wells' medians (ddof 1)",
                  "dose_response": "4PL on log10 dose of the wells' medians, scipy "
                                   "curve_fit, 95% CI from the covariance (t, n - 4)"},
              "software": software_versions()}
    write_text(join(plan.location, _RECORD), json.dumps(record, indent=2, default=str))
    failed_fits = int(tables["dose_response"]["fit_error"].notna().sum())
    logger.info("screen tables of %s written to %s", plan.plate, plan.location)
    return ScreenResult(plan.location, written, plan.readouts, len(plan.units),
                        int(wells["t"].nunique()), tables["zprime"], failed_fits,
                        round(time.time() - started, 3), rows)


def read_screen_tables(plate: str, table: str) -> dict[str, pd.DataFrame]:
    """Read a plate's screen tables of a measurement table (name -> DataFrame).

    Raises
    ------
    FileNotFoundError
        If they were not computed (:func:`screen_plate`).
    """
    location = screen_location(plate, table)
    if not exists(join(location, _RECORD)):
        raise FileNotFoundError(f"{plate} has no screen tables of {table} ({location}); "
                                "compute them with structfree-dask screen")
    return {name: read_parquet(join(location, f)) for name, f in SCREEN_TABLES.items()}

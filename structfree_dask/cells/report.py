"""An offline HTML view of a plate's per-cell measurements.

:func:`write_report` reads a plate-level dataset (``<plate>/measurements/<table>``) and
writes one local folder (never into the plate, which may be at a URL):

``report.html``
    The page. Figures are PNG files next to it, linked by relative paths: the folder
    opens offline as it is (no script, no network) and can be zipped or copied whole.
``cells_per_well.png``, ``cells_per_well_t.png``
    Cells per well as plate maps at up to 8 timepoints, and as a well x timepoint matrix.
``readout.png``, ``readout_median.png``
    The nucleus / cytoplasm ratio of the readout channel per well over time (median and
    interquartile band, in plate layout), and its median as a well x timepoint matrix.
``thumb-<field>.png``
    First and last timepoint of a field, contrast-stretched, with the outlines of the
    cells and (where linking wrote them, ``<cells>_nuclei``) of their nuclei.
``well-<row>-<column>.html``, ``well-<row>-<column>.png``
    A page per well, linked from ``report.html`` (at most :data:`WELL_PAGES` by default:
    the first wells in plate order beyond it): the readout over time, one line per
    track where the table is tracked (else its distribution per timepoint), the well's
    cells over time and the thumbnails of up to 4 of its fields.
``cells_per_well.csv``, ``readout_per_well.csv``
    The numbers behind the figures (:func:`cells_per_well`, :func:`readout_per_well`).
``screen-*``
    The files of sections added by another layer (``addons``, :class:`ReportAddon`: the
    screen's plate view, :mod:`structfree_dask.screen.view`).

The quality checks kept with the table (:func:`quality_rows`, per field and timepoint)
are shown per well too: a flagged well is marked in the plate layout and its page lists
its fields' checks.

Counts are rows of the table, i.e. cell observations summed over fields (per well)
and timepoints (in the totals). Time axes are in hours where the first field's metadata
give the time step (:func:`time_step_h`), else in timepoints. Figures use matplotlib's
Agg canvas (no pyplot, no global backend change).
"""

from __future__ import annotations

import html
import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ..config import DEFAULT_WELL_PAGES, linked_names
from ..io import (
    MEASUREMENTS_FOLDER,
    Plate,
    basename,
    check_output_folder,
    exists,
    is_url,
    list_cell_datasets,
    list_tables,
    open_plate,
    plate_dataset,
    prune,
    read_plate_dataset,
    redact,
    replacing,
    table_attrs,
)
from ._report_figures import (
    RATIO,
    plate_maps,
    readout_plate,
    spread,
    thumbnail,
    well_matrix,
    well_over_time,
)
from .columns import ratio_column
from .plate_measure import measured_without_nuclei, without_nuclei

__all__ = ["REPORT_PAGE", "WELL_PAGES", "ReportAddon", "ReportContext", "cells_per_well",
           "default_report_dir", "flagged_counts", "quality_rows", "ratio_channels",
           "readout_per_well", "time_step_h", "well_flags", "well_page_name", "write_report",
           "written_by_report"]

logger = logging.getLogger(__name__)

#: File name of the page in the report folder.
REPORT_PAGE = "report.html"
#: Most well pages a report writes by default (the first wells in plate order beyond it).
WELL_PAGES = DEFAULT_WELL_PAGES
_FIELDS_PER_WELL = 4  # thumbnails on a well's page (spread over its fields)
#: Hours in one unit of a ``t`` axis (OME-NGFF units are UDUNITS-2 names).
_HOURS = {"hour": 1.0, "h": 1.0, "minute": 1 / 60, "min": 1 / 60, "second": 1 / 3600,
          "s": 1 / 3600, "millisecond": 1 / 3.6e6, "ms": 1 / 3.6e6, "day": 24.0, "d": 24.0}
_WELL = ["well", "row", "column"]
_RATIO_SUFFIX = ratio_column("")
_OUTPUTS = ("cells_per_well.png", "cells_per_well_t.png", "cells_per_well.csv", "readout.png",
            "readout_median.png", "readout_per_well.csv", "quality.csv")
_GLOBS = ("thumb-*.png", "well-*.html", "well-*.png", "screen-*")  # per field, well, add-on
_NO_NUCLEUS = "cells without nucleus (n_nuclei = 0)"
#: Notes of a table measured without nuclei (``measure`` without ``--nuclei``).
_NO_READOUT = ("The table was measured without nuclei: no cell has a nucleus / cytoplasm "
               "ratio (measure with --nuclei for the readout).")
_NO_NUCLEI_FLAGS = "Measured without nuclei: no cell is flagged for its nuclei."
#: The metric and flag of cells without a nucleus (:mod:`.quality`).
_NO_NUCLEUS_METRIC = "cells_without_nucleus"
_MANY_NUCLEI = "cells with several nuclei (n_nuclei >= 2)"


# ----------------------------------------------------------------------------- tables (pure)


def _column_key(column: str) -> tuple[int, Any]:
    return (0, int(column)) if str(column).isdigit() else (1, str(column))


def _order(wells: pd.DataFrame) -> pd.DataFrame:
    keys = wells.apply(lambda r: (len(r["row"]), r["row"], _column_key(r["column"])), axis=1)
    return wells.iloc[sorted(range(len(wells)), key=lambda i: keys.iloc[i])]


def _wells(df: pd.DataFrame) -> pd.DataFrame:
    wells = df[_WELL].drop_duplicates().astype(str)
    return _order(wells).reset_index(drop=True) if len(wells) else wells


def cells_per_well(df: pd.DataFrame) -> pd.DataFrame:
    """Count the cells of each well at each timepoint of a plate-level table.

    Parameters
    ----------
    df : pandas.DataFrame
        Rows of a plate-level dataset (``well``, ``row``, ``column``, ``t``, ...).

    Returns
    -------
    pandas.DataFrame
        ``well``, ``row``, ``column``, ``t``, ``n_cells``: every well of the table at
        every timepoint of it (0 where a well has no cell), in plate order.

    Examples
    --------
    >>> df = pd.DataFrame({"well": ["A1", "A1", "A2"], "row": "A",
    ...                    "column": ["1", "1", "2"], "t": [0, 1, 0], "label": [1, 1, 4]})
    >>> cells_per_well(df)
      well row column  t  n_cells
    0   A1   A      1  0        1
    1   A1   A      1  1        1
    2   A2   A      2  0        1
    3   A2   A      2  1        0
    """
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in _WELL}
                            | {"t": pd.Series(dtype="int64"), "n_cells": pd.Series(dtype="int64")})
    ts = pd.DataFrame({"t": np.sort(df["t"].astype("int64").unique())})
    grid = _wells(df).merge(ts, how="cross")
    counts = df.astype({"well": str}).groupby(["well", "t"]).size()
    index = pd.MultiIndex.from_frame(grid[["well", "t"]])
    grid["n_cells"] = counts.reindex(index, fill_value=0).to_numpy().astype("int64")
    return grid


def readout_per_well(df: pd.DataFrame, channel: str) -> pd.DataFrame:
    """Median and interquartile range of a channel's nucleus / cytoplasm ratio per well and t.

    Parameters
    ----------
    df : pandas.DataFrame
        Rows of a plate-level dataset with the column ``ratio_column(channel)``.
    channel : str

    Returns
    -------
    pandas.DataFrame
        The rows of :func:`cells_per_well` (without ``n_cells``) with ``n`` (cells with a
        finite ratio), ``median``, ``q25`` and ``q75`` (NaN where ``n`` is 0: no cell,
        or cells without cytoplasm).

    Raises
    ------
    ValueError
        If the table has no ratio column for the channel.

    Examples
    --------
    >>> df = pd.DataFrame({"well": ["A1", "A1", "A1", "A2"], "row": "A",
    ...                    "column": ["1", "1", "1", "2"], "t": 0, "label": [1, 2, 3, 1],
    ...                    ratio_column("GFP"): [1.0, 2.0, 3.0, float("nan")]})
    >>> readout_per_well(df, "GFP")
      well row column  t  n  median  q25  q75
    0   A1   A      1  0  3     2.0  1.5  2.5
    1   A2   A      2  0  0     NaN  NaN  NaN
    """
    column = ratio_column(channel)
    if column not in df.columns:
        raise ValueError(f"the table has no column {column!r} (channel {channel!r}); "
                         f"channels with a ratio: {', '.join(ratio_channels(df)) or 'none'}")
    out = cells_per_well(df).drop(columns="n_cells")
    values = df.assign(value=df[column].astype(float).replace([np.inf, -np.inf], np.nan))
    groups = values.astype({"well": str}).groupby(["well", "t"])["value"]
    stats = pd.DataFrame({"n": groups.count(), "median": groups.median(),
                          "q25": groups.quantile(0.25), "q75": groups.quantile(0.75)})
    index = pd.MultiIndex.from_frame(out[["well", "t"]])
    stats = stats.reindex(index)
    for name in stats.columns:
        out[name] = stats[name].to_numpy()
    out["n"] = out["n"].fillna(0).astype("int64")
    return out


def ratio_channels(df: pd.DataFrame) -> list[str]:
    """Channels that have a nucleus / cytoplasm ratio column in a table, in column order.

    Examples
    --------
    >>> ratio_channels(pd.DataFrame(columns=["label", ratio_column("ER")]))
    ['ER']
    """
    return [str(c)[: -len(_RATIO_SUFFIX)] for c in df.columns
            if str(c).endswith(_RATIO_SUFFIX) and len(str(c)) > len(_RATIO_SUFFIX)]


def flagged_counts(df: pd.DataFrame, extra: Mapping[str, int] | None = None) -> dict[str, int]:
    """Count the flagged objects of a table (cells without / with several nuclei).

    Parameters
    ----------
    df : pandas.DataFrame
        Rows of a plate-level dataset (its ``n_nuclei`` column).
    extra : mapping of str to int, optional
        Counts the caller has (e.g. nuclei outside any cell), appended as they are.

    Returns
    -------
    dict
        ``cells`` (rows), the two flagged kinds, then ``extra``.

    Examples
    --------
    >>> flagged_counts(pd.DataFrame({"n_nuclei": [0, 1, 2, 3]}), {"orphan nuclei": 5})
    {'cells': 4, 'cells without nucleus (n_nuclei = 0)': 1, \
'cells with several nuclei (n_nuclei >= 2)': 2, 'orphan nuclei': 5}
    """
    n = df["n_nuclei"] if "n_nuclei" in df.columns else pd.Series(dtype="int64")
    out = {"cells": len(df), _NO_NUCLEUS: int((n == 0).sum()), _MANY_NUCLEI: int((n >= 2).sum())}
    for name, value in (extra or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"flagged count {name!r} must be an integer; got {value!r}")
        out[str(name)] = int(value)
    return out


def default_report_dir(plate_store: str | Path) -> Path:
    """Return the default report folder: ``<plate name>-report`` beside a local plate.

    A plate in an object store has its report in the current folder. Two local plates
    of one name in different folders get different reports.

    Examples
    --------
    >>> default_report_dir("s3://bucket/runs/plate-7.ome.zarr/")
    PosixPath('plate-7-report')
    >>> default_report_dir("/data/run-3/plate.zarr")
    PosixPath('/data/run-3/plate-report')
    """
    name = basename(str(plate_store)).removesuffix(".zarr").removesuffix(".ome")
    folder = f"{name or 'plate'}-report"
    if is_url(str(plate_store)):
        return Path(folder)
    return Path(str(plate_store).rstrip("/")).parent / folder


def time_step_h(info: Any) -> float | None:
    """Return the hours between timepoints of an image, from its metadata (None: unknown).

    The ``t`` axis's scale (``info.pixel_size["t"]``) counts when the axis has a time
    unit (hour, minute, second, millisecond, day); without a unit it is not a time.

    Examples
    --------
    >>> from types import SimpleNamespace as Info
    >>> time_step_h(Info(pixel_size={"t": 30.0, "y": 0.5}, units={"t": "minute"}))
    0.5
    >>> time_step_h(Info(pixel_size={"t": 1.0}, units={})) is None
    True
    """
    step = info.pixel_size.get("t")
    factor = _HOURS.get(str(info.units.get("t", "")).strip().lower())
    if step is None or factor is None or not math.isfinite(step) or step <= 0:
        return None
    return float(step) * factor


def written_by_report(name: str) -> bool:
    """Return whether a file of this name is one a report writes (and replaces).

    Those a rerun replaces or removes when the plate has changed: the figures, tables,
    thumbnails and well pages, and the page itself; any other file in the folder is kept.

    Examples
    --------
    >>> written_by_report("well-B12.html"), written_by_report("notes.txt")
    (True, False)
    """
    from fnmatch import fnmatchcase

    return (name == REPORT_PAGE or name in _OUTPUTS
            or any(fnmatchcase(name, g) for g in _GLOBS))


def well_page_name(row: str, column: str) -> str:
    """Return the file name of a well's page (characters other than ``[A-Za-z0-9_.]`` as _).

    Examples
    --------
    >>> well_page_name("B", "12")
    'well-B-12.html'
    """
    return "well-" + "-".join(re.sub(r"[^A-Za-z0-9_.]", "_", str(p)) for p in (row, column)) \
        + ".html"


def well_flags(rows: pd.DataFrame) -> dict[tuple[str, str], list[str]]:
    """Return the flags raised in each well: its fields' :func:`quality_rows`, merged.

    Parameters
    ----------
    rows : pandas.DataFrame
        :func:`quality_rows` (``field`` is ``<row>/<column>/<field>``; ``flags`` the
        comma-separated flags of a field and timepoint).

    Returns
    -------
    dict
        (row, column) -> the flags raised at any of its fields and timepoints, sorted;
        only wells with a flag.

    Examples
    --------
    >>> rows = pd.DataFrame({"field": ["A/1/0", "A/1/1", "B/2/0"], "t": [0, 0, 0],
    ...                      "flags": ["count_jump", "unregistered, count_jump", ""]})
    >>> well_flags(rows)
    {('A', '1'): ['count_jump', 'unregistered']}
    """
    out: dict[tuple[str, str], set[str]] = {}
    if rows.empty:
        return {}
    for field, flags in zip(rows["field"], rows["flags"], strict=True):
        names = {f for f in str(flags).split(", ") if f}
        parts = str(field).split("/")
        if names and len(parts) >= 2:
            out.setdefault((parts[0], parts[1]), set()).update(names)
    return {k: sorted(v) for k, v in out.items()}


class ReportContext:
    """What a section added to the report (:class:`ReportAddon`) knows and can write.

    Attributes
    ----------
    out : Path
        The report folder.
    rows, cols : list of str
        The plate layout.
    wells : list of tuple of str
        (row, column) of every well, in plate order.
    ts : list of int
        The timepoints.
    step_h : float or None
        Hours between timepoints (None: unknown, time in timepoints).
    channel : str or None
        The readout channel of the report.
    pages : dict
        (row, column) -> the file name of the well's page, for the wells that have one.
    flags : dict
        (row, column) -> the quality flags raised in the well (:func:`well_flags`).
    """

    def __init__(self, report: _Report, channel: str | None,
                 pages: Mapping[tuple[str, str], str],
                 flags: Mapping[tuple[str, str], list[str]]) -> None:
        self._report = report
        self.out = report.out
        self.rows, self.cols = list(report.rows), list(report.cols)
        self.wells = [tuple(map(str, w)) for w in report.positions]
        self.ts, self.step_h, self.channel = list(report.ts), report.step_h, channel
        self.pages, self.flags = dict(pages), dict(flags)

    def save(self, fig: Any, name: str, dpi: int = 100) -> str:
        """Save a matplotlib figure into the report folder; return its file name.

        Names start with ``screen-`` (the files a report replaces, :func:`written_by_report`).
        """
        if not name.startswith("screen-"):
            raise ValueError(f"an add-on's file names start with 'screen-'; got {name!r}")
        return self._report.save(fig, name, dpi)

    def write_text(self, text: str, name: str) -> str:
        """Write a text file (e.g. a CSV) into the report folder; return its file name."""
        if not name.startswith("screen-"):
            raise ValueError(f"an add-on's file names start with 'screen-'; got {name!r}")
        with replacing(self.out / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
        self._report.files.append(name)
        return name


class ReportAddon(Protocol):
    """Sections another layer adds to the report (e.g. the screen's, from its tables)."""

    def sections(self, ctx: ReportContext) -> list[tuple[str, str]]:
        """Return the (heading, HTML) sections of the plate's page (called first)."""
        ...

    def well_sections(self, ctx: ReportContext, row: str, column: str
                      ) -> list[tuple[str, str]]:
        """Return the (heading, HTML) sections of one well's page."""
        ...


# ----------------------------------------------------------------------------- the page


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table_html(frame: pd.DataFrame, header: bool = True) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in frame.columns) if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    head = f"<thead><tr>{head}</tr></thead>" if header else ""
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _img(name: str, alt: str) -> str:
    return f'<p><img src="{_esc(name)}" alt="{_esc(alt)}"></p>'


_STYLE = ("body{font-family:sans-serif;margin:1.5em;max-width:110em}img{max-width:100%}"
          "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;"
          "padding:.2em .6em;text-align:right}td:first-child{text-align:left}th{background:#eee}"
          ".note{color:#555}table.wells td{text-align:center}"
          "table.wells td.flagged{background:#fde0b6}")


def _well_grid(rows: list[str], cols: list[str], wells: set[tuple[str, str]],
               pages: Mapping[tuple[str, str], str],
               flags: Mapping[tuple[str, str], list[str]] | None = None) -> str:
    """Return the plate layout as a table: each well linked to its page where it has one.

    A well with a quality flag is shaded and marked with a warning sign (its flags in the
    cell's tooltip).
    """
    flags = flags or {}

    def cell(r: str, c: str) -> str:
        raised = flags.get((r, c))
        attrs = (f' class="flagged" title="quality flags: {_esc(", ".join(raised))}"'
                 if raised else "")
        name = _esc(r + c) + (" &#9888;" if raised else "")
        if (r, c) in pages:
            return f'<td{attrs}><a href="{_esc(pages[r, c])}">{name}</a></td>'
        return f"<td{attrs}>{name}</td>" if (r, c) in wells else "<td></td>"

    head = "<tr><th></th>" + "".join(f"<th>{_esc(c)}</th>" for c in cols) + "</tr>"
    body = "".join(f"<tr><th>{_esc(r)}</th>" + "".join(cell(r, c) for c in cols) + "</tr>"
                   for r in rows)
    return f'<table class="wells"><thead>{head}</thead><tbody>{body}</tbody></table>'


def _well_facts(df: pd.DataFrame, fields: list[str], channel: str | None,
                step_h: float | None) -> str:
    """Return the facts of one well's page: fields, cells, tracks, readout, time step."""
    tracked = df[df["track_id"] >= 0] if "track_id" in df.columns else df.iloc[:0]
    keys = [k for k in ("field", "track_id") if k in tracked.columns]
    facts = pd.DataFrame({"what": ["fields", "cells (all timepoints)", "tracks",
                                   "readout channel", "time between timepoints"],
                          "value": [len(fields), len(df),
                                    len(tracked[keys].drop_duplicates()) if keys else 0,
                                    channel or "none", _step_text(step_h)]})
    return (f'<p><a href="{REPORT_PAGE}">Back to the plate</a></p>'
            + _table_html(facts, header=False))


def _over_time_note(df: pd.DataFrame) -> str:
    if "track_id" in df.columns and (df["track_id"] >= 0).any():
        text = ("Top: the readout of each track (a track is one cell between divisions, "
                "numbered per field; a daughter's line starts at its mother's last point"
                + ("; grey: rows not tracked" if (df["track_id"] < 0).any() else "") + "). ")
    else:
        text = ("Top: the table is not tracked; the readout's distribution per timepoint "
                "(box: quartiles, whiskers: 1.5 x the interquartile range). ")
    return f'<p class="note">{_esc(text)}Bottom: cells in the well per timepoint.</p>'


def _step_text(step_h: float | None) -> str:
    if step_h is None:
        return "unknown (no time unit in the image metadata): time in timepoints"
    return f"{step_h:g} h"


def _page(title: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{_esc(h)}</h2>\n{content}\n" for h, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{_esc(title)}</title><style>{_STYLE}</style></head>\n<body>"
            f"<h1>{_esc(title)}</h1>\n{body}</body></html>\n")


# ----------------------------------------------------------------------------- the report


def _layout(plate: Plate, df: pd.DataFrame) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Plate rows, columns and the (row, column) of every well, from the plate and table."""
    wells = [tuple(w.split("/")) for w in plate.wells]
    if len(df):
        wells += [w for w in map(tuple, _wells(df)[["row", "column"]].to_numpy()) if w not in wells]
    rows = list(plate.rows) + sorted({r for r, _ in wells} - set(plate.rows), key=lambda r: (
        len(r), r))
    cols = list(plate.columns) + sorted({c for _, c in wells} - set(plate.columns),
                                        key=_column_key)
    return rows, cols, wells  # type: ignore[return-value]


def _readout_channel(df: pd.DataFrame, channels: tuple[str, ...], readout: str | None,
                     table: str) -> str | None:
    found = ratio_channels(df)
    available = [c for c in channels if c in found] + [c for c in found if c not in channels]
    if not len(df.columns):  # no part written at all: nothing to check against but the plate
        available = list(channels)
    if readout is None:
        return next((c for c in available if "transloc" in c.lower()),
                    available[0] if available else None)
    if readout not in available:
        raise ValueError(f"readout channel {readout!r} has no ratio column "
                         f"({ratio_column(readout)!r}) in table {table!r}; channels: "
                         f"{', '.join(available) or 'none'}")
    return readout


def _reference_label(info: Any, table: str) -> str | None:
    """Return the label image a field's feature table refers to (``region.path``), if any."""
    if table not in list_tables(info):
        return None
    try:
        name = str(table_attrs(info, table)["region"]["path"]).rsplit("/", 1)[-1]
    except (KeyError, TypeError):
        return None
    return name if name in info.labels else None


def _nuclei_label(info: Any, labels: str | None) -> str | None:
    """Return the nuclei linked to the cells ``labels`` (``<labels>_nuclei``), if written."""
    name = linked_names(labels)[0] if labels else None
    return name if name in info.labels else None


def _outlines_note(labels: str | None, nuclei: str | None) -> str:
    if not labels:
        return "no label image outlined"
    return f"outlines of {labels} (cells, yellow)" + (
        f" and {nuclei} (nuclei, light blue)" if nuclei else "")


class _Report:
    """The figures and sections of the pages, written into ``out``."""

    def __init__(self, plate: Plate, df: pd.DataFrame, out: Path,
                 without_nuclei: bool = False) -> None:
        self.plate, self.df, self.out = plate, df, out
        #: The table was measured without nuclei: no cell has a nucleus, ratio or nucleus flag.
        self.without_nuclei = without_nuclei
        self.first = plate.field(plate.field_paths[0])
        self.ts = sorted(set(range(self.first.n_timepoints)) | {int(t) for t in df.get("t", [])})
        self.step_h = time_step_h(self.first)
        self.rows, self.cols, wells = _layout(plate, df)
        self.positions = pd.MultiIndex.from_tuples(wells, names=["row", "column"])
        self.files: list[str] = []
        self.thumbs: dict[str, str] = {}  # field path -> its thumbnail, drawn once
        self.channel: int = 0
        self.labels: str | None = None
        self.nuclei: str | None = None
        self.checks = pd.DataFrame()  # quality_rows, set by write_report
        self.addons: list[tuple[ReportAddon, ReportContext]] = []

    def outline(self, channel: str | None, labels: str | None) -> None:
        """Choose the channel and the label images of the thumbnails."""
        names = self.first.channel_names
        self.channel = names.index(channel) if channel in names else 0
        self.labels, self.nuclei = labels, _nuclei_label(self.first, labels)

    def thumb(self, path: str) -> str:
        """Draw (once) a field's thumbnail; return its file name."""
        if path not in self.thumbs:
            fig = thumbnail(self.plate.field(path), self.channel, self.labels, self.nuclei,
                            self.step_h)
            self.thumbs[path] = self.save(fig, f"thumb-{(path or 'image').replace('/', '-')}.png")
        return self.thumbs[path]

    def thumbs_html(self, paths: list[str]) -> str:
        what = _outlines_note(self.labels, self.nuclei)
        return (f'<p class="note">{_esc(self.first.channel_names[self.channel])}, '
                f"contrast-stretched; {_esc(what)}.</p>"
                + "".join(_img(name, name) for name in map(self.thumb, paths)))

    def save(self, fig: Any, name: str, dpi: int = 100) -> str:
        with replacing(self.out / name) as tmp:
            fig.savefig(tmp, dpi=dpi)
        self.files.append(name)
        return name

    def csv(self, frame: pd.DataFrame, name: str) -> str:
        with replacing(self.out / name) as tmp:
            frame.to_csv(tmp, index=False)
        self.files.append(name)
        return f'<p><a href="{name}">{name}</a></p>'

    def counts(self) -> str:
        per_well = cells_per_well(self.df)
        matrix = per_well.pivot_table(index=["row", "column"], columns="t", values="n_cells",
                                      aggfunc="sum")
        matrix = matrix.reindex(index=self.positions, columns=self.ts).fillna(0)
        layout = pd.MultiIndex.from_product([self.rows, self.cols], names=["row", "column"])
        maps = self.save(plate_maps(matrix.reindex(layout), self.rows, self.cols, self.step_h),
                         "cells_per_well.png")
        mat = self.save(well_matrix(matrix, "cells", ".0f", 0, self.step_h, integer=True),
                        "cells_per_well_t.png")
        return (_img(maps, "cells per well, plate maps")
                + _img(mat, "cells per well and timepoint")
                + self.csv(per_well, "cells_per_well.csv"))

    def readout(self, channel: str) -> str:
        stats = readout_per_well(self.df, channel)
        med = stats.pivot_table(index=["row", "column"], columns="t", values="median",
                                dropna=False).reindex(index=self.positions, columns=self.ts)
        grid = self.save(readout_plate(stats, self.rows, self.cols, channel, self.step_h),
                         "readout.png")
        mat = self.save(well_matrix(med, f"median {RATIO}", ".2f", step_h=self.step_h),
                        "readout_median.png")
        missing = int(self.df[ratio_column(channel)].isna().sum())
        return (_img(grid, "readout per well") + _img(mat, "median readout per well and t")
                + f'<p class="note">{missing} cell(s) without a ratio (e.g. no cytoplasm) '
                "left out.</p>" + self.csv(stats, "readout_per_well.csv"))

    def thumbnails(self, n: int) -> str:
        return self.thumbs_html(spread(list(self.plate.field_paths), n))

    def page_names(self, limit: int) -> dict[tuple[str, str], str]:
        """Return the page of each of the first ``limit`` wells (the wells that get one)."""
        return {(str(r), str(c)): well_page_name(r, c) for r, c in list(self.positions)[:limit]}

    def wells(self, limit: int, channel: str | None, title: str) -> str:
        """Write the pages of the first ``limit`` wells; return the section linking them."""
        by_well = dict(tuple(self.df.astype({"row": str, "column": str})
                             .groupby(["row", "column"]))) if len(self.df) else {}
        pages = {}
        for row, col in self.page_names(limit):
            rows = by_well.get((row, col), self.df.iloc[:0])
            pages[(row, col)] = self.well_page(row, col, rows, channel, title)
        n = len(self.positions)
        note = _esc(f"Pages for the first {limit} of the {n} wells, in plate order: a report "
                    f"writes at most {limit} well pages (well_pages; {WELL_PAGES} by default)."
                    if n > limit else
                    f"A page for each of the {n} wells: readout over time, cells, fields.")
        flags = well_flags(self.checks)
        if flags:
            note += (f" {len(flags)} well(s) with a quality flag (shaded, &#9888;; the flags "
                     "in the tooltip and on the well's page).")
        return f'<p class="note">{note}</p>' + _well_grid(self.rows, self.cols,
                                                          set(self.positions), pages, flags)

    def well_page(self, row: str, col: str, df: pd.DataFrame, channel: str | None,
                  title: str) -> str:
        """Write one well's page and figure; return the page's file name."""
        name = well_page_name(row, col)
        channel = channel if channel and ratio_column(channel) in df.columns else None
        fig = self.save(well_over_time(df, self.ts, channel, self.step_h),
                        name.removesuffix(".html") + ".png")
        fields = [p for p in self.plate.field_paths if p.rsplit("/", 1)[0] == f"{row}/{col}"]
        extra = [s for addon, ctx in self.addons for s in addon.well_sections(ctx, row, col)]
        with replacing(self.out / name) as tmp:
            tmp.write_text(_page(f"{title}, well {row}{col}", [
                ("Well", _well_facts(df, fields, channel, self.step_h)), *extra,
                ("Over time", _img(fig, f"well {row}{col} over time") + _over_time_note(df)),
                ("Quality checks", self._well_checks(fields)),
                ("Fields", self._well_fields(fields))]), encoding="utf-8")
        self.files.append(name)
        return name

    def _well_checks(self, fields: list[str]) -> str:
        """Return the quality checks of a well's fields: the flagged (field, t), all in a table."""
        from .quality import FLAGS

        if self.checks.empty:
            return '<p class="note">No quality checks kept with this table.</p>'
        rows = self.checks[self.checks["field"].isin(fields)]
        if rows.empty:
            return '<p class="note">No quality checks kept for this well\'s fields.</p>'
        raised = rows[rows["flags"] != ""]
        names = sorted({f for fl in raised["flags"] for f in fl.split(", ") if f})
        text = ("".join(f"<p>&#9888; <b>{_esc(n)}</b>: {_esc(FLAGS.get(n, ''))}</p>"
                        for n in names)
                if names else '<p class="note">No check raised a flag in this well.</p>')
        return (text + f"<details{' open' if names else ''}><summary>Per field and timepoint "
                f"({len(raised)} of {len(rows)} flagged)</summary>{_table_html(rows)}</details>")

    def _well_fields(self, fields: list[str]) -> str:
        if not fields:
            return '<p class="note">The plate has no field in this well.</p>'
        shown = spread(fields, _FIELDS_PER_WELL)
        more = (f'<p class="note">{len(shown)} of the well\'s {len(fields)} fields.</p>'
                if len(shown) < len(fields) else "")
        return more + self.thumbs_html(shown)

    def quality(self, table: str) -> str:
        from .quality import FLAGS

        rows = self.checks if len(self.checks) else quality_rows(self.plate, table)
        if rows.empty:
            return '<p class="note">No quality checks kept with this table (measured before ' \
                   "they existed).</p>"
        raised = rows[rows["flags"] != ""]
        names = sorted({f for fl in raised["flags"] for f in fl.split(", ") if f})
        text = ("".join(f"<p><b>{_esc(n)}</b>: {_esc(FLAGS[n])}</p>" for n in names)
                if names else '<p class="note">No check raised a flag.</p>')
        return (text + f"<details{' open' if 0 < len(raised) <= 24 else ''}><summary>Per "
                f"field and timepoint ({len(raised)} of {len(rows)} flagged)</summary>"
                f"{_table_html(rows)}</details>" + self.csv(rows, "quality.csv"))

    def flagged(self, counts: dict[str, int]) -> str:
        text = _table_html(pd.DataFrame({"objects": list(counts), "count": counts.values()}))
        if self.without_nuclei:
            return text + f'<p class="note">{_NO_NUCLEI_FLAGS}</p>'
        if len(self.df) and "n_nuclei" in self.df.columns:
            df = self.df.astype({"well": str})
            by_t = _flags(df, "t").reindex(self.ts, fill_value=0).rename_axis("t")
            by_well = _flags(df, "well").reindex(_wells(df)["well"])
            text += (f"<h3>Per timepoint</h3>{_table_html(by_t.reset_index())}"
                     f"<details{' open' if len(by_well) <= 24 else ''}><summary>Per well "
                     f"(all timepoints)</summary>{_table_html(by_well.reset_index())}</details>")
        return text


def quality_rows(plate: Plate, table: str) -> pd.DataFrame:
    """Return the quality checks kept with each field's table, one row per (field, timepoint).

    Columns: ``field``, ``t``, the metrics of :func:`.quality.unit_metrics`, ``flags``
    (the flags raised, comma-separated) and ``registered`` (the stage drift to the
    timepoint was measured; empty where the table was not tracked).
    """
    from ..io import list_tables, table_attrs
    from .plate_track import DRIFT_ATTRIBUTE
    from .quality import QUALITY_ATTRIBUTE

    rows = []
    for path in plate.field_paths:
        image = plate.field(path)
        if table not in list_tables(image):
            continue
        attrs = table_attrs(image, table)
        quality = attrs.get(QUALITY_ATTRIBUTE) or {}
        drift = attrs.get(DRIFT_ATTRIBUTE) or {}
        bare = without_nuclei(attrs)
        for t in sorted({*quality, *drift}, key=int):
            m = dict(quality.get(t, {}))
            flags = list(m.pop("flags", []))
            if bare:  # kept by a measuring that still judged absent nuclei
                m.pop(_NO_NUCLEUS_METRIC, None)
                flags = [f for f in flags if f != _NO_NUCLEUS_METRIC]
            step = drift.get(t)
            if step is not None and not step[2]:
                flags.append("unregistered")
            rows.append({"field": path or "(image)", "t": int(t), **m,
                         "flags": ", ".join(flags),
                         "registered": "" if step is None else ("yes" if step[2] else "no")})
    return pd.DataFrame(rows)


def _flags(df: pd.DataFrame, key: str) -> pd.DataFrame:
    n = df.groupby(key)["n_nuclei"]
    return pd.DataFrame({"cells": n.size(), "without nucleus": n.agg(lambda v: (v == 0).sum()),
                         "several nuclei": n.agg(lambda v: (v >= 2).sum())})


def write_report(plate: str | Path | Plate, *, table: str, labels: str | None = None,
                 readout: str | None = None, output: str | Path | None = None,
                 thumbnails: int = 4, flagged: Mapping[str, int] | None = None,
                 well_pages: int = WELL_PAGES, addons: Sequence[ReportAddon] = ()) -> Path:
    """Write an offline HTML view of a plate's per-cell table (see the module docstring).

    Parameters
    ----------
    plate : str, Path or Plate
        The plate (a local path or a URL such as ``s3://bucket/plate.zarr``); only read.
    table : str
        Name of the plate-level dataset (``<plate>/measurements/<table>``).
    labels : str, optional
        Label image outlined on the thumbnails. Default: the label image the fields'
        feature table of that name refers to; none when there is no such table. Its
        linked nuclei (``<labels>_nuclei``), where they exist, are outlined too.
    readout : str, optional
        Channel of the translocation readout. Default: the first channel with a ratio
        column whose name contains ``transloc``, else the first with a ratio column.
    output : str or Path, optional
        Local folder (created; files of the same names are replaced, older
        ``thumb-*.png``, ``well-*.html`` and ``well-*.png`` removed). Default
        :func:`default_report_dir`: ``./<plate name>-report``.
    thumbnails : int
        Number of fields shown on the main page (spread over the plate; 0 for none).
    well_pages : int
        Most well pages written: every well of a plate of up to that many wells, else
        the first ones in plate order (the page says so). 0 for none.
    flagged : mapping of str to int, optional
        Further counts of flagged objects (e.g. nuclei outside any cell), shown with
        the table's (see :func:`flagged_counts`).
    addons : sequence of ReportAddon
        Sections added by other layers (:class:`ReportAddon`; e.g. the screen's plate
        view, :func:`structfree_dask.screen.view.screen_addon`), after the plate's facts
        on the plate's page and after the well's facts on a well's page.

    Returns
    -------
    Path
        The page, ``<output>/report.html``.

    Raises
    ------
    FileNotFoundError
        If the plate has no dataset of that name.
    ValueError
        If ``readout`` has no ratio column (the message lists the channels that have
        one), ``thumbnails`` or ``well_pages`` is negative, a flagged count is not an
        integer or the output folder is inside the plate.
    """
    plate = open_plate(plate)
    for name, value in (("thumbnails", thumbnails), ("well_pages", well_pages)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
    out = check_output_folder(default_report_dir(plate.store) if output is None else output,
                              "report folder", outside=plate.store)
    where = plate_dataset(plate.store, table)
    if not exists(where):
        tables = list_cell_datasets(plate.store)
        raise FileNotFoundError(f"plate {redact(plate.store)} has no dataset {table!r} in "
                                f"{MEASUREMENTS_FOLDER}/ (expected at {redact(where)}); it "
                                f"has: {', '.join(tables) or 'none (measure the plate first)'}")
    df = read_plate_dataset(plate.store, table)
    without_nuclei = measured_without_nuclei(plate, table)
    report = _Report(plate, df, out, without_nuclei)
    channel = _readout_channel(df, report.first.channel_names, readout, table)
    if without_nuclei:  # no cell has a nucleus, so none has a ratio or a nucleus flag
        channel = None
    counts = {"cells": len(df)} if without_nuclei else flagged_counts(df, flagged)
    out.mkdir(parents=True, exist_ok=True)
    prune(out, {REPORT_PAGE}, written_by_report)  # an earlier report's files (the page is replaced)
    facts = pd.DataFrame({"what": ["plate", "table", "wells", "fields", "timepoints",
                                   "time between timepoints", "cells (all timepoints)",
                                   "readout channel"],
                          "value": [redact(plate.store), table, len(report.positions),
                                    len(plate.field_paths), len(report.ts),
                                    _step_text(report.step_h), len(df),
                                    channel or ("none (measured without nuclei)"
                                                if without_nuclei else "none")]})
    sections = [("Plate", _table_html(facts, header=False))]
    report.checks = quality_rows(plate, table)
    flags = well_flags(report.checks)
    pages = report.page_names(well_pages)
    for addon in addons:
        ctx = ReportContext(report, channel, pages, flags)
        report.addons.append((addon, ctx))
        sections.extend(addon.sections(ctx))
    if df.empty:
        sections.append(("Cells", f'<p class="note">Table {_esc(table)} has no cells: no '
                         "cell counts or readout to show.</p>"))
    else:
        sections.append(("Cells per well", report.counts()))
        sections.append((f"Translocation readout: {channel}", report.readout(channel))
                        if channel else ("Readout", f'<p class="note">{_NO_READOUT}</p>'
                                         if without_nuclei else '<p class="note">The table '
                                         "has no nucleus / cytoplasm ratio column.</p>"))
    report.outline(channel, labels or _reference_label(report.first, table))
    title = f"{plate.name or basename(plate.store)}: {table}"
    if well_pages and len(report.positions):
        sections.append(("Wells", report.wells(well_pages, channel, title)))
    if thumbnails:
        sections.append(("Fields", report.thumbnails(thumbnails)))
    sections.append(("Flagged objects", report.flagged(counts)))
    sections.append(("Quality checks", report.quality(table)))
    page = out / REPORT_PAGE
    with replacing(page) as tmp:
        tmp.write_text(_page(title, sections), encoding="utf-8")
    n_wells = sum(f.endswith(".html") for f in report.files)
    logger.info("report of %s (table %s) written to %s with %d other files (%d well pages)",
                redact(plate.store), table, page, len(report.files), n_wells)
    return page

"""Plate maps: the condition, compound, dose and role of every well of a plate, checked.

A plate map is a CSV file with one row per well of the plate::

    well,condition,compound,dose,dose_unit,role
    A1,DMSO,,,,negative
    A2,staurosporine 1 uM,staurosporine,1,uM,positive
    A3,drug-X 0.1 uM,drug-X,0.1,uM,sample

:func:`read_plate_map_csv` reads one as text and :func:`parse_plate_map` checks it against a
plate's wells (pure: a DataFrame in, a DataFrame out). Storing a map in a plate and joining
it to the cells is :mod:`structfree_dask.screen.platemap`'s; the simulator reads plate maps
here too (:func:`structfree_dask.simulate.simulate_plate`'s ``plate_map``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import SCREEN_ROLES, unknown_key

if TYPE_CHECKING:  # imported where used: reading a plate's pixels needs no pandas
    import pandas as pd

__all__ = ["PLATE_MAP_ANNOTATION_COLUMNS", "PLATE_MAP_COLUMNS", "PLATE_MAP_STORED_COLUMNS",
           "PlateMapError", "parse_plate_map", "read_plate_map_csv"]

#: Columns of a plate map CSV: the first two are required.
PLATE_MAP_COLUMNS = ("well", "condition", "compound", "dose", "dose_unit", "role")
_REQUIRED = PLATE_MAP_COLUMNS[:2]
#: Columns the plate map adds to per-cell and per-well rows (joined on ``well``).
PLATE_MAP_ANNOTATION_COLUMNS = ("condition", "compound", "dose", "dose_unit", "role")
#: Columns of a parsed (and of a stored) plate map, in order.
PLATE_MAP_STORED_COLUMNS = ("well", "row", "column", *PLATE_MAP_ANNOTATION_COLUMNS)
_STORED = PLATE_MAP_STORED_COLUMNS
_TREATMENT = ("compound", "dose", "dose_unit", "role")
_LISTED = 8  # wells named in a message; the others are counted
_SHOWN = 5  # problems in one message; the others are counted
_WELL = re.compile(r"^([A-Za-z]+)\s*/?\s*([0-9]+)$")
_LINE = "line"  # index of the rows read from a file: their line numbers


class PlateMapError(ValueError):
    """A plate map with mistakes; ``problems`` lists each one, the text is one line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        shown = "; ".join(self.problems[:_SHOWN])
        more = len(self.problems) - _SHOWN
        text = shown if len(self.problems) == 1 else (
            f"{len(self.problems)} problems: {shown}" + (f"; and {more} more" if more > 0
                                                         else ""))
        super().__init__(f"plate map {source}: {text}")


def _listed(items: Sequence[str]) -> str:
    more = len(items) - _LISTED
    return ", ".join(items[:_LISTED]) + (f" and {more} more" if more > 0 else "")


def _well_key(row: str, column: str) -> tuple[str, Any]:
    return row.upper(), int(column) if column.isdigit() else column


def _plate_wells(wells: Sequence[str]) -> dict[tuple[str, Any], tuple[str, str]]:
    """Well key -> (row, column) of each plate well path (``"B/3"``)."""
    out = {}
    for w in wells:
        row, column = w.split("/")
        out[_well_key(row, column)] = (row, column)
    return out


def _parse_well(text: str) -> tuple[str, Any] | None:
    if "/" in text:
        row, _, column = (p.strip() for p in text.partition("/"))
        return _well_key(row, column) if row and column and "/" not in column else None
    m = _WELL.fullmatch(text)
    return _well_key(m[1], m[2]) if m else None


def read_plate_map_csv(path: str | Path) -> pd.DataFrame:
    """Read a plate map CSV as text (every cell a string, blanks empty; header kept as is).

    Raises
    ------
    FileNotFoundError
        No such file.
    PlateMapError
        Not a CSV file that reads: empty, not UTF-8 text, a line whose number of fields is
        not the header's.
    """
    import csv

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"plate map not found: {p} (expected a CSV file with columns "
                                f"{', '.join(PLATE_MAP_COLUMNS)})")
    expected = (f"expected a CSV file with a header line (columns "
                f"{', '.join(PLATE_MAP_COLUMNS)})")
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            lines = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise PlateMapError(str(p), [f"{expected}; {' '.join(str(err).split())}"]) from None
    if not lines:
        raise PlateMapError(str(p), [f"{expected}; the file is empty"])
    header, rows = lines[0][1], lines[1:]
    ragged = [f"line {i} has {len(r)} field(s)" for i, r in rows if len(r) != len(header)]
    if ragged:
        raise PlateMapError(str(p), [f"{expected}; the header has {len(header)} field(s) "
                                     f"and {_listed(ragged)}"])
    import pandas as pd

    return pd.DataFrame([r for _, r in rows], columns=pd.Index(header, dtype=object),
                        index=pd.Index([i for i, _ in rows], name=_LINE), dtype=str)


def _columns(data: pd.DataFrame, problems: list[str]) -> dict[str, int]:
    """Map each known column to its position (headers matched without case or spaces)."""
    found: dict[str, int] = {}
    for position, original in enumerate(data.columns):
        name = str(original).strip().lower()
        if name in found:
            problems.append(f"column {name!r} appears twice in the header")
        elif name not in PLATE_MAP_COLUMNS:
            problems.append(f"column {str(original)[:40]!r}: "
                            f"{unknown_key(name, PLATE_MAP_COLUMNS, 'column')}")
        else:
            found[name] = position
    missing = [c for c in _REQUIRED if c not in found]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)} (expected {', '.join(_REQUIRED)}"
                        f" and optional {', '.join(PLATE_MAP_COLUMNS[2:])}; found "
                        f"{', '.join(map(str, data.columns)) or 'none'})")
    return found


def _dose(text: str, where: str, problems: list[str]) -> float:
    if not text:
        return float("nan")
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{where}: dose {text!r} is not a number")
        return float("nan")
    if not value >= 0 or value == float("inf"):
        problems.append(f"{where}: expected a finite dose >= 0; got {text!r}")
        return float("nan")
    return value


def parse_plate_map(data: pd.DataFrame, wells: Sequence[str], source: str = "CSV"
                    ) -> pd.DataFrame:
    """Check a plate map (as read by :func:`read_plate_map_csv`) against a plate's wells.

    Parameters
    ----------
    data : pandas.DataFrame
        The CSV's rows as text (blank cells empty); an index named ``line`` gives their
        line numbers (:func:`read_plate_map_csv`), else the rows are lines 2, 3...
    wells : sequence of str
        The plate's well paths (``"A/1"``, :attr:`structfree_dask.io.Plate.wells`).
    source : str
        Where the map came from (for messages).

    Returns
    -------
    pandas.DataFrame
        One row per plate well in plate order: ``well`` (``row + column``, as in the
        plate-level datasets), ``row``, ``column``, ``condition``, ``compound`` (None
        when none), ``dose`` (NaN when none), ``dose_unit`` (None when none), ``role``.

    Raises
    ------
    PlateMapError
        Every problem at once, in one line: missing or unknown columns, unknown,
        duplicated or missing wells, empty conditions, doses that are not numbers >= 0,
        roles not in ``negative``, ``positive``, ``sample``, conditions that are not one
        treatment, compounds in several units, doses without a compound.

    Examples
    --------
    >>> import pandas as pd
    >>> csv = pd.DataFrame({"well": ["A1", "A/2"], "condition": ["DMSO", "X 1 uM"],
    ...                     "compound": ["", "X"], "dose": ["", "1"],
    ...                     "role": ["negative", ""]})
    >>> parse_plate_map(csv, ["A/1", "A/2"])[["well", "compound", "dose", "role"]]
      well compound  dose      role
    0   A1     None   NaN  negative
    1   A2        X   1.0    sample
    >>> parse_plate_map(csv.assign(dose=["", "ten"]), ["A/1", "A/2", "A/3"])
    Traceback (most recent call last):
    ...
    structfree_dask.io._platemap.PlateMapError: plate map CSV: 2 problems: line 3 (well
    A/2): dose 'ten' is not a number; well(s) of the plate missing from the map: A3 ...
    """
    problems: list[str] = []
    if not wells:
        raise PlateMapError(source, ["expected an HCS plate with wells; this plate has none "
                                     "(a single image)"])
    columns = _columns(data, problems)
    if any(c not in columns for c in _REQUIRED):
        raise PlateMapError(source, problems)
    plate = _plate_wells(wells)
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, Any], int] = {}
    records = data.iloc[:, list(columns.values())].set_axis(list(columns), axis=1)
    lines = (data.index if data.index.name == _LINE
             else range(2, len(data) + 2))  # the header is line 1
    for line, record in zip(lines, records.to_dict("records"), strict=True):
        cell = {name: str(value).strip() for name, value in record.items()}
        text = cell["well"]
        where = f"line {line} (well {text})" if text else f"line {line}"
        key = _parse_well(text)
        if key is None or key not in plate:
            problems.append(f"{where}: " + (
                "the well is empty" if not text else
                f"well {text!r} is not in the plate (wells are written like A1, A01 or "
                f"A/1; the plate's wells: {_listed([w.replace('/', '') for w in wells])})"))
            continue
        if key in seen:
            problems.append(f"{where}: well {text!r} is listed twice (lines {seen[key]} and "
                            f"{line})")
            continue
        seen[key] = line
        role = cell.get("role", "").lower() or "sample"
        if role not in SCREEN_ROLES:
            problems.append(f"{where}: role {cell['role']!r} is not one of "
                            f"{', '.join(SCREEN_ROLES)}")
        if not cell["condition"]:
            problems.append(f"{where}: the condition is empty (name every well's condition, "
                            "e.g. 'empty' for a well without cells)")
        dose = _dose(cell.get("dose", ""), where, problems)
        compound = cell.get("compound", "") or None
        if compound is None and dose == dose:
            problems.append(f"{where}: dose {cell['dose']!r} without a compound (the "
                            "dose-response fits group wells by compound)")
        row, column = plate[key]
        rows.append({"well": f"{row}{column}", "row": row, "column": column,
                     "condition": cell["condition"], "compound": compound, "dose": dose,
                     "dose_unit": cell.get("dose_unit", "") or None, "role": role})
    missing = [f"{r}{c}" for k, (r, c) in plate.items() if k not in seen]
    if missing:
        problems.append(f"well(s) of the plate missing from the map: {_listed(missing)} "
                        "(every well needs a row; give empty wells a condition such as "
                        "'empty')")
    import pandas as pd

    out = pd.DataFrame(rows, columns=list(_STORED))
    if not problems:
        problems += _treatment_problems(out)
    if problems:
        raise PlateMapError(source, problems)
    order = {w.replace("/", ""): i for i, w in enumerate(wells)}
    out = out.sort_values("well", key=lambda s: s.map(order), kind="stable")
    return out.astype({"dose": float}).reset_index(drop=True)


def _treatment_problems(pm: pd.DataFrame) -> list[str]:
    """Conditions that are not one treatment; compounds in several units."""
    problems = []
    for condition, group in pm.groupby("condition", sort=False):
        treatments = group[list(_TREATMENT)].astype(object).where(group[list(_TREATMENT)]
                                                                  .notna(), None)
        distinct = treatments.drop_duplicates()
        if len(distinct) > 1:
            first, other = (group.loc[i, "well"] for i in distinct.index[:2])
            differ = [c for c in _TREATMENT
                      if str(treatments.loc[distinct.index[0], c])
                      != str(treatments.loc[distinct.index[1], c])]
            problems.append(f"condition {condition!r} has another {', '.join(differ)} in "
                            f"well {other} than in well {first} (a condition is one "
                            "treatment; name the two differently)")
    dosed = pm[pm["compound"].notna() & pm["dose"].notna()]
    for compound, group in dosed.groupby("compound", sort=False):
        units = sorted({str(u) if u is not None else "(none)" for u in group["dose_unit"]})
        if len(units) > 1:
            problems.append(f"compound {compound!r} has doses in {len(units)} units "
                            f"({', '.join(units)}); give its doses in one unit")
    return problems


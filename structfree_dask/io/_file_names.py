"""Where an image file goes in a plate, read from its name: well, field and channel.

High-content microscopes name their exports by well and field, most with one file per
channel. Recognised on a file's stem, first match wins:

* Harmony (Operetta, Opera Phenix): ``r02c03f01p01-ch1sk1fk1fl1`` is well B/3 (rows and
  columns as numbers), field 1, channel ``ch1`` (plane ``p01``);
* MetaXpress (ImageXpress): ``Plate1_B03_s1_w1<id>`` is well B/3, field 1 (site), channel
  ``w1`` (wavelength);
* CellVoyager (CV7000/CV8000): ``Plate1_B03_T0001F001L01A01Z01C01`` is well B/3, field 1,
  channel ``C01`` (timepoint ``T0001``, plane ``Z01``);
* a well name first: ``B03_f2`` / ``B3-1`` (field 2 / 1, all channels in the file), or
  with a channel after it, ``B03_f2_ch1``, ``B03_s1_w2``, ``B03_c1``.

Field numbers are kept as written (``f01`` is field 1). A file's plane and timepoint, where
its name has them, are part of what must be unique: a plate field holds one plane at one
timepoint.

Examples
--------
>>> parse_name("r02c03f01p01-ch2sk1fk1fl1")
FileName(row='B', col='3', field=1, channel='ch2', plane='p01')
>>> parse_name("Plate1_B03_s2_w1A1B2C3D4")
FileName(row='B', col='3', field=2, channel='w1', plane='')
>>> parse_name("C1_f0")
FileName(row='C', col='1', field=0, channel=None, plane='')
>>> parse_name("095_img") is None
True
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

__all__ = ["FileName", "parse_name", "channel_number"]


@dataclass(frozen=True)
class FileName:
    """Where a file goes: its well (row letters, column number), field and channel."""

    row: str
    col: str
    field: int
    #: The channel as the name writes it (``w1``, ``ch2``, ``C01``); None: all channels.
    channel: str | None
    #: The plane and timepoint as the name writes them (empty where it has none).
    plane: str


_HARMONY = re.compile(
    r"^r(?P<row>\d{1,2})c(?P<col>\d{1,3})f(?P<field>\d+)(?P<plane>p\d+)-(?P<channel>ch\d+)",
    re.IGNORECASE)
_METAXPRESS = re.compile(
    r"(?:^|_)(?P<row>[A-Za-z]{1,2})(?P<col>\d{2})(?:_s(?P<field>\d+))?_(?P<channel>w\d+)",
    re.IGNORECASE)
_CELLVOYAGER = re.compile(
    r"(?:^|_)(?P<row>[A-Za-z]{1,2})(?P<col>\d{2})_(?P<plane>T\d+)F(?P<field>\d+)L\d+A\d+"
    r"(?P<z>Z\d+)(?P<channel>C\d+)$", re.IGNORECASE)
_WELL_FIRST = re.compile(
    r"^(?P<row>[A-Za-z]{1,2})[-_]?(?P<col>\d{1,3})"
    r"(?:[-_](?:f|s|field)?(?P<field>\d+))?"
    r"(?:[-_](?P<channel>(?:ch|c|w)\d+))?(?:[-_].*)?$", re.IGNORECASE)


def _row_letters(number: int) -> str:
    """Row 1 -> A, 26 -> Z, 27 -> AA (a 1536-well plate has 32 rows)."""
    letters = string.ascii_uppercase
    first, last = divmod(number - 1, 26)
    return (letters[first - 1] if first else "") + letters[last]


def parse_name(stem: str) -> FileName | None:
    """Return where a file of this stem goes, or None if its name says no well.

    Parameters
    ----------
    stem : str
        The file name without its extension.
    """
    m = _HARMONY.match(stem)
    if m is not None and int(m["row"]) >= 1:
        return FileName(_row_letters(int(m["row"])), str(int(m["col"])), int(m["field"]),
                        m["channel"], m["plane"])
    for pattern in (_CELLVOYAGER, _METAXPRESS):
        m = pattern.search(stem)
        if m is not None:
            groups = m.groupdict()
            plane = (groups.get("plane") or "") + (groups.get("z") or "")
            return FileName(m["row"].upper(), str(int(m["col"])),
                            int(m["field"]) if m["field"] else 0, m["channel"], plane)
    m = _WELL_FIRST.match(stem)
    if m is None:
        return None
    return FileName(m["row"].upper(), str(int(m["col"])), int(m["field"]) if m["field"] else 0,
                    m["channel"], "")


def channel_number(token: str) -> int:
    """Return the number of a channel token, for ordering (``w2`` -> 2, ``C01`` -> 1).

    Examples
    --------
    >>> sorted(["w10", "w2", "w1"], key=channel_number)
    ['w1', 'w2', 'w10']
    """
    return int(re.sub(r"\D", "", token) or 0)

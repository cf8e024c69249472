"""Where an image file goes in a plate, read from its name: well, field, timepoint, channel.

High-content microscopes name their exports by well and field, most with one file per
channel. Recognised on a file's stem, first match wins:

* Harmony (Operetta, Opera Phenix): ``r02c03f01p01-ch1sk1fk1fl1`` is well B/3 (rows and
  columns as numbers), field 1, channel ``ch1``, timepoint 1 (``sk1``; plane ``p01``);
* MetaXpress (ImageXpress): ``Plate1_B03_s1_w1<id>`` is well B/3, field 1 (site), channel
  ``w1`` (wavelength);
* CellVoyager (CV7000/CV8000): ``Plate1_B03_T0001F001L01A01Z01C01`` is well B/3, field 1,
  timepoint 1, channel ``C01`` (plane ``Z01``);
* a well name first: ``B03_f2`` / ``B3-1`` (field 2 / 1, all channels in the file), with a
  timepoint, a plane, a channel after it: ``B03_f2_t3``, ``B03_f2_ch1``, ``B03_s1_t3_z2_w2``.

Field and timepoint numbers are kept as written (``f01`` is field 1). A plate field holds
one plane: the planes of a z-stack are refused, or projected by the importer.

Examples
--------
>>> parse_name("r02c03f01p01-ch2sk4fk1fl1")
FileName(row='B', col='3', field=1, channel='ch2', plane='p01', timepoint=4)
>>> parse_name("Plate1_B03_s2_w1A1B2C3D4")
FileName(row='B', col='3', field=2, channel='w1', plane='', timepoint=None)
>>> parse_name("C1_f0")
FileName(row='C', col='1', field=0, channel=None, plane='', timepoint=None)
>>> parse_name("095_img") is None
True
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

__all__ = ["FileName", "parse_name", "channel_number", "row_letters"]


@dataclass(frozen=True)
class FileName:
    """Where a file goes: its well (row letters, column number), field and channel."""

    row: str
    col: str
    field: int
    #: The channel as the name writes it (``w1``, ``ch2``, ``C01``); None: all channels.
    channel: str | None
    #: The plane as the name writes it (empty where it has none).
    plane: str
    #: The timepoint's number as written (None: the name has none).
    timepoint: int | None = None


_HARMONY = re.compile(
    r"^r(?P<row>\d{1,2})c(?P<col>\d{1,3})f(?P<field>\d+)(?P<plane>p\d+)-(?P<channel>ch\d+)"
    r"(?:sk(?P<t>\d+))?",
    re.IGNORECASE)
_METAXPRESS = re.compile(
    r"(?:^|_)(?P<row>[A-Za-z]{1,2})(?P<col>\d{2})(?:_s(?P<field>\d+))?_(?P<channel>w\d+)",
    re.IGNORECASE)
_CELLVOYAGER = re.compile(
    r"(?:^|_)(?P<row>[A-Za-z]{1,2})(?P<col>\d{2})_T(?P<t>\d+)F(?P<field>\d+)L\d+A\d+"
    r"(?P<plane>Z\d+)(?P<channel>C\d+)$", re.IGNORECASE)
_WELL_FIRST = re.compile(
    r"^(?P<row>[A-Za-z]{1,2})[-_]?(?P<col>\d{1,3})"
    r"(?:[-_](?:f|s|field)?(?P<field>\d+))?(?:[-_]t(?P<t>\d+))?(?:[-_](?P<plane>z\d+))?"
    r"(?:[-_](?P<channel>(?:ch|c|w)\d+))?(?P<rest>[-_].*)?$", re.IGNORECASE)


def row_letters(number: int) -> str:
    """Row 1 -> A, 26 -> Z, 27 -> AA (a 1536-well plate has 32 rows).

    Examples
    --------
    >>> row_letters(1), row_letters(26), row_letters(32)
    ('A', 'Z', 'AF')
    """
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
        return FileName(row_letters(int(m["row"])), str(int(m["col"])), int(m["field"]),
                        m["channel"], m["plane"], _number(m["t"]))
    first = _WELL_FIRST.match(stem)
    # a name read whole as a well first wins; else a vendor's well after a plate name;
    # else a well first with more after it (B03_f1_DAPI)
    m = (first if first is not None and not first["rest"] else None) or (
        _CELLVOYAGER.search(stem) or _METAXPRESS.search(stem) or first)
    if m is None:
        return None
    groups = m.groupdict()
    return FileName(m["row"].upper(), str(int(m["col"])), _number(m["field"]) or 0,
                    m["channel"], groups.get("plane") or "", _number(groups.get("t")))


def _number(text: str | None) -> int | None:
    return int(text) if text else None


def channel_number(token: str) -> int:
    """Return the number of a channel token, for ordering (``w2`` -> 2, ``C01`` -> 1).

    Examples
    --------
    >>> sorted(["w10", "w2", "w1"], key=channel_number)
    ['w1', 'w2', 'w10']
    """
    return int(re.sub(r"\D", "", token) or 0)

r"""What a microscope's index file says about its export: channel names, pixel size, times.

High-content microscopes write, beside the image files of a plate, a file describing the
acquisition. Two are read:

* Harmony (Operetta, Opera Phenix): ``Index.idx.xml`` (also ``Index.xml``,
  ``Index.ref.xml``), one ``Image`` element per file with its ``ChannelID`` and
  ``ChannelName``, ``ImageResolutionX`` / ``ImageResolutionY`` (in metres unless a
  ``Unit`` says otherwise) and ``TimepointID`` with ``MeasurementTimeOffset`` (seconds) or
  ``AbsTime``; channel details may instead be in ``Maps/Map/Entry`` elements; the
  ``URL`` of each image whose ``State`` is ``Ok`` (or not given) names its file;
* MetaXpress (ImageXpress): the plate's ``.HTD`` file, whose ``WaveName<n>`` lines name
  the wavelength ``w<n>`` of the file names; ``WaveCollect<n>`` (0: not taken) say which
  wavelengths were taken, ``XWells`` / ``YWells`` with one ``WellsSelection<row>`` line of
  ``TRUE`` / ``FALSE`` per row which wells, and ``Sites`` with ``XSites`` / ``YSites``
  (and ``SiteSelection<row>`` lines) how many sites of each well;
* CellVoyager (CV7000, CV8000): ``MeasurementDetail.mrf``, whose ``MeasurementChannel``
  elements give each channel's pixel size (``HorizontalPixelDimension`` /
  ``VerticalPixelDimension``, micrometres), and beside it ``MeasurementData.mlf``, whose
  image records (``Type="IMG"``) give each file's ``TimePoint`` and ``Time``. It names
  no channel.

The channels are keyed by the token the file names write (``ch1``, ``w2``, lower case), so
that :mod:`._importer` can name the channel files it groups (:mod:`._field_files`).

Examples
--------
>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "Plate1.HTD").write_text(
...     '"HTSInfoFile", Version 1.0\n"NWavelengths", 2\n"WaveName1", "DAPI"\n'
...     '"WaveName2", "FITC"\n"EndFile"\n')
>>> index = find_index(folder)
>>> index.name, index.channel_names
('Plate1.HTD', {'w1': 'DAPI', 'w2': 'FITC'})
"""

from __future__ import annotations

import csv
import logging
import statistics
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ._file_metadata import UM_PER_UNIT
from ._file_names import row_letters

__all__ = ["IndexFile", "find_index", "read_harmony_index", "read_htd", "read_cellvoyager",
           "HARMONY_NAMES", "CELLVOYAGER_DETAIL", "CELLVOYAGER_DATA"]

logger = logging.getLogger(__name__)

#: The names of a Harmony export's index file.
HARMONY_NAMES = ("index.idx.xml", "index.xml", "index.ref.xml")
#: A CellVoyager export's measurement settings and, beside it, its record of the images.
CELLVOYAGER_DETAIL, CELLVOYAGER_DATA = "measurementdetail.mrf", "measurementdata.mlf"
#: Steps between timepoints that differ by more than this fraction of their median are
#: said to be uneven (with a warning; the median is used).
UNEVEN_STEPS = 0.1


@dataclass(frozen=True)
class IndexFile:
    """What a microscope's index file records about the images beside it."""

    #: The index file's name.
    name: str
    #: Channel names by the token the file names write for the channel (``ch1``, ``w2``).
    channel_names: dict[str, str] = field(default_factory=dict)
    #: The ``(y, x)`` pixel size in micrometres (None: not recorded).
    pixel_size: tuple[float, float] | None = None
    #: Hours between consecutive timepoints (None: not recorded, or one timepoint).
    time_interval_h: float | None = None
    #: The names of the image files it lists (empty: it lists none).
    files: frozenset[str] = frozenset()
    #: The number of timepoints it says were taken (None: not said).
    timepoints: int | None = None
    #: The wells it says were taken, as ``(row letters, column number)`` (None: not said).
    wells: frozenset[tuple[str, str]] | None = None
    #: The number of sites (fields) it says were taken in each well (None: not said).
    sites: int | None = None
    #: The channels it says were taken, by their file-name token (None: not said).
    channels: frozenset[str] | None = None


def find_index(folder: str | Path) -> IndexFile | None:
    """Return the index file of a folder of exported images, read (None: it has none).

    Parameters
    ----------
    folder : str or Path
        The folder of the images (Harmony's ``Images`` folder, MetaXpress's plate folder).

    Raises
    ------
    ValueError
        The folder holds index files of more than one export (a Harmony folder may hold
        several of its names: ``Index.idx.xml`` is read first), or one that cannot be read.
    """
    found = sorted(p for p in Path(folder).iterdir() if p.is_file() and (
        p.name.lower() in (*HARMONY_NAMES, CELLVOYAGER_DETAIL) or p.suffix.lower() == ".htd"))
    harmony = sorted((p for p in found if p.name.lower() in HARMONY_NAMES),
                     key=lambda p: HARMONY_NAMES.index(p.name.lower()))
    found = [p for p in found if p not in harmony[1:]]  # Harmony's: Index.idx.xml first
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(f"{', '.join(p.name for p in found)}: expected one index file in "
                         f"{Path(folder).name}; found {len(found)} (move the others out)")
    path = found[0]
    if path.suffix.lower() == ".htd":
        return read_htd(path)
    if path.name.lower() == CELLVOYAGER_DETAIL:
        return read_cellvoyager(path)
    return read_harmony_index(path)


def read_htd(path: str | Path) -> IndexFile:
    """Read a MetaXpress ``.HTD`` file: the names of its wavelengths (``w1``, ``w2``...).

    Raises
    ------
    ValueError
        The file is not an HTD file (it does not start with ``"HTSInfoFile"``).
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or not lines[0].lstrip("\ufeff").startswith('"HTSInfoFile"'):
        raise ValueError(f"{path.name}: expected a MetaXpress HTD file starting with "
                         f'"HTSInfoFile"; found {lines[0][:40]!r}' if lines else
                         f"{path.name}: expected a MetaXpress HTD file; found an empty file")
    values = {row[0].strip().lower(): [v.strip() for v in row[1:]]
              for row in csv.reader(lines[1:], skipinitialspace=True) if row}
    names = {f"w{int(key[8:])}": v[0] for key, v in values.items()
             if key.startswith("wavename") and key[8:].isdigit() and v and v[0]}
    return IndexFile(path.name, names, timepoints=_htd_number(values, "timepoints"),
                     wells=_htd_wells(values), sites=_htd_sites(values),
                     channels=_htd_waves(values))


def _htd_number(values: dict[str, list[str]], key: str) -> int | None:
    value = (values.get(key) or [""])[0]
    return int(value) if value.isdigit() else None


def _htd_flag(values: dict[str, list[str]], key: str) -> bool | None:
    value = (values.get(key) or [""])[0].upper()
    return {"TRUE": True, "FALSE": False}.get(value)


def _htd_selected(values: dict[str, list[str]], key: str, rows: int, cols: int
                  ) -> list[tuple[int, int]] | None:
    """``(row, column)`` (from 1) of the ``TRUE`` cells of ``<key><row>`` lines (None: none)."""
    if not any(f"{key}{r}" in values for r in range(1, rows + 1)):
        return None
    return [(r, c) for r in range(1, rows + 1)
            for c, v in enumerate(values.get(f"{key}{r}", [])[:cols], 1) if v.upper() == "TRUE"]


def _htd_wells(values: dict[str, list[str]]) -> frozenset[tuple[str, str]] | None:
    rows, cols = _htd_number(values, "ywells"), _htd_number(values, "xwells")
    cells = _htd_selected(values, "wellsselection", rows or 0, cols or 0)
    if cells is None:
        return None
    return frozenset((row_letters(r), str(c)) for r, c in cells)


def _htd_sites(values: dict[str, list[str]]) -> int | None:
    sites = _htd_flag(values, "sites")
    if sites is None:
        return None
    if not sites:
        return 1
    xs, ys = _htd_number(values, "xsites"), _htd_number(values, "ysites")
    if not xs or not ys:
        return None
    cells = _htd_selected(values, "siteselection", ys, xs)
    return xs * ys if cells is None else len(cells)


def _htd_waves(values: dict[str, list[str]]) -> frozenset[str] | None:
    if _htd_flag(values, "waves") is False:
        return None  # one wavelength: its files have no w<n> in their names
    n = _htd_number(values, "nwavelengths")
    if not n:
        return None
    return frozenset(f"w{k}" for k in range(1, n + 1)
                     if _htd_number(values, f"wavecollect{k}") != 0)


def read_harmony_index(path: str | Path) -> IndexFile:
    """Read a Harmony ``Index.idx.xml``: channel names, pixel size, time between timepoints.

    Raises
    ------
    ValueError
        The file is not XML, or records different pixel sizes for its images (one plate,
        one pixel size), or different names for one channel.
    """
    path = Path(path)
    root = _xml(path)
    names: dict[str, str] = {}
    sizes: set[tuple[float, float]] = set()
    times: dict[tuple[str, ...], dict[int, float]] = defaultdict(dict)
    files = set()
    for element in root.iter():
        tag = _tag(element)
        if tag not in ("Image", "Entry") or element.get("id") is not None:
            continue  # a well's reference to an image, not an image
        values = {_tag(c): c for c in element}
        url, state = _text(values.get("URL")), _text(values.get("State"))
        if tag == "Image" and url and state in (None, "Ok"):  # a failed image has no file
            files.add(url.rsplit("/", 1)[-1])
        channel = element.get("ChannelID") or _text(values.get("ChannelID"))
        name = _text(values.get("ChannelName"))
        if channel and name:
            key = f"ch{int(channel)}"
            if names.setdefault(key, name) != name:
                raise ValueError(f"{path.name} names channel {channel} {names[key]!r} and "
                                 f"{name!r}: a channel has one name")
        size = _size(values.get("ImageResolutionY")), _size(values.get("ImageResolutionX"))
        if size[0] is not None and size[1] is not None:
            sizes.add((round(size[0], 9), round(size[1], 9)))
        if tag == "Image" and values.get("TimepointID") is not None:
            seconds = _seconds(values)
            if seconds is not None:
                where = tuple(_text(values.get(k)) or "" for k in (
                    "Row", "Col", "FieldID", "PlaneID", "ChannelID"))
                times[where][int(_text(values["TimepointID"]) or 0)] = seconds
    if len(sizes) > 1:
        found = " and ".join(f"{y:g} x {x:g}" for y, x in sorted(sizes)[:2])
        raise ValueError(f"{path.name} records pixel sizes {found} um: a plate has one; give "
                         "--pixel-size")
    return IndexFile(path.name, names, next(iter(sizes), None), _interval(times, path.name),
                     frozenset(files))


def read_cellvoyager(path: str | Path) -> IndexFile:
    """Read a CellVoyager ``MeasurementDetail.mrf`` (and the ``.mlf`` beside it).

    Returns
    -------
    IndexFile
        The pixel size of its channels and the hours between timepoints of its images
        (from ``MeasurementData.mlf`` where it is beside; None without it); no names.

    Raises
    ------
    ValueError
        A file is not XML, or its channels have different pixel sizes.
    """
    path = Path(path)
    sizes = set()
    for element in _xml(path).iter():
        if _tag(element) == "MeasurementChannel":
            values = _attributes(element)
            try:
                size = (float(values["VerticalPixelDimension"]),
                        float(values["HorizontalPixelDimension"]))
            except (KeyError, ValueError):
                continue
            if min(size) > 0:
                sizes.add((round(size[0], 9), round(size[1], 9)))
    if len(sizes) > 1:
        found = " and ".join(f"{y:g} x {x:g}" for y, x in sorted(sizes)[:2])
        raise ValueError(f"{path.name} records pixel sizes {found} um for its channels: a "
                         "plate has one; give --pixel-size")
    data = next((p for p in path.parent.iterdir() if p.name.lower() == CELLVOYAGER_DATA), None)
    times: dict[tuple[str, ...], dict[int, float]] = defaultdict(dict)
    files = set()
    for element in _xml(data).iter() if data is not None else ():
        values = _attributes(element)
        if _tag(element) != "MeasurementRecord" or values.get("Type") != "IMG":
            continue  # "ERR": an acquisition error
        if element.text and element.text.strip():
            files.add(element.text.strip().rsplit("/", 1)[-1])
        seconds = _timestamp(values.get("Time"))
        if seconds is not None and values.get("TimePoint", "").isdigit():
            where = tuple(values.get(k, "") for k in ("Row", "Column", "FieldIndex", "ZIndex",
                                                       "Ch"))
            times[where][int(values["TimePoint"])] = seconds
    return IndexFile(path.name, {}, next(iter(sizes), None),
                     _interval(times, data.name) if data is not None else None, frozenset(files))


def _xml(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path.name}: not a readable index file ({err})") from None


def _attributes(element: ET.Element) -> dict[str, str]:
    """Return an element's attributes by their local names (``bts:Ch`` is ``Ch``)."""
    return {k.rsplit("}", 1)[-1]: v for k, v in element.attrib.items()}


def _tag(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _text(element: ET.Element | None) -> str | None:
    text = element.text.strip() if element is not None and element.text else ""
    return text or None


def _size(element: ET.Element | None) -> float | None:
    """Return a resolution element in micrometres (metres unless its ``Unit`` says)."""
    text = _text(element)
    if element is None or text is None:
        return None
    scale = UM_PER_UNIT.get(element.get("Unit", "m").strip().lower())
    try:
        value = float(text)
    except ValueError:
        return None
    return value * scale if scale is not None and value > 0 else None


def _seconds(values: dict[str, ET.Element]) -> float | None:
    """Return when an image was taken, in seconds (from the offset, else the time)."""
    offset = _text(values.get("MeasurementTimeOffset"))
    if offset is not None:
        try:
            return float(offset)
        except ValueError:
            pass
    return _timestamp(_text(values.get("AbsTime")))


def _timestamp(stamp: str | None) -> float | None:
    """Return an ISO 8601 time in seconds (None: none, or not such a time)."""
    try:
        return datetime.fromisoformat(stamp).timestamp() if stamp else None
    except ValueError:
        return None


def _interval(times: dict[tuple[str, ...], dict[int, float]], name: str) -> float | None:
    """Return the median hours per timepoint step over every image's series (None: none)."""
    steps = []
    for by_t in times.values():
        ts = sorted(by_t)
        steps += [(by_t[b] - by_t[a]) / (b - a) / 3600 for a, b in zip(ts, ts[1:], strict=False)]
    if not steps:
        return None
    median = statistics.median(steps)
    if median <= 0:
        return None
    if max(steps) - min(steps) > UNEVEN_STEPS * median:
        logger.warning("%s: the timepoints are not evenly spaced (%.3g to %.3g h apart): "
                       "%.3g h (the median) is written", name, min(steps), max(steps), median)
    return median

"""What an image file records about itself: its pixel size and its channels' names.

Microscopes and their software write the physical pixel size into the files they export:
OME-TIFF as ``PhysicalSizeY`` / ``PhysicalSizeX`` (with their units) in the OME-XML,
ImageJ (Fiji) as the TIFF resolution in pixels per ``unit`` of its metadata, other
MetaSeries (MetaXpress) as its spatial calibration in the TIFF description, other
software as the TIFF resolution in pixels per centimetre. A resolution per inch is a
print setting (72 dpi by default), not a microscope's, and PNG files carry none of
these: for them nothing is returned. Channel names come from the OME-XML's ``Channel``
``Name`` attributes, ImageJ's ``Labels`` or, for a MetaSeries file of one channel, its
illumination setting (``_IllumSetting_``: the wavelength's name in MetaXpress). The
header is read once for all three (:func:`read_header`).

Examples
--------
>>> import tempfile, numpy as np, tifffile
>>> path = tempfile.mkdtemp() + "/field.tif"
>>> tifffile.imwrite(path, np.zeros((2, 64, 64), "uint16"), imagej=True,
...                  resolution=(1 / 0.65, 1 / 0.65),
...                  metadata={"unit": "um", "axes": "CYX", "Labels": ["GFP", "mCherry"]})
>>> [round(v, 6) for v in recorded_pixel_size(path)]
[0.65, 0.65]
>>> recorded_channel_names(path)
('GFP', 'mCherry')
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: only an import reads image files
    import tifffile

__all__ = ["FileHeader", "read_header", "recorded_pixel_size", "recorded_channel_names",
           "UM_PER_UNIT"]

#: Micrometres per unit of length, by the names files use for them.
UM_PER_UNIT: dict[str, float] = {
    "um": 1.0, "µm": 1.0, "\u03bcm": 1.0, "micron": 1.0, "microns": 1.0,
    "micrometer": 1.0, "micrometre": 1.0, "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3,
    "mm": 1e3, "millimeter": 1e3, "millimetre": 1e3, "cm": 1e4, "centimeter": 1e4,
    "centimetre": 1e4, "m": 1e6, "meter": 1e6, "metre": 1e6,
}
#: TIFF ResolutionUnit of centimetres.
_CENTIMETER = 3


def _um(value: Any, unit: str) -> float | None:
    """Return ``value`` in ``unit`` as micrometres (None: not a positive number or unit)."""
    scale = UM_PER_UNIT.get(unit.strip().replace("\\u00B5", "µ").lower())
    try:
        size = float(value)
    except (TypeError, ValueError):
        return None
    return size * scale if scale is not None and size > 0 else None


def _per_pixel(resolution: Any) -> float | None:
    """Return units per pixel from a TIFF resolution (pixels per unit, a rational)."""
    try:
        num, den = resolution
        return float(den) / float(num) if float(num) > 0 and float(den) > 0 else None
    except (TypeError, ValueError):
        return None


def _ome_pixels(xml: str) -> ET.Element | None:
    """Return the first image's ``Pixels`` element of an OME-XML text (None: none)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    return next((e for e in root.iter() if _tag(e) == "Pixels"), None)


def _tag(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _ome(xml: str) -> tuple[float, float] | None:
    pixels = _ome_pixels(xml)
    if pixels is None:
        return None
    y = _um(pixels.get("PhysicalSizeY"), pixels.get("PhysicalSizeYUnit", "µm"))
    x = _um(pixels.get("PhysicalSizeX"), pixels.get("PhysicalSizeXUnit", "µm"))
    return (y, x) if y is not None and x is not None else None


@dataclass(frozen=True)
class FileHeader:
    """What an image file's header says: its array's shape, pixel size and channel names."""

    #: The array's shape (the first series of a TIFF).
    shape: tuple[int, ...]
    #: The ``(y, x)`` pixel size in micrometres, or None where the file records none.
    pixel_size: tuple[float, float] | None
    #: The channels' names in order, or None where the file does not name each.
    channel_names: tuple[str, ...] | None


def read_header(path: str | Path) -> FileHeader:
    """Read an image file's header once: its shape, pixel size and channel names.

    Parameters
    ----------
    path : str or Path
        A TIFF or PNG file (only its header is read).

    Returns
    -------
    FileHeader
        The pixel size from the OME-XML of an OME-TIFF, a MetaSeries (MetaXpress) TIFF's
        spatial calibration, the resolution and unit of an ImageJ TIFF, or a TIFF
        resolution in pixels per centimetre; the channel names from the OME-XML, ImageJ's
        ``Labels`` or a MetaSeries TIFF's illumination setting (one channel). PNG files
        record neither.

    Raises
    ------
    ValueError
        The file is not a readable TIFF or PNG image.
    """
    import imageio.v3 as iio
    import tifffile

    path = Path(path)
    try:
        if path.suffix.lower() not in (".tif", ".tiff"):
            return FileHeader(tuple(int(n) for n in iio.improps(path).shape), None, None)
        with tifffile.TiffFile(path) as tif:
            return FileHeader(tuple(int(n) for n in tif.series[0].shape), _pixel_size(tif),
                              _channel_names(tif))
    except Exception as err:  # noqa: BLE001 - any unreadable file is bad input
        raise ValueError(f"{path.name}: not a readable TIFF/PNG image ({err})") from None


def recorded_pixel_size(path: str | Path) -> tuple[float, float] | None:
    """Return the ``(y, x)`` pixel size in micrometres an image file records, or None.

    See :func:`read_header` for where it is read.
    """
    return read_header(path).pixel_size


def recorded_channel_names(path: str | Path) -> tuple[str, ...] | None:
    """Return the names an image file gives its channels, in order, or None.

    See :func:`read_header` for where they are read.
    """
    return read_header(path).channel_names


def _metaseries(tif: tifffile.TiffFile) -> dict[str, Any] | None:
    """Return a MetaSeries TIFF's plane information (None: not such a file)."""
    if not tif.is_metaseries:
        return None
    try:
        meta = tif.metaseries_metadata or {}
    except (ValueError, ET.ParseError):
        return None
    info = meta.get("PlaneInfo")
    return info if isinstance(info, dict) else None


def _pixel_size(tif: tifffile.TiffFile) -> tuple[float, float] | None:
    if tif.is_ome and tif.ome_metadata:
        return _ome(tif.ome_metadata)
    plane = _metaseries(tif)
    if plane is not None:
        if not plane.get("spatial-calibration-state", True):
            return None  # the acquisition says it was not calibrated
        unit = str(plane.get("spatial-calibration-units", ""))
        y = _um(plane.get("spatial-calibration-y"), unit)
        x = _um(plane.get("spatial-calibration-x"), unit)
        return (y, x) if y is not None and x is not None else None
    tags = tif.pages.first.tags
    yres, xres = tags.get("YResolution"), tags.get("XResolution")
    if yres is None or xres is None:
        return None
    y, x = _per_pixel(yres.value), _per_pixel(xres.value)
    if y is None or x is None:
        return None
    if tif.is_imagej:
        unit = str((tif.imagej_metadata or {}).get("unit", ""))
        sy, sx = _um(y, unit), _um(x, unit)
        return (sy, sx) if sy is not None and sx is not None else None
    unit_tag = tags.get("ResolutionUnit")
    if unit_tag is not None and int(unit_tag.value) == _CENTIMETER:
        return (y * 1e4, x * 1e4)
    return None


def _channel_names(tif: tifffile.TiffFile) -> tuple[str, ...] | None:
    names: list[Any]
    if tif.is_ome and tif.ome_metadata:
        pixels = _ome_pixels(tif.ome_metadata)
        if pixels is None:
            return None
        names = [c.get("Name") for c in pixels if _tag(c) == "Channel"]
    elif tif.is_imagej:
        meta = tif.imagej_metadata or {}
        labels = meta.get("Labels")
        if not isinstance(labels, list | tuple) or len(labels) != meta.get("channels"):
            return None  # no labels, or one per plane of a z-stack or time-lapse
        names = [str(n) for n in labels]
    else:
        plane = _metaseries(tif)
        if plane is None or len(tif.series[0].shape) != 2:
            return None
        names = [plane.get("_IllumSetting_")]
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        return None
    return tuple(str(n).strip() for n in names)

"""Import a folder of TIFF/PNG images (one file per field) into an OME-Zarr plate."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile

from ._location import as_location
from ._writer import create_plate

__all__ = ["import_folder", "scan_folder", "FieldFile"]

logger = logging.getLogger(__name__)

_EXTENSIONS = (".tif", ".tiff", ".png")
_WELL_RE = re.compile(
    r"^(?P<row>[A-Za-z]{1,2})[-_]?(?P<col>\d{1,3})"
    r"(?:[-_](?:f|s|field)?(?P<field>\d+))?(?:[-_].*)?$"
)


@dataclass(frozen=True)
class FieldFile:
    """One image file and where it goes in the plate."""

    image: Path
    masks: Path | None
    row: str
    col: str
    field: int


def _read(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        return np.asarray(tifffile.imread(path))
    return np.asarray(iio.imread(path))


def scan_folder(folder: str | Path, *, mask_suffix: str = "_masks") -> list[FieldFile]:
    """List the image files of a folder and assign each to a well and field.

    Files named like ``B03_f2.tif`` / ``B3-1.png`` go to well B/3, field 2 / 1;
    other files are placed in row A, one well per file, in name order. A file
    ``<stem><mask_suffix>.<ext>`` next to an image holds its labels.

    Parameters
    ----------
    folder : str or Path
    mask_suffix : str

    Returns
    -------
    list of FieldFile

    Raises
    ------
    FileNotFoundError
        If the folder does not exist or holds no TIFF/PNG image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"expected a folder of TIFF/PNG images at {folder}; not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _EXTENSIONS)
    images = [p for p in files if not p.stem.endswith(mask_suffix)]
    if not images:
        raise FileNotFoundError(
            f"expected TIFF/PNG images ({', '.join(_EXTENSIONS)}) in {folder}; found none"
        )
    masks = {p.stem[: -len(mask_suffix)]: p for p in files if p.stem.endswith(mask_suffix)}
    # strip a common image suffix such as "_img" so "095_img.png" pairs with "095_masks.png"
    parsed = [_WELL_RE.match(p.stem) for p in images]
    out: list[FieldFile] = []
    use_names = all(parsed)
    for i, (path, m) in enumerate(zip(images, parsed, strict=True)):
        stem = path.stem
        mask = masks.get(stem) or masks.get(re.sub(r"[-_](img|image)$", "", stem))
        if use_names and m is not None:
            row, col = m["row"].upper(), str(int(m["col"]))
            field = int(m["field"]) if m["field"] else 0
        else:
            row, col, field = "A", str(i + 1), 0
        out.append(FieldFile(path, mask, row, col, field))
    seen: dict[tuple[str, str, int], Path] = {}
    for f in out:
        key = (f.row, f.col, f.field)
        if key in seen:
            raise ValueError(f"{f.image.name} and {seen[key].name} both map to well "
                             f"{f.row}/{f.col} field {f.field}")
        seen[key] = f.image
    return out


def _to_cyx(data: np.ndarray, path: Path) -> np.ndarray:
    if data.ndim == 2:
        return data[None]
    if data.ndim == 3:
        # channels last (RGB PNG, most TIFF exports) or first: the small axis is c
        if data.shape[-1] <= 8 and data.shape[0] > 8:
            return np.moveaxis(data, -1, 0)
        if data.shape[0] <= 8:
            return data
    raise ValueError(f"{path.name}: expected a 2D image or a 3D image with up to 8 channels; "
                     f"found shape {data.shape}")


def import_folder(
    folder: str | Path,
    out: str | Path,
    *,
    channels: Sequence[int] | None = None,
    channel_names: Sequence[str] | None = None,
    mask_label: str = "gt_cyto",
    mask_suffix: str = "_masks",
    ngff_version: str = "0.4",
    pixel_size_um: float = 1.0,
    name: str | None = None,
) -> Path | str:
    """Import a folder of TIFF/PNG fields (and ``*_masks`` label files) as an OME-Zarr plate.

    Parameters
    ----------
    folder : str or Path
        Folder with one image file per field (2D, or 3D with channels first or last).
    out : str or Path
        New plate: a local path or a URL such as ``s3://bucket/plate.zarr``.
    channels : sequence of int, optional
        Channel indices to keep (default: all).
    channel_names : sequence of str, optional
        Names of the kept channels.
    mask_label : str
        Label image name for the ``*_masks`` files.
    mask_suffix : str
    ngff_version : str
    pixel_size_um : float
    name : str, optional

    Returns
    -------
    Path or str
        The plate: a Path for a local plate, the URL for an object store.

    Raises
    ------
    FileNotFoundError
        If the folder is missing or empty.
    ValueError
        If images disagree in shape or channels, a mask does not match its image, or a
        channel index does not exist.
    """
    entries = scan_folder(folder, mask_suffix=mask_suffix)
    rows = sorted({e.row for e in entries}, key=lambda r: (len(r), r))
    cols = sorted({e.col for e in entries}, key=int)
    ref_shape: tuple[int, ...] | None = None
    with create_plate(out, rows=rows, columns=cols, ngff_version=ngff_version,
                      name=name or Path(folder).name) as plate:
        for e in entries:
            img = _to_cyx(_read(e.image), e.image)
            if channels is not None:
                bad = [c for c in channels if not 0 <= c < img.shape[0]]
                if bad:
                    raise ValueError(f"{e.image.name} has {img.shape[0]} channels; "
                                     f"channel index(es) {bad} do not exist")
                img = img[list(channels)]
            if ref_shape is not None and img.shape[0] != ref_shape[0]:
                raise ValueError(f"{e.image.name} has {img.shape[0]} channels; "
                                 f"earlier files have {ref_shape[0]}")
            ref_shape = img.shape
            labels = {}
            if e.masks is not None:
                mask = np.asarray(_read(e.masks))
                if mask.shape != img.shape[1:]:
                    raise ValueError(f"{e.masks.name} has shape {mask.shape}; its image "
                                     f"{e.image.name} is {img.shape[1:]} (y, x)")
                labels[mask_label] = mask.astype(np.uint32)
            plate.write_field(e.row, e.col, e.field, img, axes="cyx",
                              channel_names=channel_names,
                              pixel_size_um=(pixel_size_um, pixel_size_um), labels=labels)
            logger.info("imported %s -> %s/%s/%d", e.image.name, e.row, e.col, e.field)
    return as_location(out)

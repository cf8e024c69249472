"""Import a folder of TIFF/PNG images into an OME-Zarr plate: check, read, write.

Which files make each field is :mod:`._field_files`' (:func:`scan_folder`); what the files
record about themselves (pixel size, channel names) is :mod:`._file_metadata`'; what a
microscope's index file beside them records is :mod:`._index_files`'. Each file's header
is read once (:class:`Headers`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .. import limits
from ._field_files import TIMEPOINT_FOLDER, FieldFile, scan_folder
from ._file_metadata import FileHeader, read_header
from ._index_files import IndexFile, find_index
from ._location import as_location
from ._plate import check_name
from ._writer import PlateWriter, append_timepoints, create_plate

__all__ = ["import_folder", "folder_pixel_size", "folder_channel_names", "Headers",
           "ASSUMED_PIXEL_SIZE", "ASSUMED_TIME_INTERVAL"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Pixel size (um) written when neither the caller nor the files give one (with a warning).
ASSUMED_PIXEL_SIZE = 1.0
#: Hours between timepoints written when the caller gives none (with a warning where the
#: fields are time-lapses).
ASSUMED_TIME_INTERVAL = 1.0
#: Fields read and written at once, each in a thread (1: one after the other). Reading,
#: compressing and writing release the GIL; each field in flight is held in memory.
IMPORT_THREADS = 4


def _read(path: Path) -> np.ndarray:
    import imageio.v3 as iio
    import tifffile

    if path.suffix.lower() in (".tif", ".tiff"):
        return np.asarray(tifffile.imread(path))
    return np.asarray(iio.imread(path))


class Headers(dict[Path, FileHeader]):
    """The headers of an import's files, each read once (:func:`read_header`) when asked."""

    def __missing__(self, path: Path) -> FileHeader:
        self[path] = header = read_header(path)
        return header

    def shape(self, path: Path) -> tuple[int, ...]:
        """Return the shape of an image file (the pixels are not read)."""
        return self[path].shape


def _channel_axis(shape: tuple[int, ...], path: Path) -> int | None:
    """Return the axis of the channels in a file's array (None: a 2D image)."""
    if len(shape) == 2:
        return None
    if len(shape) == 3:
        # channels last (RGB PNG, most TIFF exports) or first: the small axis is c
        if shape[-1] <= 8 and shape[0] > 8:
            return 2
        if shape[0] <= 8:
            return 0
    raise ValueError(f"{path.name}: expected a 2D image or a 3D image with up to 8 channels; "
                     f"found shape {shape}")


def _cyx_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int, int]:
    axis = _channel_axis(shape, path)
    if axis is None:
        return (1, shape[0], shape[1])
    rest = [n for i, n in enumerate(shape) if i != axis]
    return (shape[axis], rest[0], rest[1])


def _field_shape(entry: FieldFile, headers: Headers) -> tuple[int, int, int]:
    """Return the ``(c, y, x)`` shape of a field (each timepoint's), from its files' headers."""
    shapes = [_timepoint_shape(entry, files, headers)
              for files in entry.timepoint_files or (None,)]
    for files, shape in zip(entry.timepoint_files, shapes, strict=False):
        if shape != shapes[0]:
            raise ValueError(f"{files[0].name} is {shape} (c, y, x) and {entry.image.name} "
                             f"{shapes[0]}: the timepoints of a field have one size")
    return shapes[0]


def _timepoint_shape(entry: FieldFile, files: tuple[Path, ...] | None,
                     headers: Headers) -> tuple[int, int, int]:
    """Return the ``(c, y, x)`` shape of one timepoint's files (None: the field's only)."""
    files = files or entry.channel_files or (entry.image,)
    if not entry.channel_files:
        return _cyx_shape(_slot_shape(entry, files[0], headers), files[0])
    shapes = [_slot_shape(entry, p, headers) for p in files]
    for path, shape, label in zip(files, shapes, entry.channel_labels, strict=True):
        if len(shape) != 2:
            raise ValueError(f"{path.name}: expected one channel ({label}, as its name says) "
                             f"in a 2D image; found shape {shape}")
        if shape != shapes[0]:
            raise ValueError(f"{path.name} is {shape} (y, x) and {files[0].name} "
                             f"{shapes[0]}: the channels of a field have one size")
    return (len(shapes), *shapes[0])


def _slot_shape(entry: FieldFile, path: Path, headers: Headers) -> tuple[int, ...]:
    """Return the shape of a file, checked to be that of each of its planes' files."""
    shape = headers.shape(path)
    for plane in entry.planes(path)[1:]:
        if headers.shape(plane) != shape:
            raise ValueError(f"{plane.name} is {headers.shape(plane)} and {path.name} {shape}: "
                             "the planes of a z-stack have one size")
    return shape


def _read_slot(entry: FieldFile, path: Path) -> np.ndarray:
    """Read a file, or the maximum intensity projection of its planes' files."""
    planes = entry.planes(path)
    image = _read(planes[0]) if len(planes) == 1 else np.array(_read(planes[0]))
    for plane in planes[1:]:  # one plane in memory besides the projection
        np.maximum(image, _read(plane), out=image)
    return image


def _field_image(entry: FieldFile, t: int = 0) -> np.ndarray:
    """Read a field's timepoint ``t`` (its ``t``-th in order) as ``(c, y, x)``."""
    files = entry.timepoint_files[t] if entry.timepoint_files else (
        entry.channel_files or (entry.image,))
    if not entry.channel_files:
        return _to_cyx(_read_slot(entry, files[0]), files[0])
    return np.stack([_read_slot(entry, p) for p in files])


def _import_field(plate: PlateWriter, entry: FieldFile, kept: list[int] | slice,
                  mask_label: str, folder: Path, **meta: Any) -> None:
    """Read one field's files and write it (every timepoint) into the plate being written."""
    labels = {} if entry.masks is None else {
        mask_label: np.asarray(_read(entry.masks)).astype(np.uint32)}
    timed = bool(entry.timepoint_files)
    image = _field_image(entry)[kept]
    info = plate.write_field(entry.row, entry.col, entry.field, image[None] if timed else image,
                             axes="tcyx" if timed else "cyx", labels=labels,
                             source=_source(entry, folder), **meta)
    for t in range(1, len(entry.timepoint_files)):  # one timepoint in memory at a time
        append_timepoints(info, _field_image(entry, t)[kept][None])
    logger.info("imported %s -> %s/%s/%d", entry.image.name, entry.row, entry.col, entry.field)


def _in_threads(call: Callable[[FieldFile], None], entries: Sequence[FieldFile]) -> None:
    """Call ``call(entry)`` for every field in :data:`IMPORT_THREADS` threads.

    A field is read when its thread takes it, so at most that many fields are in memory.
    An error stops the import: the fields not begun are cancelled, those begun end, and
    the error is raised once no thread writes any more (the plate is then discarded whole).
    """
    if IMPORT_THREADS <= 1:
        for e in entries:
            call(e)
        return
    with ThreadPoolExecutor(IMPORT_THREADS, thread_name_prefix="import") as pool:
        futures = [pool.submit(call, e) for e in entries]
        try:
            for future in futures:
                future.result()  # the first error, in field order, stops the import here
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # no thread writes after this
            raise


def _to_cyx(data: np.ndarray, path: Path) -> np.ndarray:
    axis = _channel_axis(data.shape, path)
    if axis is None:
        return data[None]
    return np.moveaxis(data, axis, 0) if axis else data


def folder_pixel_size(entries: Sequence[FieldFile], headers: Headers | None = None
                      ) -> tuple[float, float] | None:
    """Return the ``(y, x)`` pixel size (um) the image files record, or None if none does.

    Every file must record the same one (or none may): a plate has one pixel size.

    Raises
    ------
    ValueError
        Some files record a pixel size and others none, or they record different ones.
    """
    headers = Headers() if headers is None else headers
    return _agreed({e.image.name: headers[e.image].pixel_size for e in entries},
                   _same_size, lambda v: f"{_yx(v)} um", "the pixel size", "--pixel-size")


def folder_channel_names(entries: Sequence[FieldFile], headers: Headers | None = None
                         ) -> tuple[str, ...] | None:
    """Return the channel names the image files record (all channels), or None if none does.

    A field's names are those of its file, or of its channel files (one name each) where
    it has one file per channel. Every field must name its channels the same (or none
    may): a plate has one set of channels, and names that differ say that the files do
    not hold them in one order.

    Raises
    ------
    ValueError
        Some files name their channels and others not, or they name them differently.
    """
    headers = Headers() if headers is None else headers

    def names(entry: FieldFile) -> tuple[str, ...] | None:
        if not entry.channel_files:
            return headers[entry.image].channel_names
        each = [headers[p].channel_names for p in entry.channel_files]
        return (tuple(n[0] for n in each if n is not None)
                if all(n is not None and len(n) == 1 for n in each) else None)

    return _agreed({e.image.name: names(e) for e in entries},
                   lambda a, b: a == b, ", ".join, "the channel names", "--channel-names")


def _same_size(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return bool(np.allclose(a, b, rtol=1e-6, atol=0))


def _agreed(found: dict[str, T | None], same: Callable[[T, T], bool], text: Callable[[T], str],
            what: str, option: str) -> T | None:
    """Return what every file records alike (None: no file records it); raise if they differ."""
    known = [(name, value) for name, value in found.items() if value is not None]
    if not known:
        return None
    first_name, first = known[0]
    for name, value in found.items():
        if value is None or not same(value, first):
            raise ValueError(f"{first_name} records {what} {text(first)} and {name} "
                             f"{'none' if value is None else text(value)}: a plate has one; "
                             f"give {option}")
    return first


def _channel_names(entries: Sequence[FieldFile], channels: Sequence[int] | None,
                   given: Sequence[str] | None, index: IndexFile | None,
                   headers: Headers) -> tuple[str, ...] | None:
    """Return the kept channels' names (None: none known).

    The caller's, else the index file's (which must agree with the files' own where both
    name them), else the files' own, else the channel files' labels (``w1``).
    """
    if given is not None:
        return tuple(str(n) for n in given)
    labels = entries[0].channel_labels
    indexed = index.channel_names if index is not None else {}
    if labels and all(label.lower() in indexed for label in labels):
        names: tuple[str, ...] | None = tuple(indexed[label.lower()] for label in labels)
        try:
            recorded = folder_channel_names(entries, headers)
        except ValueError:  # the files disagree among themselves: the index file decides
            recorded = None
        if recorded is not None and [n.strip().lower() for n in recorded] != [
                n.strip().lower() for n in names]:
            raise ValueError(f"{index.name if index else ''} names the channels "
                             f"{', '.join(f'{k}={v}' for k, v in zip(labels, names, strict=True))}"
                             f" and the files record {', '.join(recorded)}: channels in another "
                             "order than the file names say? Give --channel-names")
    else:
        # one file per channel: named as the file names write them where the files do not
        names = folder_channel_names(entries, headers) or labels or None
    if names is None:
        return None
    n_channels = _field_shape(entries[0], headers)[0]
    if len(names) != n_channels:
        logger.warning("%s names %d channels and holds %d: its names are not used",
                       entries[0].image.name, len(names), n_channels)
        return None
    kept = tuple(names[i] for i in channels) if channels is not None else names
    if len(set(kept)) != len(kept):
        logger.warning("the files name two channels alike (%s): their names are not used",
                       ", ".join(kept))
        return None
    return kept


def _time_interval(entries: Sequence[FieldFile], given: float | None,
                   index: IndexFile | None) -> float:
    """Return the hours between timepoints: the caller's, the index file's, else assumed."""
    timed = any(e.timepoint_files for e in entries)
    if given is None and timed and index is not None and index.time_interval_h is not None:
        given = index.time_interval_h
    elif given is None:
        if timed:
            logger.warning("the file names give timepoints but not the time between them: "
                           "%g h assumed (speeds and times in the tables depend on it; give "
                           "--time-interval)", ASSUMED_TIME_INTERVAL)
        return ASSUMED_TIME_INTERVAL
    problem = limits.number_problem(given, limits.TIME_INTERVAL, unit="h")
    if problem is not None:
        raise ValueError(f"time interval: {problem}")
    return float(given)


def _check_complete(entries: Sequence[FieldFile], index: IndexFile | None, *,
                    all_timepoints: bool = True) -> None:
    """Warn where the index file lists images, or timepoints, that the folder lacks.

    ``all_timepoints`` False: the folder is one timepoint's, chosen (MetaXpress's
    ``TimePoint_<n>``); the index file's other timepoints are not missing from it.
    """
    if index is None:
        return
    found = {p.name for e in entries for p in e.files}
    missing = sorted(index.files - found)
    if missing:
        logger.warning("%s lists %d image files and %d of them are not in the folder (%s): "
                       "the plate is imported without them (an incomplete copy of the "
                       "export?)", index.name, len(index.files), len(missing), _first(missing))
    taken = max((len(e.timepoint_files) or 1 for e in entries), default=1)
    if all_timepoints and index.timepoints is not None and taken < index.timepoints:
        logger.warning("%s says %d timepoints were taken and the folder has %d: the plate is "
                       "imported with %d (an incomplete copy of the export?)", index.name,
                       index.timepoints, taken, taken)
    _check_selection(entries, index)


def _well_key(well: tuple[str, str]) -> tuple[int, str, int]:
    return len(well[0]), well[0], int(well[1])


def _first(items: Sequence[str]) -> str:
    """Return the first three items, and ``...`` where there are more."""
    return ", ".join(items[:3]) + (", ..." if len(items) > 3 else "")


def _check_selection(entries: Sequence[FieldFile], index: IndexFile) -> None:
    """Warn where the index says wells, sites or channels were taken that the folder lacks.

    MetaXpress's HTD file names no file, only what was selected: wells, sites per well,
    wavelengths. A well whose images are there and that it does not select is said too.
    """
    sites: dict[tuple[str, str], set[int]] = {}
    for e in entries:
        sites.setdefault((e.row, e.col), set()).add(e.field)
    if index.wells is not None:
        missing = [f"{r}/{c}" for r, c in sorted(index.wells - sites.keys(), key=_well_key)]
        if missing:
            logger.warning("%s says %d wells were taken, and the folder has no image of %d "
                           "of them (%s): the plate is imported without them (an incomplete "
                           "copy of the export?)", index.name, len(index.wells), len(missing),
                           _first(missing))
        outside = [f"{r}/{c}" for r, c in sorted(sites.keys() - index.wells, key=_well_key)]
        if outside:
            logger.warning("%s does not say wells %s were taken, and the folder has images of "
                           "them: they are imported (is it the index file of these images?)",
                           index.name, _first(outside))
    if index.sites is not None:
        short = [f"{r}/{c} ({len(found)})" for (r, c), found in
                 sorted(sites.items(), key=lambda item: _well_key(item[0]))
                 if len(found) < index.sites]
        if short:
            logger.warning("%s says %d site(s) were taken in each well and %d well(s) have "
                           "fewer in the folder (%s): the plate is imported without the "
                           "missing ones (an incomplete copy of the export?)", index.name,
                           index.sites, len(short), _first(short))
    labels = {label.lower() for e in entries for label in e.channel_labels}
    if index.channels is not None and labels:
        taken = sorted(index.channels, key=lambda w: int(w[1:]))  # w1, w2, ...
        missing = [w for w in taken if w not in labels]
        if missing:
            logger.warning("%s says channels %s were taken and the folder has no file of %s: "
                           "the plate is imported without them (an incomplete copy of the "
                           "export?)", index.name, ", ".join(taken), ", ".join(missing))


def _source(entry: FieldFile, folder: Path) -> str:
    """Return the field's files as its ``source`` (the first and last of a long list)."""
    names = [p.relative_to(folder).as_posix() if p.is_relative_to(folder) else p.name
             for p in entry.files]
    text = ", ".join(names) if len(names) <= 8 else (
        f"{names[0]}, ..., {names[-1]} ({len(names)} files)")
    depth = max((len(p) for p in entry.plane_files), default=1)
    return text + (f" (maximum intensity projection of {depth} planes)" if depth > 1 else "")


def _yx(size: tuple[float, float]) -> str:
    return f"{size[0]:g}" if size[0] == size[1] else f"y={size[0]:g}, x={size[1]:g}"


def _pixel_size(entries: Sequence[FieldFile], given: float | None, index: IndexFile | None,
                headers: Headers) -> tuple[float, float]:
    """Return the ``(y, x)`` pixel size to write.

    The caller's, else the files' or the index file's (which must agree), else assumed.
    """
    if given is not None:
        size = (float(given), float(given))
    else:
        recorded = folder_pixel_size(entries, headers)
        indexed = index.pixel_size if index is not None else None
        if recorded is not None and indexed is not None and not _same_size(recorded, indexed):
            raise ValueError(f"{entries[0].image.name} records the pixel size {_yx(recorded)} "
                             f"um and {index.name if index else ''} {_yx(indexed)} um: a "
                             "plate has one; give --pixel-size")
        recorded = recorded or indexed
        if recorded is None:
            logger.warning("the image files record no pixel size: %g um assumed (areas and "
                           "positions in um are only as right as that; give --pixel-size)",
                           ASSUMED_PIXEL_SIZE)
        size = recorded or (ASSUMED_PIXEL_SIZE, ASSUMED_PIXEL_SIZE)
    for value in size:
        problem = limits.number_problem(value, limits.PIXEL_SIZE, unit="um")
        if problem is not None:
            raise ValueError(f"pixel size{'' if given is not None else ' of the files'}: "
                             f"{problem}")
    return size


def _check_entries(entries: list[FieldFile], channels: Sequence[int] | None,
                   channel_names: Sequence[str] | None, headers: Headers) -> None:
    """Check every file of an import from its header, before anything is written."""
    if channels is not None:
        if not channels:
            raise ValueError("channels: expected at least one channel index; got none")
        if len(set(channels)) != len(channels):
            raise ValueError(f"channels {list(channels)}: a channel is listed more than once")
    n_kept: int | None = None
    first: Path | None = None
    for e in entries:
        c, y, x = _field_shape(e, headers)
        if channels is not None:
            bad = [i for i in channels if not 0 <= i < c]
            if bad:
                raise ValueError(f"{e.image.name} has {c} channels; channel index(es) {bad} "
                                 "do not exist")
        kept = len(channels) if channels is not None else c
        if n_kept is not None and kept != n_kept:
            raise ValueError(f"{e.image.name} has {c} channels; {first.name if first else ''} "
                             f"has {n_kept if channels is None else 'other'} (every field of "
                             "a plate has the same channels)")
        n_kept, first = kept, first or e.image
        if e.masks is not None:
            mask = headers.shape(e.masks)
            if mask != (y, x):
                raise ValueError(f"{e.masks.name} has shape {mask}; its image "
                                 f"{e.image.name} is {(y, x)} (y, x)")
    if channel_names is not None:
        names = [str(n) for n in channel_names]
        if len(names) != n_kept:
            raise ValueError(f"channel names {names}: expected {n_kept} (one per kept "
                             f"channel); got {len(names)}")
        if len(set(names)) != len(names) or not all(names):
            raise ValueError(f"channel names {names}: expected distinct, non-empty names")


def import_folder(
    folder: str | Path,
    out: str | Path,
    *,
    channels: Sequence[int] | None = None,
    channel_names: Sequence[str] | None = None,
    mask_label: str = "gt_cyto",
    mask_suffix: str = "_masks",
    ngff_version: str = "0.4",
    pixel_size_um: float | None = None,
    time_interval_h: float | None = None,
    z_projection: str | None = None,
    name: str | None = None,
) -> Path | str:
    """Import a folder of TIFF/PNG fields (and ``*_masks`` label files) as an OME-Zarr plate.

    Every file is checked (from its header) before anything is written; a local plate
    is written into a hidden folder beside ``out`` and renamed to ``out`` once complete,
    so a failure never leaves a plate that looks valid (in an object store a failed
    import is deleted).

    Parameters
    ----------
    folder : str or Path
        Folder with one image file per field (2D, or 3D with channels first or last), or
        one 2D file per channel of each field, or a MetaXpress plate folder of
        ``TimePoint_<n>`` folders (:func:`scan_folder`). A microscope's index file in it
        (Harmony ``Index.idx.xml``, MetaXpress ``.HTD``, CellVoyager
        ``MeasurementDetail.mrf``: :func:`._index_files.find_index`)
        gives what the caller does not.
    out : str or Path
        New plate: a local path or a URL such as ``s3://bucket/plate.zarr``.
    channels : sequence of int, optional
        Channel indices to keep (default: all), each once.
    channel_names : sequence of str, optional
        Names of the kept channels (distinct). Default: the index file's, else the names
        the files record (OME-TIFF, ImageJ, MetaSeries: :func:`folder_channel_names`), else
        the channel files' tokens (``w1``), else none (``0``, ``1``, ...).
    mask_label : str
        Label image name for the ``*_masks`` files.
    mask_suffix : str
    ngff_version : str
    pixel_size_um : float, optional
        Within ``limits.PIXEL_SIZE``. Default: the one the files record (OME-TIFF,
        MetaSeries, ImageJ TIFF, a TIFF resolution per centimetre:
        :func:`folder_pixel_size`) or an index file (both: they must agree), else
        :data:`ASSUMED_PIXEL_SIZE` with a warning.
    time_interval_h : float, optional
        Hours between the timepoints of time-lapse fields (files named by timepoint),
        within ``limits.TIME_INTERVAL``; default: the index file's, else
        :data:`ASSUMED_TIME_INTERVAL`, with a warning (file names give the order of the
        timepoints, not their times).
    z_projection : {None, "max"}
        How a z-stack's planes (files named by plane) become one (:func:`scan_folder`);
        the field's ``source`` says so.
    name : str, optional

    Returns
    -------
    Path or str
        The plate: a Path for a local plate, the URL for an object store.

    Raises
    ------
    FileNotFoundError
        If the folder is missing or empty.
    FileExistsError
        If ``out`` exists.
    ValueError
        If images disagree in shape or channels, a mask does not match its image, a
        channel index does not exist, or a name or the pixel size is invalid; or the
        files record different pixel sizes or channel names (or only some do) and none
        were given, or the index file contradicts itself or the files; or the time interval
        is invalid.
    """
    entries = scan_folder(folder, mask_suffix=mask_suffix, z_projection=z_projection)
    check_name(mask_label, "mask label name")
    headers = Headers()
    _check_entries(entries, channels, channel_names, headers)
    index = find_index(folder)
    one_timepoint = index is None and TIMEPOINT_FOLDER.match(Path(folder).name) is not None
    if one_timepoint:  # MetaXpress: the HTD file is in the plate's folder
        index = find_index(Path(folder).parent)
    _check_complete(entries, index, all_timepoints=not one_timepoint)
    if index is not None:
        logger.info("read %s: channel names %s; pixel size %s; time between timepoints %s",
                    index.name, ", ".join(f"{k}={v}" for k, v in index.channel_names.items())
                    or "none", f"{_yx(index.pixel_size)} um" if index.pixel_size else "none",
                    f"{index.time_interval_h:g} h" if index.time_interval_h else "none")
    pixel_size = _pixel_size(entries, pixel_size_um, index, headers)
    channel_names = _channel_names(entries, channels, channel_names, index, headers)
    interval = _time_interval(entries, time_interval_h, index)
    rows = sorted({e.row for e in entries}, key=lambda r: (len(r), r))
    cols = sorted({e.col for e in entries}, key=int)
    # written whole or not at all (create_plate: a hidden folder moved in place at the end)
    with create_plate(out, rows=rows, columns=cols, ngff_version=ngff_version,
                      name=name or Path(folder).name) as plate:  # refuses an existing store
        kept = list(channels) if channels is not None else slice(None)
        _in_threads(lambda e: _import_field(
            plate, e, kept, mask_label, Path(folder), channel_names=channel_names,
            pixel_size_um=pixel_size, time_interval_h=interval), entries)
    return as_location(out)

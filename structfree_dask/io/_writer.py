"""Write OME-Zarr plates and images from in-memory arrays (simulator, importer)."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import zarr

from ._labels import write_labels
from ._location import basename, check_store, exists, is_url, redact, remove_tree
from ._ngff import array_kwargs, format_for, write_ome, zarr_format_for
from ._plate import AXIS_ORDER, RECORD_KEY, ImageInfo, check_name, read_image_info
from ._safepath import check_no_links, checked_path, is_local

__all__ = ["PlateWriter", "check_new_store", "create_plate", "create_image", "write_image_group",
           "append_timepoints"]

logger = logging.getLogger(__name__)

_UNITS = {"t": "hour", "z": "micrometer", "y": "micrometer", "x": "micrometer"}
_COLORS = ("00FF00", "FF0000", "0000FF", "FF00FF", "FFFF00", "00FFFF", "FFFFFF")


def _check_axes(axes: str | Sequence[str], ndim: int) -> tuple[str, ...]:
    axes_t = tuple(axes)
    if len(axes_t) != ndim:
        raise ValueError(f"axes {''.join(axes_t)!r} name {len(axes_t)} axes; data has {ndim}")
    if [a for a in AXIS_ORDER if a in axes_t] != list(axes_t) or not {"y", "x"} <= set(axes_t):
        raise ValueError(
            f"axes must be distinct, in t, c, z, y, x order and include y and x; got {axes!r}"
        )
    return axes_t


def _check_image(data: np.ndarray, axes: str | Sequence[str],
                 channel_names: Sequence[str] | None) -> tuple[tuple[str, ...], list[str]]:
    """Check an image's axes and channel names before anything is written.

    Returns the axes and the channel names (indices as names when none are given).
    """
    axes_t = _check_axes(axes, data.ndim)
    n_c = dict(zip(axes_t, data.shape, strict=True)).get("c", 1)
    names = list(channel_names) if channel_names is not None else [str(i) for i in range(n_c)]
    if len(names) != n_c:
        raise ValueError(f"got {len(names)} channel names for {n_c} channels: {names}")
    return axes_t, names


def _n_levels(ny: int, nx: int, max_levels: int = 5, min_size: int = 64) -> int:
    n = 1
    while n < max_levels and min(ny, nx) // (2**n) >= min_size:
        n += 1
    return n


def write_image_group(
    group: zarr.Group,
    data: np.ndarray,
    *,
    axes: str | Sequence[str],
    version: str,
    channel_names: Sequence[str] | None = None,
    pixel_size_um: tuple[float, float] = (1.0, 1.0),
    time_interval_h: float = 1.0,
    chunk_yx: int = 512,
    n_levels: int | None = None,
    name: str | None = None,
) -> None:
    """Write a multiscale image (nearest-neighbour pyramid) and its metadata into a group.

    Parameters
    ----------
    group : zarr.Group
        An empty group opened for writing, of the version's zarr format.
    data : numpy.ndarray
    axes : str or sequence of str
        Axis names of ``data`` in t, c, z, y, x order (e.g. ``"tcyx"``).
    version : str
        NGFF version.
    channel_names : sequence of str, optional
        Written as omero channel labels.
    pixel_size_um : (float, float)
        Pixel size along y and x in micrometres.
    time_interval_h : float
        Time step in hours.
    chunk_yx : int
    n_levels : int, optional
        Number of levels (default: halve until the smaller side is < 128 px, at most 5).
    name : str, optional
    """
    axes_t, names = _check_image(data, axes, channel_names)  # before the first array
    fmt = format_for(version)
    sizes = dict(zip(axes_t, data.shape, strict=True))
    levels = n_levels or _n_levels(sizes["y"], sizes["x"])
    datasets = []
    for k in range(levels):
        f = 2**k
        index = tuple(slice(None, None, f) if ax in ("y", "x") else slice(None) for ax in axes_t)
        level = np.ascontiguousarray(data[index])
        chunks = tuple(min(n, chunk_yx) if ax in ("y", "x") else 1
                       for ax, n in zip(axes_t, level.shape, strict=True))
        kwargs = array_kwargs(version, axes_t)
        arr = group.create_array(str(k), shape=level.shape, chunks=chunks, dtype=level.dtype,
                                 fill_value=0, **kwargs)
        arr[...] = level
        scale = []
        for ax in axes_t:
            if ax in ("y", "x"):
                scale.append(float(pixel_size_um[0 if ax == "y" else 1]) * f)
            elif ax == "t":
                scale.append(float(time_interval_h))
            else:
                scale.append(1.0)
        datasets.append({"path": str(k),
                         "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    axes_meta = []
    for ax in axes_t:
        entry: dict[str, Any] = {"name": ax, "type": {"t": "time", "c": "channel"}.get(ax, "space")}
        if ax in _UNITS:
            entry["unit"] = _UNITS[ax]
        axes_meta.append(entry)
    multiscale: dict[str, Any] = {"axes": axes_meta, "datasets": datasets,
                                  "name": name or group.basename or "image"}
    if fmt.zarr_format == 2:
        multiscale["version"] = version
    meta: dict[str, Any] = {"multiscales": [multiscale]}
    if "c" in sizes:
        channels = []
        for i, nm in enumerate(names):
            ch = data[(slice(None),) * axes_t.index("c") + (i,)]
            hi = float(np.percentile(ch[..., ::4, ::4], 99.9)) if ch.size else 1.0
            channels.append({
                "label": str(nm), "color": _COLORS[i % len(_COLORS)], "active": True,
                "window": {"min": float(np.iinfo(data.dtype).min) if data.dtype.kind in "ui"
                           else 0.0,
                           "max": float(np.iinfo(data.dtype).max) if data.dtype.kind in "ui"
                           else float(ch.max(initial=1.0)),
                           "start": 0.0, "end": max(hi, 1.0)},
            })
        omero: dict[str, Any] = {"channels": channels, "rdefs": {"model": "color"}}
        if fmt.zarr_format == 2:
            omero["version"] = version
        meta["omero"] = omero
    write_ome(group, meta, version=version)


def check_new_store(path: str, overwrite: bool = False) -> None:
    """Refuse to write a new store over an existing one, or into a store that refuses."""
    check_store(path, must_exist=False)  # an object store: reachable, bucket there
    if exists(path) and not overwrite:
        raise FileExistsError(f"output {redact(path)} already exists; choose a new path")
    check_store(path, write=True, must_exist=False)  # ... and it accepts writes


class PlateWriter:
    """Write an HCS plate field by field; the plate metadata is written on close.

    Use through :func:`create_plate` as a context manager. A plate is written whole or not
    at all: a local plate is written into a hidden folder beside its path and moved there
    when the block ends without an error (with ``overwrite``, the plate that was there
    stays until then); when the block raises, what was written is removed and nothing
    appears at the path. An object store's plate is written in place (no rename there) and
    removed when the block raises.

    :meth:`write_field` may be called from several threads at once (different fields): the
    groups and the wells' field lists are changed under a lock, the pixels outside it. The
    caller waits for those threads before the block ends.
    """

    def __init__(self, path: str | Path, *, rows: Sequence[str], columns: Sequence[str],
                 ngff_version: str = "0.4", name: str | None = None,
                 overwrite: bool = False) -> None:
        self.target = str(path)
        self.version = format_for(ngff_version).version
        self.rows = [check_name(str(r), "row name") for r in rows]
        self.columns = [check_name(str(c), "column name") for c in columns]
        self.name = name
        self.overwrite = overwrite
        self._fields: dict[str, list[str]] = {}
        self._lock = threading.Lock()  # the groups and the wells' field lists
        check_new_store(self.target, overwrite)
        #: Where the plate is being written: a hidden sibling of a local path, until close.
        self.path = (self.target if is_url(self.target) else str(
            Path(self.target).with_name(f".{Path(self.target).name}.{uuid.uuid4().hex}.partial")))
        try:
            self.root = zarr.open_group(store=self.path, mode="w",
                                        zarr_format=zarr_format_for(self.version))
        except (PermissionError, OSError) as err:
            raise PermissionError(f"cannot write the plate at {redact(self.target)}: {err}"
                                  ) from err

    def __enter__(self) -> PlateWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            try:
                self.close()
            except BaseException as err:  # e.g. the path taken meanwhile: nothing half-written
                self._discard(type(err))
                raise
            return
        self._discard(exc_type)

    def _discard(self, why: type[BaseException]) -> None:
        """Remove this writer's own output (never a plate that was at the path before)."""
        if self.path != self.target or is_url(self.target):  # (a local plate moved: whole)
            remove_tree(self.path)
        logger.warning("the plate %s was not written (%s): nothing left there",
                       redact(self.target), why.__name__)

    def write_field(
        self,
        row: str,
        col: str,
        field: int,
        image: np.ndarray,
        *,
        axes: str | Sequence[str] = "tcyx",
        channel_names: Sequence[str] | None = None,
        pixel_size_um: tuple[float, float] = (1.0, 1.0),
        time_interval_h: float = 1.0,
        labels: dict[str, np.ndarray] | None = None,
        chunk_yx: int = 512,
        source: str | None = None,
    ) -> ImageInfo:
        """Write one field (and optional label images) into well ``row/col``.

        Parameters
        ----------
        row, col : str
            Names from the plate's rows and columns.
        field : int
            Field index within the well.
        image : numpy.ndarray
        axes : str
            Axes of ``image`` in t, c, z, y, x order.
        channel_names : sequence of str, optional
        pixel_size_um : (float, float)
        time_interval_h : float
        labels : dict, optional
            Label name -> integer array with the image's axes minus ``c``.
        chunk_yx : int
        source : str, optional
            The file the field was read from, recorded in the field's attributes
            (:attr:`ImageInfo.source`).

        Returns
        -------
        ImageInfo
            The field in the plate being written (a local plate's hidden folder until the
            writer closes).
        """
        if row not in self.rows or col not in self.columns:
            raise KeyError(f"well {row}/{col} is outside the plate's rows {self.rows} "
                           f"and columns {self.columns}")
        wpath = f"{row}/{col}"
        fname = str(int(field))
        _check_image(image, axes, channel_names)  # before the field's group exists
        with self._lock:
            if fname in self._fields.get(wpath, []):
                raise ValueError(f"field {wpath}/{fname} was already written")
            self._fields.setdefault(wpath, []).append(fname)  # taken: no other thread's
            well = self.root.require_group(row).require_group(col)
            group = well.create_group(fname)
        write_image_group(group, image, axes=axes, version=self.version,
                          channel_names=channel_names, pixel_size_um=pixel_size_um,
                          time_interval_h=time_interval_h, chunk_yx=chunk_yx,
                          name=f"{wpath}/{fname}")
        if source is not None:
            group.attrs[RECORD_KEY] = {"source": str(source)}
        from ome_zarr.writer import write_well_metadata

        with self._lock:  # the well lists its fields in number order, however they finish
            fields = sorted(self._fields[wpath], key=int)
            write_well_metadata(well, [{"path": f, "acquisition": 0} for f in fields],
                                fmt=format_for(self.version))
        info = read_image_info(self.path, f"{wpath}/{fname}")
        for lname, data in (labels or {}).items():
            write_labels(info, lname, np.asarray(data), chunk_yx=chunk_yx)
        logger.info("wrote field %s/%s of %s", wpath, fname, self.path)
        # read once more only where labels were added (an import's fields have none)
        return read_image_info(self.path, f"{wpath}/{fname}") if labels else info

    def close(self) -> None:
        """Write the plate metadata (wells in row-major order), and move a local plate in place.

        Also a plate without fields is moved in place (a store with no plate metadata).
        """
        if self._fields:
            from ome_zarr.writer import write_plate_metadata

            wells = [f"{r}/{c}" for r in self.rows for c in self.columns
                     if f"{r}/{c}" in self._fields]
            max_fields = max(len(v) for v in self._fields.values())
            write_plate_metadata(
                self.root, self.rows, self.columns, wells, fmt=format_for(self.version),
                field_count=max_fields or None, name=self.name,
                acquisitions=[{"id": 0, "name": self.name or "acquisition"}],
            )
        if self.path == self.target:
            return
        check_new_store(self.target, self.overwrite)  # still free: nothing appeared meanwhile
        remove_tree(self.target)  # the plate replaced (overwrite), now that the new one is whole
        os.rename(self.path, self.target)
        self.path = self.target


def create_plate(path: str | Path, *, rows: Sequence[str], columns: Sequence[str],
                 ngff_version: str = "0.4", name: str | None = None,
                 overwrite: bool = False) -> PlateWriter:
    """Start writing an OME-Zarr HCS plate.

    Parameters
    ----------
    path : str or Path
        New store path.
    rows, columns : sequence of str
        Row names (``"A"``, ...) and column names (``"1"``, ...).
    ngff_version : str
        ``"0.4"`` (zarr v2, read by most viewers) or ``"0.5"`` (zarr v3).
    name : str, optional
    overwrite : bool
        Replace an existing store.

    Returns
    -------
    PlateWriter

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> path = tempfile.mkdtemp() + "/plate.zarr"
    >>> with create_plate(path, rows=["A"], columns=["1"], ngff_version="0.5") as plate:
    ...     _ = plate.write_field("A", "1", 0, np.zeros((1, 2, 64, 64), "uint16"),
    ...                           channel_names=["mito", "ER"])
    >>> from structfree_dask.io import open_plate
    >>> open_plate(path).field("A/1/0").channel_names
    ('mito', 'ER')
    """
    return PlateWriter(path, rows=rows, columns=columns, ngff_version=ngff_version, name=name,
                       overwrite=overwrite)


def create_image(path: str | Path, data: np.ndarray, *, axes: str | Sequence[str],
                 ngff_version: str = "0.4", channel_names: Sequence[str] | None = None,
                 pixel_size_um: tuple[float, float] = (1.0, 1.0), time_interval_h: float = 1.0,
                 labels: dict[str, np.ndarray] | None = None, chunk_yx: int = 512,
                 overwrite: bool = False) -> ImageInfo:
    """Write a standalone multiscale OME-Zarr image (e.g. a time-lapse).

    Parameters
    ----------
    path : str or Path
    data : numpy.ndarray
    axes : str or sequence of str
    ngff_version : str
    channel_names : sequence of str, optional
    pixel_size_um : (float, float)
    time_interval_h : float
    labels : dict, optional
    chunk_yx : int
    overwrite : bool

    Returns
    -------
    ImageInfo
    """
    path = str(path)
    _check_image(data, axes, channel_names)  # before the store exists
    check_new_store(path, overwrite)
    root = zarr.open_group(store=path, mode="w", zarr_format=zarr_format_for(ngff_version))
    write_image_group(root, data, axes=axes, version=format_for(ngff_version).version,
                      channel_names=channel_names, pixel_size_um=pixel_size_um,
                      time_interval_h=time_interval_h, chunk_yx=chunk_yx,
                      name=basename(path).rsplit(".", 1)[0])
    info = read_image_info(path, "")
    for lname, ldata in (labels or {}).items():
        write_labels(info, lname, np.asarray(ldata), chunk_yx=chunk_yx)
    return read_image_info(path, "")


def append_timepoints(image: ImageInfo, data: np.ndarray) -> int:
    """Append timepoints to a time-lapse image (what an acquisition does as it goes).

    Every level grows along ``t``; the new timepoints are downsampled like the
    existing ones (nearest neighbour, the levels' own factors).

    Parameters
    ----------
    image : ImageInfo
        A field with a ``t`` axis (``open_plate(path).field(...)``).
    data : numpy.ndarray
        New timepoints with the image's axes, e.g. ``(k, c, y, x)`` for ``tcyx``.

    Returns
    -------
    int
        The image's number of timepoints afterwards.

    Raises
    ------
    ValueError
        The image has no ``t`` axis, or ``data`` does not match its other axes.
    """
    axes = image.axes
    if "t" not in axes:
        raise ValueError(f"{image.url} has no t axis (axes {''.join(axes)}); cannot append")
    ti = axes.index("t")
    if is_local(image.store):  # writes stay inside the plate: no link on the way or inside
        for level in image.levels:
            check_no_links(checked_path(image.store, f"{image.path}/{level.path}"))
    group = zarr.open_group(store=image.store, path=image.path, mode="r+")
    base = group[image.levels[0].path]
    want = tuple(n for i, n in enumerate(base.shape) if i != ti)
    got = tuple(n for i, n in enumerate(data.shape) if i != ti)
    if data.ndim != len(axes) or want != got:
        raise ValueError(f"new timepoints must have shape (k, {', '.join(map(str, want))}) "
                         f"in axes {''.join(axes)}; got {data.shape}")
    n0 = base.shape[ti]
    for level in image.levels:
        arr = group[level.path]
        step = [max(1, round(b / a)) if ax in ("y", "x") else 1
                for ax, a, b in zip(axes, arr.shape, base.shape, strict=True)]
        small = data[tuple(slice(None, None, f) for f in step)]
        small = small[tuple(slice(0, n) if i != ti else slice(None)
                            for i, n in enumerate(arr.shape))]
        new_shape = list(arr.shape)
        new_shape[ti] = n0 + data.shape[ti]
        arr.resize(tuple(new_shape))
        index = [slice(None)] * len(axes)
        index[ti] = slice(n0, new_shape[ti])
        arr[tuple(index)] = small.astype(arr.dtype, copy=False)
    logger.info("appended %d timepoint(s) to %s (now %d)", data.shape[ti], image.url,
                n0 + data.shape[ti])
    return n0 + data.shape[ti]

"""Open OME-Zarr HCS plates and multiscale images read-only.

Everything is read from the metadata: dataset paths, axes and their order, channel
names (omero), pixel sizes and the time step. Nothing assumes that a level is called
``"0"`` or that the axes are ``tczyx``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from ..config import check_name
from ._arraycache import cached_array
from ._location import IO_THREADS, basename, check_store, concurrently, is_url
from ._ngff import (
    MetadataError,
    detect_version,
    metadata_errors,
    open_array_as,
    open_group_if_any,
    open_group_readonly,
    read_ome,
)

__all__ = [
    "AXIS_ORDER",
    "RECORD_KEY",
    "MetadataError",
    "Level",
    "ImageInfo",
    "Plate",
    "open_plate",
    "read_image_info",
    "check_name",
]

if TYPE_CHECKING:  # imported where used: a worker reading pixels needs neither
    import dask.array as da
    import xarray as xr

logger = logging.getLogger(__name__)

#: Valid axis names, in the order NGFF requires them.
AXIS_ORDER: tuple[str, ...] = ("t", "c", "z", "y", "x")
#: Attribute key holding this package's records (an imported field's source file; a label
#: image's run and completion records).
RECORD_KEY = "structfree_dask"

@dataclass(frozen=True)
class Level:
    """One resolution level of a multiscale image.

    Attributes
    ----------
    path : str
        The dataset path inside the image group, from ``multiscales[0].datasets``.
    shape : tuple of int
    chunks : tuple of int
    scale : tuple of float
        Physical size of a pixel along each axis.
    translation : tuple of float or None
    """

    path: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    scale: tuple[float, ...]
    translation: tuple[float, ...] | None = None


@dataclass(frozen=True)
class ImageInfo:
    """A multiscale image on disk: one field of a plate, or a standalone time-lapse.

    Attributes
    ----------
    store : str
        Root of the zarr store.
    path : str
        Group path of the image inside the store (``""`` for a standalone image).
    axes : tuple of str
        Axis names in storage order, a subset of ``t, c, z, y, x``.
    units : dict
        Unit of each axis that has one.
    levels : tuple of Level
        Resolution levels, full resolution first.
    dtype : numpy.dtype
    channel_names : tuple of str
        From omero metadata when present, else ``"0"``, ``"1"``, ...
    ngff_version : str
    labels : tuple of str
        Names of the label images listed under ``labels/``.
    source : str or None
        The file the field was imported from (its name in the imported folder), as
        :func:`~structfree_dask.io.import_folder` records it; None otherwise.
    """

    store: str
    path: str
    axes: tuple[str, ...]
    units: dict[str, str]
    levels: tuple[Level, ...]
    dtype: np.dtype
    channel_names: tuple[str, ...]
    ngff_version: str
    labels: tuple[str, ...] = field(default=())
    source: str | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Full-resolution shape."""
        return self.levels[0].shape

    @property
    def sizes(self) -> dict[str, int]:
        """Size of each axis at full resolution; absent axes have size 1."""
        sizes = {ax: 1 for ax in AXIS_ORDER}
        sizes.update(dict(zip(self.axes, self.shape, strict=True)))
        return sizes

    @property
    def pixel_size(self) -> dict[str, float]:
        """Physical pixel size of each axis at full resolution."""
        return dict(zip(self.axes, self.levels[0].scale, strict=True))

    @property
    def n_timepoints(self) -> int:
        """Number of timepoints (1 without a ``t`` axis)."""
        return self.sizes["t"]

    @property
    def url(self) -> str:
        """Store path and group path joined."""
        return f"{self.store}/{self.path}" if self.path else self.store

    def plane_index(self, t: int, z: int, channel: int | None = None) -> tuple:
        """Return the index of one (y, x) plane of an array with this image's axes.

        ``channel`` None picks channel 0 (label images keep a ``c`` axis of size 1);
        ``y`` and ``x`` are whole.
        """
        index = {"t": t, "z": z, "c": 0 if channel is None else channel}
        return tuple(index.get(ax, slice(None)) for ax in self.axes)

    def channel_index(self, channel: int | str) -> int:
        """Return the index of a channel given by index or by name.

        Parameters
        ----------
        channel : int or str
            An index, a name from the omero metadata, or a string of digits.

        Returns
        -------
        int

        Raises
        ------
        KeyError
            If no such channel exists; the message lists the channels there are.
        """
        n = self.sizes["c"]
        if isinstance(channel, str) and channel in self.channel_names:
            return self.channel_names.index(channel)
        if isinstance(channel, str) and channel.lstrip("-").isdigit():
            channel = int(channel)
        if isinstance(channel, int | np.integer) and 0 <= int(channel) < n:
            return int(channel)
        listing = ", ".join(f"{i}={nm}" for i, nm in enumerate(self.channel_names))
        raise KeyError(
            f"channel {channel!r} does not exist in {self.url}; it has {n} channel(s): {listing}"
        )

    def open_array(self, level: int = 0) -> zarr.Array:
        """Open the zarr array of a level, read-only.

        On an object store, once per process while its shape, chunks and dtype stay those
        of this description (:func:`.cached_array`).
        """
        lpath = self.levels[level].path

        def open_level() -> zarr.Array:  # as its zarr format, without probing: 2 requests
            where = _join(self.path, lpath)
            with metadata_errors(self.store, where):
                return open_array_as(self.store, where, "r", self.ngff_version)

        lv = self.levels[level]
        return cached_array(self.store, _join(self.path, lpath), "r",
                            (lv.shape, lv.chunks, np.dtype(self.dtype).name), open_level)

    def read(self, index: tuple, level: int = 0, array: zarr.Array | None = None
             ) -> np.ndarray:
        """Read ``array[index]`` (default: the level's image array) into memory.

        A chunk that cannot be read (cut short, damaged, missing on a store that
        failed) raises an ``OSError`` that names the image, the channel, the timepoint,
        the region and the chunks, whatever the codec said.
        """
        arr = self.open_array(level) if array is None else array
        try:
            return np.asarray(arr[index])
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as err:  # noqa: BLE001 - named below, whatever the codec raised
            raise OSError(f"cannot read {self.url} ({self._describe(index, arr)}): "
                          f"{type(err).__name__}: {err}") from err

    def _describe(self, index: tuple, arr: zarr.Array) -> str:
        parts, chunks = [], []
        for ax, sel, n, ch in zip(self.axes, index, arr.shape, arr.chunks, strict=False):
            start, stop = (sel, sel + 1) if isinstance(sel, int | np.integer) else (
                sel.indices(n)[:2])
            if ax == "c" and stop - start == 1:
                names = self.channel_names
                parts.append(f"channel {start} ({names[start]})" if start < len(names)
                             else f"channel {start}")
            elif stop - start == 1:
                parts.append(f"{ax}={start}")
            else:
                parts.append(f"{ax}={start}:{stop}")
            chunks.append(range(start // ch, max(start, stop - 1) // ch + 1))
        first = tuple(r.start for r in chunks)
        last = tuple(r.stop - 1 for r in chunks)
        where = f"chunk {first}" if first == last else f"chunks {first} to {last}"
        return f"{', '.join(parts)}; {where} of the array {arr.path or arr.name}"

    def to_dask(self, level: int = 0) -> da.Array:
        """Return a level as a lazy dask array, chunked like the zarr array.

        Examples
        --------
        >>> import tempfile, numpy as np
        >>> from structfree_dask.io import create_image
        >>> path = tempfile.mkdtemp() + "/img.zarr"
        >>> info = create_image(path, np.zeros((2, 64, 64), "uint16"), axes="cyx")
        >>> info.to_dask().shape
        (2, 64, 64)
        """
        import dask.array as da

        arr = self.open_array(level)
        return da.from_zarr(arr, chunks=arr.chunks)

    def to_xarray(self, level: int = 0) -> xr.DataArray:
        """Return a level as a lazy ``xarray.DataArray`` with named dims and coordinates.

        Spatial and time coordinates are physical (from the scale and translation
        transforms); the ``c`` coordinate holds the channel names.
        """
        import xarray as xr

        lvl = self.levels[level]
        data = self.to_dask(level)
        coords: dict[str, Any] = {}
        for i, ax in enumerate(self.axes):
            if ax == "c":
                coords["c"] = list(self.channel_names)
            else:
                offset = lvl.translation[i] if lvl.translation else 0.0
                coords[ax] = offset + lvl.scale[i] * np.arange(lvl.shape[i])
        return xr.DataArray(
            data,
            dims=self.axes,
            coords=coords,
            name=self.path or basename(self.store),
            attrs={"units": dict(self.units), "ngff_version": self.ngff_version},
        )


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def _transforms(datasets_entry: dict[str, Any], ndim: int) -> tuple[tuple, tuple | None]:
    scale: tuple[float, ...] = (1.0,) * ndim
    translation = None
    for tf in datasets_entry.get("coordinateTransformations", []) or []:
        if tf.get("type") == "scale" and "scale" in tf:
            scale = tuple(float(s) for s in tf["scale"])
        elif tf.get("type") == "translation" and "translation" in tf:
            translation = tuple(float(s) for s in tf["translation"])
    if len(scale) != ndim:
        raise MetadataError(
            f"scale transform has {len(scale)} values; expected {ndim} (one per axis)"
        )
    return scale, translation


def read_image_info(store: str, path: str = "", version: str | None = None) -> ImageInfo:
    """Read the metadata of a multiscale image.

    Parameters
    ----------
    store : str
        Root of the zarr store.
    path : str
        Group path of the image inside the store.
    version : str, optional
        Its NGFF version when known (the plate's): the group is opened as that version's
        zarr format, without probing (fewer requests on an object store).

    Returns
    -------
    ImageInfo

    Raises
    ------
    FileNotFoundError
        If there is no zarr group there.
    MetadataError
        If the multiscales metadata is missing or malformed, does not match the
        arrays on disk, or lists an invalid label name; or if a metadata file is not
        valid JSON.
    """
    group = open_group_readonly(store, path, version)
    where = f"{store}/{path}" if path else str(store)
    meta = read_ome(group)
    multiscales = meta.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales:
        raise MetadataError(
            f"expected 'multiscales' metadata (an OME-Zarr image) at {where}; "
            f"found keys {sorted(meta)}"
        )
    ms = multiscales[0]
    axes_meta = ms.get("axes")
    if not isinstance(axes_meta, list) or not axes_meta:
        raise MetadataError(f"multiscales at {where} has no 'axes' list; found {axes_meta!r}")
    axes = tuple(a["name"] if isinstance(a, dict) else str(a) for a in axes_meta)
    units = {
        a["name"]: a["unit"] for a in axes_meta if isinstance(a, dict) and a.get("unit")
    }
    bad = [a for a in axes if a not in AXIS_ORDER]
    if bad or len(set(axes)) != len(axes) or not {"y", "x"} <= set(axes):
        raise MetadataError(
            f"axes at {where} must be distinct names among t, c, z, y, x including y and x; "
            f"found {list(axes)}"
        )
    if [a for a in AXIS_ORDER if a in axes] != list(axes):
        raise MetadataError(f"axes at {where} must be in t, c, z, y, x order; found {list(axes)}")
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise MetadataError(f"multiscales at {where} lists no datasets; found {datasets!r}")
    levels = []
    dtype = None
    for entry in datasets:
        if not isinstance(entry, dict) or "path" not in entry:
            raise MetadataError(f"dataset entry without 'path' at {where}: {entry!r}")
        try:
            with metadata_errors(store, _join(path, str(entry["path"]))):
                arr = group[str(entry["path"])]
        except KeyError:
            raise MetadataError(
                f"multiscales at {where} lists dataset {entry['path']!r} but no such array exists"
            ) from None
        if not isinstance(arr, zarr.Array):
            raise MetadataError(f"dataset {entry['path']!r} at {where} is not an array")
        if arr.ndim != len(axes):
            raise MetadataError(
                f"array {entry['path']!r} at {where} has {arr.ndim} dimensions; "
                f"the axes {list(axes)} need {len(axes)}"
            )
        scale, translation = _transforms(entry, len(axes))
        levels.append(
            Level(
                path=str(entry["path"]),
                shape=tuple(int(s) for s in arr.shape),
                chunks=tuple(int(c) for c in arr.chunks),
                scale=scale,
                translation=translation,
            )
        )
        dtype = dtype or np.dtype(arr.dtype)
    n_channels = dict(zip(axes, levels[0].shape, strict=True)).get("c", 1)
    names: list[str] = [str(i) for i in range(n_channels)]
    omero = meta.get("omero")
    if isinstance(omero, dict) and isinstance(omero.get("channels"), list):
        labels_ = [c.get("label") if isinstance(c, dict) else None for c in omero["channels"]]
        if len(labels_) == n_channels:
            names = [str(lab) if lab else str(i) for i, lab in enumerate(labels_)]
    label_names: tuple[str, ...] = ()
    found_version = detect_version(group)
    with metadata_errors(store, _join(path, "labels")):
        label_group = open_group_if_any(store, _join(path, "labels"), "r", found_version)
    if label_group is not None:
        label_names = _label_list(read_ome(label_group), f"{where}/labels")  # type: ignore[arg-type]
    record = dict(group.attrs).get(RECORD_KEY)
    source = record.get("source") if isinstance(record, dict) else None
    return ImageInfo(
        store=str(store),
        path=path,
        axes=axes,
        units=units,
        levels=tuple(levels),
        dtype=np.dtype(dtype),
        channel_names=tuple(names),
        ngff_version=found_version,
        labels=label_names,
        source=source if isinstance(source, str) else None,
    )


def _label_list(meta: dict[str, Any], where: str) -> tuple[str, ...]:
    """Return the names listed by ``labels/`` metadata, each checked with check_name."""
    listed = meta.get("labels", [])
    if listed is None:
        return ()
    if not isinstance(listed, list):
        raise MetadataError(
            f"labels list of {where} must be a list of label names; found {listed!r}"
        )
    for entry in listed:
        try:
            check_name(entry, "label name")
        except ValueError as err:
            raise MetadataError(
                f"labels list of {where} has an invalid entry {entry!r}: {err}"
            ) from None
    return tuple(listed)


def _check_well_path(well: Any, store: str) -> str:
    """Check a well path of plate metadata: ROW/COLUMN, two plain names."""
    problem = None
    if not isinstance(well, str):
        problem = f"found {type(well).__name__} {well!r}"
    elif well.startswith("/"):
        problem = "found an absolute path"
    elif len(well.split("/")) != 2:
        problem = f"found {len(well.split('/'))} path component(s)"
    else:
        for part, what in zip(well.split("/"), ("row name", "column name"), strict=True):
            try:
                check_name(part, what)
            except ValueError as err:
                problem = str(err)
                break
    if problem is not None:
        raise MetadataError(
            f"plate metadata of {store} lists well {well!r}; expected ROW/COLUMN such as "
            f"'B/3', two path components that are plain names ({problem})"
        )
    return well


@dataclass(frozen=True)
class Plate:
    """An opened OME-Zarr HCS plate, or a standalone multiscale image.

    A standalone image (for example a time-lapse) behaves as a plate with one field
    whose ``path`` is ``""``.

    Attributes
    ----------
    store : str
    kind : str
        ``"plate"`` or ``"image"``.
    ngff_version : str
    name : str or None
    rows, columns : tuple of str
    wells : tuple of str
        Well paths such as ``"A/1"`` (empty for an image).
    field_paths : tuple of str
        Image group paths such as ``"A/1/0"`` in plate order.
    """

    store: str
    kind: str
    ngff_version: str
    name: str | None
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    wells: tuple[str, ...]
    field_paths: tuple[str, ...]

    def field(self, path: str) -> ImageInfo:
        """Return the metadata of one field (image group path, e.g. ``"A/1/0"``)."""
        if path not in self.field_paths:
            raise KeyError(
                f"field {path!r} is not in {self.store}; fields: {', '.join(self.field_paths)}"
            )
        return read_image_info(self.store, path, self.ngff_version)

    def fields(self, wells: list[str] | None = None) -> Iterator[ImageInfo]:
        """Iterate over the fields, optionally of some wells only (``["A/1", "B/3"]``).

        The fields' metadata are read :data:`~structfree_dask.io.IO_THREADS` at a time
        (:func:`~structfree_dask.io.concurrently`: on an object store each field is a few
        round trips), in plate order.
        """
        selected = self.select(wells)
        for start in range(0, len(selected), IO_THREADS):
            yield from concurrently(lambda path: read_image_info(self.store, path,
                                                                 self.ngff_version),
                                    selected[start:start + IO_THREADS])

    def select(self, wells: list[str] | None = None) -> list[str]:
        """Return the field paths of the given wells (all when ``None``).

        Raises
        ------
        KeyError
            If a well is not in the plate; the message lists the wells there are.
        """
        if wells is None:
            return list(self.field_paths)
        if self.kind == "image":
            raise KeyError(f"{self.store} is a single image, not a plate; it has no wells")
        unknown = [w for w in wells if w not in self.wells]
        if unknown:
            raise KeyError(
                f"well(s) {', '.join(unknown)} not in plate {self.store}; "
                f"wells: {', '.join(self.wells)}"
            )
        return [p for p in self.field_paths if "/".join(p.split("/")[:2]) in wells]


def _well_fields(store: str, well: str, version: str) -> list[str]:
    """Return the field paths a well's metadata lists, each checked to exist."""
    try:
        wgroup = open_group_readonly(store, well, version)
    except FileNotFoundError:
        raise MetadataError(
            f"plate {store} lists well {well!r} but the store has no group there"
        ) from None
    wmeta = read_ome(wgroup).get("well")
    if not isinstance(wmeta, dict) or not isinstance(wmeta.get("images"), list):
        raise MetadataError(f"well {well!r} in {store} has no 'well.images' metadata")
    paths = []
    for image in wmeta["images"]:
        name = image.get("path") if isinstance(image, dict) else None
        if isinstance(name, int) and not isinstance(name, bool):
            name = str(name)
        try:
            check_name(name, "field path")
        except ValueError as err:
            raise MetadataError(
                f"well metadata of {store}/{well} lists image {image!r}; {err}"
            ) from None
        fpath = f"{well}/{name}"
        with metadata_errors(store, fpath):
            present = open_group_if_any(store, fpath, "r", version) is not None
        if not present:
            raise MetadataError(
                f"well {well!r} in {store} lists field {name!r} "
                "but the store has no image there"
            )
        paths.append(fpath)
    return paths


def open_plate(path: str | Path | Plate) -> Plate:
    """Open an OME-Zarr plate (NGFF 0.4 or 0.5) or a standalone multiscale image.

    Parameters
    ----------
    path : str, Path or Plate
        Root of the store: a local path or a URL such as ``s3://bucket/plate.zarr``
        (a :class:`Plate` is returned as it is).

    Returns
    -------
    Plate

    Raises
    ------
    FileNotFoundError
        If the path does not exist or is not a zarr store.
    StoreError
        If the object store of a URL cannot be reached, refuses the credentials, has
        no such bucket or nothing at that location.
    MetadataError
        If the root is neither a plate nor a multiscale image, the plate lists
        wells or fields that are missing from the store or whose paths are not
        ROW/COLUMN and plain field names, or a metadata file is not valid JSON.

    Examples
    --------
    >>> import tempfile
    >>> from structfree_dask.simulate import simulate_plate
    >>> out = simulate_plate(tempfile.mkdtemp() + "/p.zarr", size=64, cols=2)
    >>> plate = open_plate(out)
    >>> plate.kind, plate.wells, plate.field_paths
    ('plate', ('A/1', 'A/2'), ('A/1/0', 'A/2/0'))
    """
    if isinstance(path, Plate):
        return path
    store = str(path)
    if is_url(store):
        check_store(store)  # reachable, credentials accepted, something there
    elif not Path(store).exists():
        raise FileNotFoundError(f"expected an OME-Zarr plate or image at {store}; path not found")
    try:
        root = open_group_readonly(store)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"expected an OME-Zarr plate or image at {store}; found no zarr group"
        ) from None
    meta = read_ome(root)
    version = detect_version(root)
    if "multiscales" in meta:
        info = read_image_info(store, "")
        return Plate(store, "image", info.ngff_version, None, (), (), (), ("",))
    plate = meta.get("plate")
    if not isinstance(plate, dict):
        raise MetadataError(
            f"expected 'plate' or 'multiscales' metadata at the root of {store}; "
            f"found keys {sorted(meta) or 'none'}"
        )
    try:
        rows = tuple(str(r["name"]) for r in plate["rows"])
        columns = tuple(str(c["name"]) for c in plate["columns"])
        well_entries = plate["wells"]
        well_paths = [w["path"] for w in well_entries]
    except (KeyError, TypeError) as err:
        raise MetadataError(
            f"plate metadata at {store} needs rows, columns and wells with names/paths; "
            f"missing {err}"
        ) from None
    wells = tuple(_check_well_path(w, store) for w in well_paths)
    # the wells' metadata at once (on an object store a few round trips each)
    field_paths = [p for paths in concurrently(lambda w: _well_fields(store, w, version), wells)
                   for p in paths]
    return Plate(store, "plate", version, plate.get("name"), rows, columns, wells,
                 tuple(field_paths))

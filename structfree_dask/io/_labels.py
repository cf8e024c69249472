"""NGFF label images: created up front, filled region by region, metadata written last.

A label image lives at ``<image>/labels/<name>``. It has the same number of levels
as its image, the image's axes with ``c`` of size 1, the same transforms, and an
``image-label`` block. Arrays are created first; tasks then fill disjoint,
chunk-aligned regions; the NGFF metadata is written once the data is there
(:func:`finalize_labels`). Completion of (label image, timepoint) is recorded in the
label group's ``structfree_dask`` attribute by the driver only, never by workers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..config import LABEL_DTYPE
from ._arraycache import cached_array
from ._location import join, remove_tree, store_files
from ._ngff import (
    MetadataError,
    array_kwargs,
    format_for,
    group_files,
    metadata_errors,
    open_array_as,
    open_group_as,
    open_group_if_any,
    read_ome,
    write_ome,
    zarr_format_for,
)
from ._plate import RECORD_KEY, ImageInfo, check_name
from ._safepath import check_no_links, checked_path, is_local

__all__ = [
    "LABEL_DTYPE",
    "LabelExistsError",
    "LabelImage",
    "create_labels",
    "open_labels",
    "write_label_region",
    "finalize_labels",
    "write_labels",
    "mark_done",
    "unmark_done",
    "completed_timepoints",
    "check_label_target",
    "label_shape",
    "downsample_labels",
    "downsample_to",
    "label_record",
    "extend_timepoints",
    "open_complete_labels",
    "label_group_exists",
]

logger = logging.getLogger(__name__)


class LabelExistsError(FileExistsError):
    """Raised when a label image exists and overwriting was not asked for."""


@dataclass(frozen=True)
class LabelImage:
    """A label image of one field.

    Attributes
    ----------
    image : ImageInfo
        The image it labels.
    name : str
    level_paths : tuple of str
    shapes : tuple of tuple of int
        Shape of each level (the image's, with ``c`` = 1).
    chunks : tuple of tuple of int
    """

    image: ImageInfo
    name: str
    level_paths: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    chunks: tuple[tuple[int, ...], ...]

    @property
    def path(self) -> str:
        """Group path of the label image inside the store."""
        prefix = f"{self.image.path}/" if self.image.path else ""
        return f"{prefix}labels/{self.name}"

    def open_array(self, level: int = 0, mode: str = "r+") -> zarr.Array:
        """Open the zarr array of a level.

        On an object store, once per process while its shape and chunks stay those of this
        description (:func:`.cached_array`).
        """
        path = f"{self.path}/{self.level_paths[level]}"
        return cached_array(
            self.image.store, path, mode,
            (self.shapes[level], self.chunks[level], np.dtype(LABEL_DTYPE).name),
            lambda: open_array_as(self.image.store, path, mode, self.image.ngff_version))

    def read(self, level: int = 0) -> np.ndarray:
        """Read a whole level into memory (small images only)."""
        return np.asarray(self.open_array(level, mode="r")[...])


def label_shape(image_shape: tuple[int, ...], axes: tuple[str, ...]) -> tuple[int, ...]:
    """Return the label shape for an image shape: the same, with ``c`` set to 1.

    Examples
    --------
    >>> label_shape((3, 4, 512, 512), ("t", "c", "y", "x"))
    (3, 1, 512, 512)
    """
    return tuple(1 if ax == "c" else n for ax, n in zip(axes, image_shape, strict=True))


def _label_chunks(shape: tuple[int, ...], axes: tuple[str, ...], chunk_yx: int) -> tuple:
    return tuple(
        min(n, chunk_yx) if ax in ("y", "x") else 1 for ax, n in zip(axes, shape, strict=True)
    )


def _record(group: zarr.Group) -> dict[str, Any]:
    rec = dict(group.attrs).get(RECORD_KEY, {})
    return dict(rec) if isinstance(rec, dict) else {}


def _labels_path(image: ImageInfo) -> str:
    """Path of a field's ``labels`` group in its store."""
    return f"{image.path}/labels" if image.path else "labels"


def _label_path(image: ImageInfo, name: str) -> str:
    return f"{_labels_path(image)}/{name}"


def check_label_target(image: ImageInfo, name: str) -> Path | None:
    """Check that ``<image>/labels/<name>`` can be written without leaving the plate.

    Every folder from the store's root down to the label image must be a real folder
    (no symbolic link), and an existing label image must hold no symbolic link
    anywhere. Stores that are not local paths are not checked here.

    Returns
    -------
    pathlib.Path or None
        The label image's folder (None for a store that is not a local path).

    Raises
    ------
    UnsafePathError
        A symbolic link on the way or inside (a ``PermissionError``).
    ValueError
        An invalid label name.
    """
    check_name(name, "label name")
    if not is_local(image.store):
        return None
    folder = checked_path(image.store, _label_path(image, name))
    check_no_links(folder)
    return folder


def _checked_write(label: LabelImage, sub: str = "") -> None:
    if is_local(label.image.store):
        checked_path(label.image.store, f"{label.path}/{sub}" if sub else label.path)


def open_labels(image: ImageInfo, name: str) -> LabelImage:
    """Open an existing label image of a field.

    Raises
    ------
    KeyError
        If the field has no label image of that name.
    """
    check_name(name, "label name")
    where = _label_path(image, name)
    try:
        with metadata_errors(image.store, where):
            group = open_group_as(image.store, where, "r", image.ngff_version)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise KeyError(
            f"field {image.url} has no label image {name!r}; it has: "
            f"{', '.join(image.labels) or 'none'}"
        ) from None
    rec = _record(group)
    meta = read_ome(group).get("multiscales")
    try:
        if isinstance(meta, list) and meta:
            paths = tuple(str(d["path"]) for d in meta[0]["datasets"])
        else:
            paths = tuple(str(p) for p in rec.get("level_paths", ()))
    except (KeyError, TypeError, IndexError):
        raise MetadataError(f"label image {name!r} of {image.url}: multiscales datasets need "
                            f"a 'path' each; found {meta!r}") from None
    if not paths:
        raise KeyError(f"label image {name!r} of {image.url} has no multiscales metadata")
    for p in paths:
        for part in p.split("/"):
            check_name(part, f"dataset path of label image {name!r} of {image.url}")
    with metadata_errors(image.store, where):
        arrays = [group[p] for p in paths]
    return LabelImage(
        image=image,
        name=name,
        level_paths=paths,
        shapes=tuple(tuple(int(s) for s in a.shape) for a in arrays),
        chunks=tuple(tuple(int(c) for c in a.chunks) for a in arrays),
    )


def create_labels(
    image: ImageInfo,
    name: str,
    *,
    chunk_yx: int = 512,
    overwrite: bool = False,
    record: dict[str, Any] | None = None,
) -> LabelImage:
    """Create the (empty) arrays of a label image under ``<image>/labels/<name>``.

    Parameters
    ----------
    image : ImageInfo
        The field to label. Its arrays are never opened for writing.
    name : str
        Label image name (one path component).
    chunk_yx : int
        Chunk size along y and x; tasks write whole chunks.
    overwrite : bool
        Replace an existing label image of that name.
    record : dict, optional
        Run parameters stored in the ``structfree_dask`` attribute.

    Returns
    -------
    LabelImage

    Raises
    ------
    LabelExistsError
        If the label image exists and ``overwrite`` is False.
    PermissionError
        If the store cannot be written.
    """
    check_label_target(image, name)
    if chunk_yx < 16:
        raise ValueError(f"chunk_yx must be >= 16; got {chunk_yx}")
    version = image.ngff_version
    labels_group = _labels_root(image)
    if name in labels_group:
        if not overwrite:
            raise LabelExistsError(
                f"label image {name!r} already exists in {image.url}; "
                "pass overwrite=True (--overwrite) to replace it"
            )
        _delete_group(image, name)
        labels_group = _labels_root(image)
        _remove_from_list(labels_group, name, image.ngff_version)
    paths = [lvl.path for lvl in image.levels]
    shapes = [label_shape(lvl.shape, image.axes) for lvl in image.levels]
    chunks = [_label_chunks(shape, image.axes, chunk_yx) for shape in shapes]
    kwargs = array_kwargs(version, image.axes)
    rec = {"level_paths": paths, "done": [], **(record or {})}

    def build(lgroup: zarr.Group) -> None:
        for path, shape, chunk in zip(paths, shapes, chunks, strict=True):
            lgroup.create_array(path, shape=shape, chunks=chunk, dtype=LABEL_DTYPE,
                                fill_value=0, **kwargs)
        lgroup.attrs[RECORD_KEY] = rec

    try:  # all or nothing: a failure (a full disk...) leaves no half-made label image
        # made by zarr in memory, its metadata files then stored at once (zarr's own
        # creation checks every parent group's existence: ~50 requests per array on S3)
        store_files(join(image.store, _label_path(image, name)),
                    group_files(zarr_format_for(version), build))
    except BaseException:
        try:
            _delete_group(image, name)
        except Exception as err:  # noqa: BLE001 - the first error is the one to report
            logger.warning("could not remove the half-made label image %s of %s: %s", name,
                           image.url, err)
        raise
    return LabelImage(image, name, tuple(paths), tuple(shapes), tuple(chunks))


def _labels_root(image: ImageInfo) -> zarr.Group:
    """Return a field's ``labels`` group (opened for writing), made when missing.

    Not zarr's ``require_group``: on an object store it asks whether each parent group
    exists (~30 requests); this opens the group as its NGFF version (2) and, when
    missing, checks that no array is there (2) and stores its metadata made in memory (2).
    """
    where = _labels_path(image)
    version = image.ngff_version
    found = open_group_if_any(image.store, where, "r+", version)
    if found is not None:
        return found
    try:
        open_array_as(image.store, where, "r", version)
    except (FileNotFoundError, KeyError, zarr.errors.ArrayNotFoundError,
            zarr.errors.NodeTypeValidationError):
        pass
    else:
        raise MetadataError(f"{image.url}: 'labels' is an array; a group was expected")
    store_files(join(image.store, where),
                group_files(zarr_format_for(version), lambda _: None))
    return open_group_as(image.store, where, "r+", version)


def label_group_exists(image: ImageInfo, name: str) -> bool:
    """Return True when ``<image>/labels/<name>`` exists, listed or not, complete or not."""
    where = _label_path(image, name)
    with metadata_errors(image.store, where):
        return open_group_if_any(image.store, where, "r", image.ngff_version) is not None


def open_complete_labels(image: ImageInfo, name: str) -> LabelImage | None:
    """Open a label image whose group exists; None when it holds no usable label image.

    Neither NGFF ``multiscales`` metadata nor this package's record of its levels (or a
    level missing): what an interrupted creation (or another program) left. Such a group
    has no timepoint to keep.
    """
    try:
        return open_labels(image, name)
    except (KeyError, MetadataError, zarr.errors.ArrayNotFoundError, FileNotFoundError):
        return None


def extend_timepoints(label: LabelImage) -> LabelImage:
    """Grow a label image along ``t`` to its image's current number of timepoints.

    A growing time-lapse gets new timepoints appended to its image; the label image
    made earlier is resized (existing data kept, new timepoints empty and not done).

    Returns
    -------
    LabelImage
        The label image with its new shapes (the same object when nothing grew).

    Raises
    ------
    ValueError
        If the image now has fewer timepoints than the label image.
    """
    axes = label.image.axes
    if "t" not in axes:
        return label
    ti = axes.index("t")
    n_t = label.image.sizes["t"]
    have = label.shapes[0][ti]
    if have == n_t:
        return label
    if have > n_t:
        raise ValueError(f"label image {label.name!r} of {label.image.url} has {have} "
                         f"timepoints but its image only {n_t}")
    shapes = []
    for level in range(len(label.level_paths)):
        arr = label.open_array(level, mode="r+")
        new = list(arr.shape)
        new[ti] = n_t
        arr.resize(tuple(new))
        shapes.append(tuple(new))
    logger.info("label image %s of %s grown from %d to %d timepoints", label.name,
                label.image.url, have, n_t)
    return LabelImage(label.image, label.name, label.level_paths, tuple(shapes), label.chunks)


def _delete_group(image: ImageInfo, name: str) -> None:
    check_label_target(image, name)  # a local label image: no link on the way or inside
    remove_tree(join(image.store, _label_path(image, name)))  # an object store: its API


def _remove_from_list(labels_group: zarr.Group, name: str, version: str) -> None:
    listed = [n for n in read_ome(labels_group).get("labels", []) or [] if n != name]
    write_ome(labels_group, {"labels": listed}, version=version)


def write_label_region(
    label: LabelImage, region: dict[str, slice], data: np.ndarray, *, level: int = 0
) -> None:
    """Write one chunk-aligned region of a label image level.

    Parameters
    ----------
    label : LabelImage
    region : dict
        A slice per axis name (absent axes: the whole axis; ``c`` is always 0).
    data : numpy.ndarray
        Data of the region, with all the label's axes (size-1 axes may be omitted
        when ``data`` has exactly the y and x axes).
    level : int

    Raises
    ------
    ValueError
        If the region is not aligned to chunks (two tasks could then share a chunk)
        or the data does not have the region's shape.
    """
    axes = label.image.axes
    shape = label.shapes[level]
    chunks = label.chunks[level]
    index = []
    for ax, n, ch in zip(axes, shape, chunks, strict=True):
        sl = region.get(ax, slice(0, n)) if ax != "c" else slice(0, 1)
        start, stop, _ = sl.indices(n)
        if start % ch or (stop % ch and stop != n):
            raise ValueError(
                f"region {ax}={start}:{stop} of {label.path} is not aligned to chunks of {ch}"
            )
        index.append(slice(start, stop))
    target = tuple(s.stop - s.start for s in index)
    if data.shape != target:
        if int(np.prod(data.shape)) != int(np.prod(target)):
            raise ValueError(
                f"data of shape {data.shape} does not fit region {target} of {label.path}"
            )
        data = data.reshape(target)
    _checked_write(label, label.level_paths[level])
    arr = label.open_array(level)
    arr[tuple(index)] = np.asarray(data, dtype=LABEL_DTYPE)


def downsample_labels(labels: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Downsample a label array by taking every ``factor``-th pixel (nearest neighbour).

    Examples
    --------
    >>> downsample_labels(np.arange(16).reshape(4, 4), (2, 2))
    array([[ 0,  2],
           [ 8, 10]])
    """
    return labels[tuple(slice(None, None, f) for f in factors)]


def downsample_to(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Downsample a label array to a pyramid level's shape (:func:`downsample_labels`).

    The factor of each axis is the rounded ratio of the two sizes; the result is cropped or
    zero-padded to ``shape``, as every label pyramid of this package is made.

    Examples
    --------
    >>> downsample_to(np.arange(25).reshape(5, 5), (3, 3))
    array([[ 0,  2,  4],
           [10, 12, 14],
           [20, 22, 24]])
    """
    factors = tuple(max(1, round(b / s)) for b, s in zip(labels.shape, shape, strict=True))
    return _fit(downsample_labels(labels, factors), shape)


def finalize_labels(label: LabelImage, *, properties: dict[str, Any] | None = None) -> None:
    """Write the NGFF metadata of a label image, after its data.

    Writes ``multiscales`` (same transforms as the image), ``image-label`` (with
    ``source``) and adds the name to ``labels/`` once (re-running never duplicates it).

    Parameters
    ----------
    label : LabelImage
    properties : dict, optional
        Extra keys for the ``image-label`` block.
    """
    image = label.image
    version = image.ngff_version
    fmt = format_for(version)
    _checked_write(label)
    labels_group = _group_at(image, _labels_path(image), "r+")
    lgroup = _labels_group_of(label, "r+")
    datasets = []
    for lvl in image.levels:
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": list(lvl.scale)}]
        if lvl.translation is not None:
            transforms.append({"type": "translation", "translation": list(lvl.translation)})
        datasets.append({"path": lvl.path, "coordinateTransformations": transforms})
    axes_meta = []
    for ax in image.axes:
        kind = {"t": "time", "c": "channel"}.get(ax, "space")
        entry: dict[str, Any] = {"name": ax, "type": kind}
        if ax in image.units:
            entry["unit"] = image.units[ax]
        axes_meta.append(entry)
    multiscale: dict[str, Any] = {"name": label.name, "axes": axes_meta, "datasets": datasets}
    if fmt.zarr_format == 2:
        multiscale["version"] = version
    image_label: dict[str, Any] = {"source": {"image": "../../"}, **(properties or {})}
    if fmt.zarr_format == 2:
        image_label["version"] = version
    write_ome(lgroup, {"multiscales": [multiscale], "image-label": image_label}, version=version)
    listed = list(read_ome(labels_group).get("labels", []) or [])
    if label.name not in listed:
        listed.append(label.name)
    write_ome(labels_group, {"labels": listed}, version=version)


def write_labels(
    image: ImageInfo,
    name: str,
    data: np.ndarray,
    *,
    overwrite: bool = False,
    chunk_yx: int = 512,
) -> LabelImage:
    """Write a whole in-memory label image (all levels) with its metadata.

    Parameters
    ----------
    image : ImageInfo
    name : str
    data : numpy.ndarray
        Integer labels with the image's axes, ``c`` of size 1 or absent.
    overwrite : bool
    chunk_yx : int

    Returns
    -------
    LabelImage

    Raises
    ------
    ValueError
        If the shape does not match the image's (message names both shapes).
    TypeError
        If the data is not of an integer dtype.
    """
    if not np.issubdtype(np.asarray(data).dtype, np.integer):
        raise TypeError(f"labels must have an integer dtype; got {np.asarray(data).dtype}")
    expected = label_shape(image.shape, image.axes)
    no_c = tuple(n for ax, n in zip(image.axes, expected, strict=True) if ax != "c")
    if data.shape == no_c:
        data = data.reshape(expected)
    if data.shape != expected:
        raise ValueError(
            f"label image {name!r} for {image.url} must have shape {expected} "
            f"(axes {''.join(image.axes)}, c=1) or {no_c}; got {data.shape}"
        )
    if data.min(initial=0) < 0:
        raise ValueError(f"labels must be >= 0; got minimum {data.min()}")
    label = create_labels(image, name, chunk_yx=chunk_yx, overwrite=overwrite)
    for k in range(len(image.levels)):
        label.open_array(k)[...] = downsample_to(data, label.shapes[k]).astype(LABEL_DTYPE)
    finalize_labels(label)
    return label


def _fit(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Crop or zero-pad ``arr`` to ``shape``."""
    arr = arr[tuple(slice(0, n) for n in shape)]
    pad = [(0, n - s) for n, s in zip(shape, arr.shape, strict=True)]
    return np.pad(arr, pad) if any(p[1] for p in pad) else arr


def _group_at(image: ImageInfo, path: str, mode: str) -> zarr.Group:
    """Open a group of a field (``labels``, a label image) as the field's NGFF version."""
    with metadata_errors(image.store, path):
        return open_group_as(image.store, path, mode, image.ngff_version)


def _labels_group_of(label: LabelImage, mode: str) -> zarr.Group:
    return _group_at(label.image, label.path, mode)


def mark_done(label: LabelImage, timepoints: list[int], **info: Any) -> None:
    """Record that timepoints of a label image are complete (driver only).

    Parameters
    ----------
    label : LabelImage
    timepoints : list of int
    **info
        Extra keys merged into the record (e.g. run parameters, timings).
    """
    _set_done(label, lambda done: done | {int(t) for t in timepoints}, info)


def unmark_done(label: LabelImage, timepoints: list[int]) -> None:
    """Forget that timepoints of a label image are complete, before they are redone.

    Parameters
    ----------
    label : LabelImage
    timepoints : list of int
    """
    _set_done(label, lambda done: done - {int(t) for t in timepoints}, {})


def _set_done(label: LabelImage, change: Any, info: dict[str, Any]) -> None:
    _checked_write(label)
    group = _labels_group_of(label, "r+")
    rec = _record(group)
    done = sorted(change(set(int(t) for t in rec.get("done", []))))
    rec.update(info)
    rec["done"] = done
    group.attrs[RECORD_KEY] = rec


def completed_timepoints(label: LabelImage) -> set[int]:
    """Return the timepoints recorded as complete for a label image."""
    return {int(t) for t in _record(_labels_group_of(label, "r")).get("done", [])}


def label_record(label: LabelImage) -> dict[str, Any]:
    """Return this package's record of a label image (run parameters, completion)."""
    return _record(_labels_group_of(label, "r"))



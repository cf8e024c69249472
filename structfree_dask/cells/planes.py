"""Planes of a field read region by region (shared by linking, measuring and tracking)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..io import ImageInfo, LabelImage

__all__ = ["level_shape", "plane_index", "read_labels", "regions"]


def plane_index(image: ImageInfo, t: int, ys: slice, xs: slice, channels: Any = 0) -> tuple:
    """Index of a (y, x) region of plane (t, z=0) in an array with the image's axes."""
    where = {"t": t, "c": channels, "z": 0, "y": ys, "x": xs}
    return tuple(where[ax] for ax in image.axes)


def read_labels(label: LabelImage, t: int, ys: slice, xs: slice, level: int = 0) -> np.ndarray:
    """Read a (y, x) region of a label image's plane at ``t`` (and level)."""
    arr = label.open_array(level, mode="r")
    return np.asarray(arr[plane_index(label.image, t, ys, xs)])


def regions(ny: int, nx: int, size: int) -> list[tuple[slice, slice]]:
    """Split a plane into regions of ``size`` pixels per side (the last ones smaller).

    Examples
    --------
    >>> regions(3, 5, 4)
    [(slice(0, 3, None), slice(0, 4, None)), (slice(0, 3, None), slice(4, 5, None))]
    """
    return [(slice(y, min(y + size, ny)), slice(x, min(x + size, nx)))
            for y in range(0, ny, size) for x in range(0, nx, size)]


def level_shape(label: LabelImage, level: int) -> tuple[int, int]:
    """Size along y and x of a level of a label image."""
    axes = label.image.axes
    shape = label.shapes[level]
    return shape[axes.index("y")], shape[axes.index("x")]

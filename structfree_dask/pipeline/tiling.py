"""Tile geometry: the network lattice of a field, task regions, halos and windows.

Two grids are involved, both properties of the field's shape only:

* the **network lattice**: the 224 px tiles the network sees, placed over the
  rescaled field exactly as cellpose places them over a whole image (overlap 10 %);
* the **task regions**: ``tile_size`` squares of the original field, aligned with the
  label chunks. Each lattice tile belongs to the region containing its origin.

Because the lattice does not depend on the task regions, the flows of every pixel —
and hence the labels — are the same whatever the tile size or number of workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "NET_TILE",
    "FieldGeometry",
    "halo_depth",
    "lattice_padding",
    "lattice_starts",
    "to_rescaled",
    "to_original",
]

#: Side of the network's tiles in rescaled pixels (cellpose's ``bsize``).
NET_TILE = 224
_TILE_OVERLAP = 0.1


def halo_depth(diameter: float, *, factor: float = 2.0, margin: int = 8) -> int:
    """Return the halo (in original pixels) around a task region for flow integration.

    Cellpose follows flows for about one diameter; a cell owned by a region may reach
    one diameter beyond it. Two diameters plus a margin keeps every owned cell whole.

    Parameters
    ----------
    diameter : float
        Expected cell diameter in original pixels.
    factor : float
        Halo in diameters.
    margin : int
        Extra pixels.

    Returns
    -------
    int

    Examples
    --------
    >>> halo_depth(30)
    68
    """
    if not diameter > 0:
        raise ValueError(f"diameter must be > 0; got {diameter}")
    return int(math.ceil(factor * diameter)) + margin


def lattice_starts(length: int, tile: int = NET_TILE, overlap: float = _TILE_OVERLAP) -> np.ndarray:
    """Return the start of each network tile along one axis, as cellpose places them.

    Examples
    --------
    >>> lattice_starts(512).tolist()
    [0, 144, 288]
    >>> lattice_starts(100).tolist()
    [0]
    """
    if length <= tile:
        return np.zeros(1, dtype=int)
    n = int(np.ceil((1.0 + 2 * overlap) * length / tile))
    return np.linspace(0, length - tile, n).astype(int)


def lattice_padding(length: int, div: int = 16, extra: int = 1) -> tuple[int, int]:
    """Zero padding cellpose adds around a rescaled image before tiling (``get_pad_yx``).

    Examples
    --------
    >>> lattice_padding(400)
    (8, 8)
    >>> lattice_padding(500)
    (14, 14)
    """
    lpad = int(div * math.ceil(length / div) - length)
    return extra * div // 2 + lpad // 2, extra * div // 2 + lpad - lpad // 2


def to_rescaled(i: np.ndarray | float, scale: float) -> np.ndarray | float:
    """Map original pixel coordinates to rescaled ones (pixel-centre convention)."""
    return (np.asarray(i) + 0.5) * scale - 0.5


def to_original(u: np.ndarray | float, scale: float) -> np.ndarray | float:
    """Map rescaled pixel coordinates to original ones (pixel-centre convention)."""
    return (np.asarray(u) + 0.5) / scale - 0.5


@dataclass(frozen=True)
class FieldGeometry:
    """The tiling of one field plane.

    Parameters
    ----------
    shape : (int, int)
        Field size (y, x) in original pixels.
    tile_size : int
        Task region side in original pixels (also the label chunk size).
    halo : int
        Halo for flow integration in original pixels.
    rescale : float
        Network pixels per original pixel (``diam_mean / diameter``).

    Examples
    --------
    >>> g = FieldGeometry((1000, 700), tile_size=512, halo=64, rescale=1.0)
    >>> g.n_regions, g.region_bounds((1, 0))
    ((2, 2), (512, 1000, 0, 512))
    >>> g.window((1, 0))
    (448, 1000, 0, 576)
    """

    shape: tuple[int, int]
    tile_size: int
    halo: int
    rescale: float = 1.0

    def __post_init__(self) -> None:
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise ValueError(f"shape must be two positive sizes (y, x); got {self.shape}")
        if self.tile_size < 16:
            raise ValueError(f"tile_size must be >= 16; got {self.tile_size}")
        if self.halo < 0:
            raise ValueError(f"halo must be >= 0; got {self.halo}")
        if not self.rescale > 0:
            raise ValueError(f"rescale must be > 0; got {self.rescale}")

    # ---- rescaled field and network lattice
    @cached_property
    def rescaled_shape(self) -> tuple[int, int]:
        """Field size in network pixels (as cellpose: ``int(L * rescale)``)."""
        return (max(1, int(self.shape[0] * self.rescale)),
                max(1, int(self.shape[1] * self.rescale)))

    @cached_property
    def scale(self) -> tuple[float, float]:
        """Exact rescaled/original size ratio along y and x."""
        return (self.rescaled_shape[0] / self.shape[0], self.rescaled_shape[1] / self.shape[1])

    @property
    def is_identity(self) -> bool:
        """True when no resampling is needed."""
        return self.rescaled_shape == tuple(self.shape)

    @cached_property
    def lattice(self) -> tuple[np.ndarray, np.ndarray]:
        """Starts of the network tiles along y and x (rescaled pixels).

        As in cellpose, the rescaled field is zero-padded (to a multiple of 16 plus
        8 px a side) and tiled; starts can therefore be negative.
        """
        out = []
        for length in self.rescaled_shape:
            p1, p2 = lattice_padding(length)
            out.append(lattice_starts(length + p1 + p2) - p1)
        return out[0], out[1]

    # ---- task regions
    @cached_property
    def n_regions(self) -> tuple[int, int]:
        """Number of task regions along y and x."""
        t = self.tile_size
        return (math.ceil(self.shape[0] / t), math.ceil(self.shape[1] / t))

    def regions(self) -> list[tuple[int, int]]:
        """All region indices in row-major order."""
        ny, nx = self.n_regions
        return [(iy, ix) for iy in range(ny) for ix in range(nx)]

    def region_bounds(self, region: tuple[int, int]) -> tuple[int, int, int, int]:
        """Owned area ``(y0, y1, x0, x1)`` of a region in original pixels."""
        iy, ix = region
        t = self.tile_size
        return (iy * t, min((iy + 1) * t, self.shape[0]), ix * t, min((ix + 1) * t, self.shape[1]))

    def window(self, region: tuple[int, int]) -> tuple[int, int, int, int]:
        """Region plus halo, clipped to the field (original pixels)."""
        y0, y1, x0, x1 = self.region_bounds(region)
        h = self.halo
        return (max(0, y0 - h), min(self.shape[0], y1 + h), max(0, x0 - h),
                min(self.shape[1], x1 + h))

    # ---- lattice tiles owned by regions
    def _owner_axis(self, starts: np.ndarray, axis: int) -> np.ndarray:
        orig = np.floor(to_original(starts, self.scale[axis]) + 1e-6).clip(0, self.shape[axis] - 1)
        return np.minimum(orig // self.tile_size, self.n_regions[axis] - 1).astype(int)

    def owned_tiles(self, region: tuple[int, int]) -> list[tuple[int, int]]:
        """Lattice tile starts ``(ys, xs)`` (rescaled) owned by a region, in fixed order."""
        ys, xs = self.lattice
        oy, ox = self._owner_axis(ys, 0), self._owner_axis(xs, 1)
        return [(int(y), int(x)) for y, a in zip(ys, oy, strict=True) if a == region[0]
                for x, b in zip(xs, ox, strict=True) if b == region[1]]

    def tiles_box(self, region: tuple[int, int]) -> tuple[int, int, int, int] | None:
        """Rescaled bounding box of the tiles a region owns, or None if it owns none."""
        tiles = self.owned_tiles(region)
        if not tiles:
            return None
        ys = [t[0] for t in tiles]
        xs = [t[1] for t in tiles]
        return (min(ys), max(ys) + NET_TILE, min(xs), max(xs) + NET_TILE)

    def rescaled_window(self, window: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """Rescaled pixels needed to interpolate the flows of an original window."""
        if self.is_identity:
            return window
        y0, y1, x0, x1 = window
        sy, sx = self.scale
        ry, rx = self.rescaled_shape
        uy0 = int(np.floor(to_rescaled(y0, sy)))
        uy1 = int(np.floor(to_rescaled(y1 - 1, sy))) + 2
        ux0 = int(np.floor(to_rescaled(x0, sx)))
        ux1 = int(np.floor(to_rescaled(x1 - 1, sx))) + 2
        return (max(0, uy0), min(ry, uy1), max(0, ux0), min(rx, ux1))

    def contributors(self, region: tuple[int, int]) -> list[tuple[int, int]]:
        """Regions whose owned lattice tiles overlap this region's (rescaled) window."""
        wy0, wy1, wx0, wx1 = self.rescaled_window(self.window(region))
        out = []
        for other in self.regions():
            box = self.tiles_box(other)
            if box is None:
                continue
            by0, by1, bx0, bx1 = box
            if by0 < wy1 and wy0 < by1 and bx0 < wx1 and wx0 < bx1:
                out.append(other)
        return out

    def neighbours(self, region: tuple[int, int]) -> list[tuple[int, int]]:
        """Regions whose windows overlap this region's owned area (itself included)."""
        y0, y1, x0, x1 = self.region_bounds(region)
        out = []
        for other in self.regions():
            wy0, wy1, wx0, wx1 = self.window(other)
            if wy0 < y1 and y0 < wy1 and wx0 < x1 and x0 < wx1:
                out.append(other)
        return out

    def source_window(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """Original pixels needed to render a rescaled box (clipped to the field)."""
        if self.is_identity:
            y0, y1, x0, x1 = box
            return (max(0, y0), min(self.shape[0], y1), max(0, x0), min(self.shape[1], x1))
        y0, y1, x0, x1 = box
        sy, sx = self.scale
        oy0 = int(np.floor(to_original(y0, sy))) - 1
        oy1 = int(np.floor(to_original(y1 - 1, sy))) + 3
        ox0 = int(np.floor(to_original(x0, sx))) - 1
        ox1 = int(np.floor(to_original(x1 - 1, sx))) + 3
        return (max(0, oy0), min(self.shape[0], oy1), max(0, ox0), min(self.shape[1], ox1))

"""Per-channel network flows on the field's lattice, and Flow Averaging (FA).

Each channel of a field is fed to the network on its own. For every network tile the
(dY, dX, cell probability) maps are weighted by cellpose's taper mask and added into
float32 accumulators, together with the weights; dividing once by ``n_channels x
weight`` gives the flows averaged over overlapping tiles *and* over channels — Flow
Averaging is the same reduction over the channel axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from .tiling import NET_TILE, FieldGeometry, to_original, to_rescaled

__all__ = [
    "FLOW_DTYPE",
    "FlowContribution",
    "render_rescaled",
    "region_contribution",
    "assemble_flows",
    "resample_to_original",
    "average_flows",
    "taper_mask",
]

FLOW_DTYPE = np.dtype("float32")
#: dtype in which a region's weighted sums wait for their consumers: half the memory
#: and transfer of float32; sums are formed in float32 and rounded once.
STORE_DTYPE = np.dtype("float16")
#: Lattice tiles sent to the network per call (times the number of channels).
PREDICT_CHUNK = 8
Box = tuple[int, int, int, int]


def taper_mask(size: int = NET_TILE) -> np.ndarray:
    """Cellpose's taper weights for one network tile (``transforms._taper_mask``)."""
    from cellpose.transforms import _taper_mask

    return _taper_mask(ly=size, lx=size).astype(FLOW_DTYPE)


@dataclass(frozen=True)
class FlowContribution:
    """Weighted network outputs of the lattice tiles one task region owns.

    Attributes
    ----------
    box : (int, int, int, int)
        Rescaled ``(y0, y1, x0, x1)`` covered by ``acc``.
    acc : numpy.ndarray or DiskArray
        ``(3, h, w)`` float16 sum over channels and tiles of ``taper x (dY, dX, prob)``;
        ``(c, 3, h, w)`` (a sum per channel) when the channels are kept apart for a
        mask-fusion baseline. The engine keeps it on the worker's local disk
        (:class:`~structfree_dask.runtime.scratch.DiskArray`) until every window that needs
        it is integrated; only the slices each window needs are read back.
    tiles : tuple of (int, int)
        Starts of the lattice tiles summed (their taper weights are recomputed when
        the flows are assembled, so they need not be stored).
    n_channels : int
    """

    box: Box
    acc: Any  # numpy.ndarray or DiskArray
    tiles: tuple[tuple[int, int], ...]
    n_channels: int

    @property
    def separate(self) -> bool:
        """True when each channel's sum is kept apart (``acc`` is ``(c, 3, h, w)``)."""
        return self.acc.ndim == 4


def render_rescaled(
    image: np.ndarray, origin: tuple[int, int], box: Box, geometry: FieldGeometry
) -> np.ndarray:
    """Render a rescaled box of the field from an original-resolution window.

    Parameters
    ----------
    image : numpy.ndarray
        ``(c, h, w)`` normalized window of the field.
    origin : (int, int)
        Original coordinates of ``image[:, 0, 0]``.
    box : (int, int, int, int)
        Rescaled box to render; parts outside the field are zero.
    geometry : FieldGeometry

    Returns
    -------
    numpy.ndarray
        ``(c, y1 - y0, x1 - x0)`` float32.
    """
    y0, y1, x0, x1 = box
    c = image.shape[0]
    out = np.zeros((c, y1 - y0, x1 - x0), dtype=FLOW_DTYPE)
    ry, rx = geometry.rescaled_shape
    vy0, vy1, vx0, vx1 = max(0, y0), min(ry, y1), max(0, x0), min(rx, x1)
    if vy1 <= vy0 or vx1 <= vx0:
        return out
    if geometry.is_identity:
        oy, ox = origin
        out[:, vy0 - y0 : vy1 - y0, vx0 - x0 : vx1 - x0] = image[
            :, vy0 - oy : vy1 - oy, vx0 - ox : vx1 - ox
        ]
        return out
    sy, sx = geometry.scale
    gy = np.clip(to_original(np.arange(vy0, vy1), sy), 0, geometry.shape[0] - 1) - origin[0]
    gx = np.clip(to_original(np.arange(vx0, vx1), sx), 0, geometry.shape[1] - 1) - origin[1]
    coords = np.meshgrid(gy, gx, indexing="ij")
    for k in range(c):
        out[k, vy0 - y0 : vy1 - y0, vx0 - x0 : vx1 - x0] = ndimage.map_coordinates(
            image[k], coords, order=1, mode="nearest"
        )
    return out


def region_contribution(
    image: np.ndarray,
    origin: tuple[int, int],
    geometry: FieldGeometry,
    region: tuple[int, int],
    predict: object,
    separate: bool = False,
) -> FlowContribution | None:
    """Run the network on the lattice tiles a region owns, each channel alone.

    Parameters
    ----------
    image : numpy.ndarray
        ``(c, h, w)`` normalized window covering ``geometry.source_window`` of the
        region's tiles box.
    origin : (int, int)
        Original coordinates of ``image[:, 0, 0]``.
    geometry : FieldGeometry
    region : (int, int)
    predict : callable
        ``predict(tiles (n, 224, 224)) -> (n, 3, 224, 224)``; tile ``i * c + k`` is
        lattice tile ``i`` of channel ``k``.
    separate : bool
        Keep one sum per channel (for mask fusion) instead of their sum (FA).

    Returns
    -------
    FlowContribution or None
        None when the region owns no lattice tile.
    """
    box = geometry.tiles_box(region)
    if box is None:
        return None
    tiles = geometry.owned_tiles(region)
    rendered = render_rescaled(image, origin, box, geometry)
    c = rendered.shape[0]
    mask = taper_mask()
    shape = (3, box[1] - box[0], box[3] - box[2])
    acc = np.zeros((c, *shape) if separate else shape, dtype=FLOW_DTYPE)
    # a few tiles per call: the network's outputs never pile up for the whole region
    for start in range(0, len(tiles), PREDICT_CHUNK):
        chunk = tiles[start : start + PREDICT_CHUNK]
        batch = np.empty((len(chunk) * c, NET_TILE, NET_TILE), dtype=FLOW_DTYPE)
        for i, (ys, xs) in enumerate(chunk):
            ly, lx = ys - box[0], xs - box[2]
            batch[i * c : (i + 1) * c] = rendered[:, ly : ly + NET_TILE, lx : lx + NET_TILE]
        y = predict(batch)  # type: ignore[operator]
        for i, (ys, xs) in enumerate(chunk):
            ly, lx = ys - box[0], xs - box[2]
            sl = (slice(ly, ly + NET_TILE), slice(lx, lx + NET_TILE))
            for k in range(c):  # fixed order: bitwise-reproducible sums
                dst = acc[k] if separate else acc
                dst[(slice(None), *sl)] += y[i * c + k] * mask
        del batch, y
    return FlowContribution(box=box, acc=acc.astype(STORE_DTYPE), tiles=tuple(tiles),
                            n_channels=c)


def assemble_flows(contributions: Sequence[FlowContribution | None], box: Box) -> np.ndarray:
    """Add contributions into a rescaled box and normalise: the averaged flows.

    Parameters
    ----------
    contributions : sequence of FlowContribution
        In a fixed order (sums are then bitwise reproducible).
    box : (int, int, int, int)
        Rescaled box to assemble; every pixel must be covered by some tile.

    Returns
    -------
    numpy.ndarray
        ``(3, h, w)`` float32 flows averaged over tiles and channels; ``(c, 3, h, w)``
        averaged over tiles only when the contributions keep channels apart.
    """
    y0, y1, x0, x1 = box
    first = next((con for con in contributions if con is not None), None)
    lead = first.acc.shape[:-2] if first is not None else (3,)
    acc = np.zeros((*lead, y1 - y0, x1 - x0), dtype=FLOW_DTYPE)
    weight = np.zeros((y1 - y0, x1 - x0), dtype=FLOW_DTYPE)
    mask = taper_mask()
    n_channels = 0
    for con in contributions:
        if con is None:
            continue
        n_channels = con.n_channels
        cy0, cy1, cx0, cx1 = con.box
        iy0, iy1, ix0, ix1 = max(y0, cy0), min(y1, cy1), max(x0, cx0), min(x1, cx1)
        if iy1 <= iy0 or ix1 <= ix0:
            continue
        dst = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
        src = (slice(iy0 - cy0, iy1 - cy0), slice(ix0 - cx0, ix1 - cx0))
        acc[(..., *dst)] += con.acc[(..., *src)]
        for ty, tx in con.tiles:  # the taper weights of this contribution's tiles
            ty0, ty1 = max(y0, ty), min(y1, ty + NET_TILE)
            tx0, tx1 = max(x0, tx), min(x1, tx + NET_TILE)
            if ty1 > ty0 and tx1 > tx0:
                weight[ty0 - y0 : ty1 - y0, tx0 - x0 : tx1 - x0] += mask[
                    ty0 - ty : ty1 - ty, tx0 - tx : tx1 - tx]
    if n_channels == 0 or (weight <= 0).any():
        raise RuntimeError(f"flows of box {box} are not covered by the network tiles")
    acc /= weight if acc.ndim == 4 else weight * n_channels
    return acc


def resample_to_original(
    flows: np.ndarray, rbox: Box, window: Box, geometry: FieldGeometry
) -> np.ndarray:
    """Interpolate rescaled flows at the pixels of an original window (bilinear).

    Returns
    -------
    numpy.ndarray
        ``(3, wy1 - wy0, wx1 - wx0)`` float32 (``(c, 3, ...)`` for per-channel flows).
    """
    if geometry.is_identity:
        y0, y1, x0, x1 = window
        return flows[..., y0 - rbox[0] : y1 - rbox[0], x0 - rbox[2] : x1 - rbox[2]]
    if flows.ndim == 4:
        return np.stack([resample_to_original(f, rbox, window, geometry) for f in flows])
    sy, sx = geometry.scale
    ry, rx = geometry.rescaled_shape
    gy = np.clip(to_rescaled(np.arange(window[0], window[1]), sy), 0, ry - 1) - rbox[0]
    gx = np.clip(to_rescaled(np.arange(window[2], window[3]), sx), 0, rx - 1) - rbox[2]
    coords = np.meshgrid(gy, gx, indexing="ij")
    out = np.empty((3, len(gy), len(gx)), dtype=FLOW_DTYPE)
    for k in range(3):
        out[k] = ndimage.map_coordinates(flows[k], coords, order=1, mode="nearest")
    return out


def average_flows(flows: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """Flow Averaging of per-channel Cellpose maps: the mean over the channel axis.

    Parameters
    ----------
    flows : numpy.ndarray
        Per-channel maps, e.g. ``(c, 3, y, x)`` with (dY, dX, cell probability).
    axis : int
        The channel axis.

    Returns
    -------
    numpy.ndarray
        float32 maps with the channel axis removed.

    Examples
    --------
    >>> f = np.stack([np.ones((3, 2, 2)), 3 * np.ones((3, 2, 2))])
    >>> average_flows(f)[:, 0, 0]
    array([2., 2., 2.], dtype=float32)
    """
    return np.mean(np.asarray(flows, dtype=FLOW_DTYPE), axis=axis, dtype=FLOW_DTYPE)

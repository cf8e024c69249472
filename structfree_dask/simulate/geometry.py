"""Rasterised cell and nucleus geometry of one timepoint.

:func:`render_geometry` draws every cell as an irregular star-shaped region (partitioned
between touching cells by a multiplicatively weighted Voronoi rule) with an offset nucleus
ellipse, into a :class:`Geometry`; :func:`crop_geometry` cuts a camera's window out of a
larger rendered world (stage jitter); :func:`make_tile` makes the noise tile of the boundary
wobble.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import skimage.measure

from .population import DYING, HARMONICS, MITOTIC, Cells
from .textures import freq2, gauss_tf, random_field

__all__ = ["Geometry", "crop_geometry", "make_tile", "render_geometry", "stray_fragments"]


@dataclass
class Geometry:
    """Label images and per-pixel geometry of one timepoint."""

    cyto: npt.NDArray[np.uint32]
    nuclei: npt.NDArray[np.uint32]
    dist: npt.NDArray[np.float32]  # normalised distance to the cell centre (1 at the edge)
    rho: npt.NDArray[np.float32]  # normalised nucleus ellipse radius (1 at the nucleus edge)


def make_tile(rng: np.random.Generator, r_med: float) -> npt.NDArray[np.float32]:
    """Periodic smooth noise tile used for cell-boundary wobble (moves with the cell)."""
    t = 1 << max(7, math.ceil(math.log2(6.0 * r_med)))
    f2 = freq2(t, t)
    tf = gauss_tf(f2, max(0.18 * r_med, 1.0))
    return random_field(rng, f2, tf, (t, t))


_CANDIDATE_BATCH = 1 << 20
_N_ANGLES = 128


def render_geometry(
    cells: Cells, shape: tuple[int, int], tile: npt.NDArray[np.float32]
) -> Geometry:
    """Rasterise cells and nuclei of one timepoint (vectorised over cells and pixels).

    Every cell claims the pixels of its irregular star-shaped region (centred on the nearest
    pixel); where regions overlap, the pixel goes to the cell with the smallest normalised
    distance (a multiplicatively weighted Voronoi partition), so touching cells share a
    boundary.
    """
    h, w = shape
    f32 = np.float32
    tsz = tile.shape[0]
    wobble = 0.07
    n = len(cells["id"])

    # render-time modifiers of mitotic (rounded) and dying (shrinking, rounded) cells
    state = cells["state"]
    r = cells["r"].copy()
    harm = cells["harm_a"].copy()
    nscale = np.ones(n)
    mit = state == MITOTIC
    r[mit] *= 0.8
    harm[mit] *= 0.15
    nscale[mit] = 1.1
    dying = state == DYING
    r[dying] *= 0.72 ** (cells["state_age"][dying].astype(float) + 1.0)
    harm[dying] *= 0.3
    nscale[dying] = 0.65
    iy = np.round(cells["y"]).astype(np.int64)
    ix = np.round(cells["x"]).astype(np.int64)
    half = np.ceil(r * (1.0 + harm.sum(axis=1) + 3.0 * wobble) + 1.0).astype(np.int64)
    visible = (iy + half >= 0) & (iy - half < h) & (ix + half >= 0) & (ix - half < w)
    at_border = (iy - half <= 0) | (ix - half <= 0) | (iy + half >= h - 1) | (ix + half >= w - 1)

    # boundary radius of every cell on a table of angles: r * (1 + sum_k a_k cos(k t - phi_k))
    theta = -np.pi + (np.arange(_N_ANGLES) + 0.5) * (2 * np.pi / _N_ANGLES)
    kt = HARMONICS[None, :, None] * theta[None, None, :] - cells["harm_phi"][:, :, None]
    ripple = np.einsum("nk,nka->na", harm.astype(np.float32), np.cos(kt.astype(np.float32)))
    radius = r.astype(np.float32)[:, None] * (f32(1.0) + ripple)
    group = np.where(visible, (half + 3) // 4 * 4, -1)  # half-widths rounded up to 4 px
    tile_pad = np.pad(tile, ((0, 2 * int(group.max(initial=0)) + 1),) * 2, mode="wrap")
    windows = np.lib.stride_tricks.sliding_window_view

    best = np.full(h * w, np.inf, dtype=np.float32)
    owner = np.full(h * w, -1, dtype=np.int64)
    cand: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for g in np.unique(group[group >= 0]):
        members = np.flatnonzero(group == g)
        size = 2 * int(g) + 1
        off = np.arange(-g, g + 1)
        rr = np.sqrt((off[:, None] ** 2 + off[None, :] ** 2).astype(np.float32))
        ang = np.arctan2(off[:, None], off[None, :]).astype(np.float32)
        aidx = (np.floor((ang + np.pi) * (_N_ANGLES / (2 * np.pi))).astype(np.int64)) % _N_ANGLES
        step = max(1, _CANDIDATE_BATCH // (size * size))
        for c0 in range(0, len(members), step):
            idx = members[c0 : c0 + step]
            rad = np.take(radius[idx], aidx, axis=1)  # (m, size, size)
            wobble_px = windows(tile_pad, (size, size))[
                cells["tile_oy"][idx] % tsz, cells["tile_ox"][idx] % tsz
            ]
            d = rr[None] / rad + f32(wobble) * wobble_px
            py = iy[idx, None] + off[None, :]  # (m, size)
            px = ix[idx, None] + off[None, :]
            ok_y = (py >= 0) & (py < h)
            ok_x = (px >= 0) & (px < w)
            m, ry, rx = np.nonzero((d < 1.0) & ok_y[:, :, None] & ok_x[:, None, :])
            pix = py[m, ry] * w + px[m, rx]
            dd = d[m, ry, rx]
            np.minimum.at(best, pix, dd)
            cand.append((pix, dd, idx[m]))
    # per pixel, the candidate with the smallest normalised distance wins (ties: larger index)
    for pix, dd, cell in cand:
        win = dd == best[pix]
        np.maximum.at(owner, pix[win], cell[win])

    # nuclei: offset ellipses clipped to their own cell
    pix = np.flatnonzero(owner >= 0)
    cell = owner[pix]
    py, px = np.divmod(pix, w)
    rn = r[cell]
    ey = (py - iy[cell] - cells["nuc_dy"][cell] * rn).astype(np.float32)
    ex = (px - ix[cell] - cells["nuc_dx"][cell] * rn).astype(np.float32)
    ct = np.cos(cells["nuc_theta"]).astype(np.float32)[cell]
    st = np.sin(cells["nuc_theta"]).astype(np.float32)[cell]
    a = np.maximum(cells["nuc_a"] * nscale * r, 1.0).astype(np.float32)[cell]
    b = np.maximum(cells["nuc_b"] * nscale * r, 1.0).astype(np.float32)[cell]
    u = (ex * ct + ey * st) / a
    v = (ey * ct - ex * st) / b
    rho = np.sqrt(u * u + v * v)
    inside = rho <= 1.0
    # a cell whose nucleus got clipped away entirely is dropped, unless the field border cuts it
    n_nuc = np.bincount(cell[inside], minlength=n)
    drop = (n_nuc == 0) & ~at_border
    live = ~drop[cell]
    ids = cells["id"].astype(np.uint32)
    cyto = np.zeros(h * w, dtype=np.uint32)
    nuc = np.zeros(h * w, dtype=np.uint32)
    rho_map = np.full(h * w, 1e3, dtype=np.float32)
    cyto[pix[live]] = ids[cell[live]]
    nuc_px = live & inside
    nuc[pix[nuc_px]] = ids[cell[nuc_px]]
    rho_map[pix[live]] = rho[live]
    best[pix[~live]] = np.inf
    cyto = cyto.reshape(shape)
    nuc = nuc.reshape(shape)
    stray = _drop_strays(cyto, nuc)
    best = best.reshape(shape)
    best[stray] = np.inf
    best[~np.isfinite(best)] = 1.0
    rho_map = rho_map.reshape(shape)
    rho_map[stray] = 1e3
    return Geometry(cyto=cyto, nuclei=nuc, dist=best, rho=rho_map)


def _drop_strays(
    cyto: npt.NDArray[np.uint32], nuc: npt.NDArray[np.uint32]
) -> npt.NDArray[np.bool_]:
    """Keep one 4-connected piece per cell and per nucleus (in place); return the cells' strays.

    Weighted Voronoi regions (and a window cut from a larger world) can leave a cell in
    pieces: the kept piece holds most of the nucleus, then is the largest; likewise one
    piece per nucleus.
    """
    stray = stray_fragments(cyto, nuc > 0)
    cyto[stray] = 0
    nuc[stray] = 0
    nuc[stray_fragments(nuc, nuc > 0)] = 0
    return stray


def crop_geometry(geo: Geometry, origin: tuple[int, int], shape: tuple[int, int]) -> Geometry:
    """Return the window ``shape`` at ``origin`` ``(y0, x0)`` of a geometry rendered larger.

    The window is what a camera sees of a larger rendered world: cells cut by its edge keep
    their ID (also with their nucleus outside the window), and a cell (or nucleus) that the
    window cuts into several 4-connected pieces keeps one, as :func:`render_geometry` keeps
    one per cell (the pixels of the others become background).

    Raises
    ------
    ValueError
        The window does not lie inside the geometry.

    Examples
    --------
    >>> lab = np.zeros((6, 6), np.uint32); lab[1:5, 1:5] = 7; lab[2:4, 2] = 0
    >>> geo = Geometry(cyto=lab, nuclei=np.zeros_like(lab), dist=np.zeros((6, 6), np.float32),
    ...                rho=np.zeros((6, 6), np.float32))
    >>> crop_geometry(geo, (1, 1), (4, 4)).cyto.tolist()  # a U-shaped cell: one ID, one piece
    [[7, 7, 7, 7], [7, 0, 7, 7], [7, 0, 7, 7], [7, 7, 7, 7]]
    >>> crop_geometry(geo, (2, 0), (2, 5)).cyto.tolist()  # cut in two: the larger piece stays
    [[0, 0, 0, 7, 7], [0, 0, 0, 7, 7]]
    """
    (y0, x0), (h, w) = origin, shape
    ny, nx = geo.cyto.shape
    if not (0 <= y0 <= ny - h and 0 <= x0 <= nx - w):
        raise ValueError(f"window {h} x {w} at ({y0}, {x0}) does not fit in {ny} x {nx}")
    win = (slice(y0, y0 + h), slice(x0, x0 + w))
    cyto, nuc = geo.cyto[win].copy(), geo.nuclei[win].copy()
    dist, rho = geo.dist[win].copy(), geo.rho[win].copy()
    stray = _drop_strays(cyto, nuc)
    dist[stray] = 1.0
    rho[stray] = 1e3
    return Geometry(cyto=cyto, nuclei=nuc, dist=dist, rho=rho)


def stray_fragments(
    lab: npt.NDArray[np.uint32], weight: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """Mask of the pixels of all but one 4-connected piece of every label.

    The kept piece of a label is the one with the most ``weight`` pixels, then the largest.
    """
    comps = skimage.measure.label(lab, background=0, connectivity=1).ravel()
    n_comp = int(comps.max())
    flat = lab.ravel()
    owner = np.zeros(n_comp + 1, dtype=np.int64)
    owner[comps] = flat
    if len(np.unique(owner[1:])) == n_comp:  # every label is a single piece
        return np.zeros(lab.shape, dtype=bool)
    area = np.bincount(comps, minlength=n_comp + 1)
    heavy = np.bincount(comps, weights=weight.ravel(), minlength=n_comp + 1)
    cand = np.arange(1, n_comp + 1)
    order = np.lexsort((cand, area[cand], heavy[cand], owner[cand]))
    ordered = cand[order]
    last = np.ones(len(ordered), dtype=bool)
    last[:-1] = owner[ordered[1:]] != owner[ordered[:-1]]
    keep = np.zeros(n_comp + 1, dtype=bool)
    keep[0] = True
    keep[ordered[last]] = True
    return ~keep[comps].reshape(lab.shape)

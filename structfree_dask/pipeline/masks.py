"""Masks from the network's flows on the CPU: cellpose's steps, without its dynamics module.

Importing ``cellpose.dynamics`` (or ``cellpose.utils``, which imports it) compiles numba
kernels the CPU integration never calls (3-D and non-interpolated flow following, the
diffusion that :mod:`.flowcheck` replaces): 2.6-3.3 s of one core in every fresh worker
process, most of a short run's first integration (benchmarks/README.md). The functions the
CPU integration needs are here, written as cellpose 3.1 writes them (BSD-3-Clause:
``structfree_dask/_data/LICENSE-cellpose.txt``), so that every result is bitwise cellpose's
(``tests/pipeline/test_masks.py`` compares each with cellpose's own):

- :func:`follow`: ``dynamics.steps_interp`` (Euler steps of the flows looked up as
  ``dynamics.map_coordinates`` interpolates them) as one compiled loop, the pixels that
  have settled stopped early (:func:`.integrate.integrate_flows`); cached on disk as
  cellpose caches its kernels, compiled at each start where no cache can be written
  (:func:`~structfree_dask.pipeline.kernels.kernel`);
- :func:`masks_from_sinks`: ``dynamics.get_masks_torch``, seeds at the peaks of the
  histogram of the pixels' final positions, grown over places where more than two ended;
- :func:`fill_holes_and_remove_small_masks`: ``utils.fill_holes_and_remove_small_masks``
  in 2-D.

The module compiles (or loads) its kernel when imported: import it on a clean stack, as
:mod:`.integrate` does (numba keeps the importing stack).

Examples
--------
>>> masks = np.zeros((9, 9), np.uint16); masks[1:8, 1:8] = 1; masks[4, 4] = 0
>>> fill_holes_and_remove_small_masks(masks, min_size=15)[4, 4]
np.uint16(1)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import DEFAULT_MIN_SIZE
from .kernels import kernel

__all__ = ["follow", "masks_from_sinks", "fill_holes_and_remove_small_masks"]

#: Histogram padding around the field (cellpose's ``rpad``).
_PAD = 20


@kernel("float32[:,:](float32[:,:,:], float32[:,:], int64, int64, float32)")
def follow(flows: np.ndarray, start: np.ndarray, niter: int, every: int,
           settled: float) -> np.ndarray:  # pragma: no cover - compiled
    """Return the final ``(2, n)`` positions of the pixels at ``start`` after ``niter`` steps.

    cellpose's CPU ``steps_interp`` (Euler steps of the flows bilinearly interpolated as
    its ``map_coordinates`` does, with the same types, positions clipped to the image),
    except that every ``every`` steps a pixel whose last step was below ``settled`` px on
    both axes stops. One pass per step over the moving pixels (no temporary arrays); every
    value as the same steps made with ``map_coordinates`` and numpy.
    """
    ly, lx = flows.shape[1], flows.shape[2]
    ymax, xmax = np.float32(ly - 1), np.float32(lx - 1)
    zero = np.float32(0)
    final = start.copy()
    n = start.shape[1]
    index = np.arange(n)
    py = start[0].copy()
    px = start[1].copy()
    sy = np.zeros(n, np.float32)
    sx = np.zeros(n, np.float32)
    m = n
    for t in range(niter):
        for j in range(m):
            yfl = np.int32(py[j])
            xfl = np.int32(px[j])
            # float32 fractions, as map_coordinates types them (its products with them too)
            y = py[j] - np.float32(yfl)
            x = px[j] - np.float32(xfl)
            yf = min(ly - 1, max(0, yfl))
            xf = min(lx - 1, max(0, xfl))
            yf1 = min(ly - 1, yf + 1)
            xf1 = min(lx - 1, xf + 1)
            sy[j] = (np.float32(flows[0, yf, xf]) * (1 - y) * (1 - x)
                     + np.float32(flows[0, yf, xf1]) * (1 - y) * x
                     + np.float32(flows[0, yf1, xf]) * y * (1 - x)
                     + np.float32(flows[0, yf1, xf1]) * y * x)
            sx[j] = (np.float32(flows[1, yf, xf]) * (1 - y) * (1 - x)
                     + np.float32(flows[1, yf, xf1]) * (1 - y) * x
                     + np.float32(flows[1, yf1, xf]) * y * (1 - x)
                     + np.float32(flows[1, yf1, xf1]) * y * x)
            py[j] = np.minimum(ymax, np.maximum(zero, py[j] + sy[j]))
            px[j] = np.minimum(xmax, np.maximum(zero, px[j] + sx[j]))
        if (t + 1) % every == 0 and t + 1 < niter:
            kept = 0
            for j in range(m):
                if np.maximum(abs(sy[j]), abs(sx[j])) >= settled:
                    index[kept], py[kept], px[kept] = index[j], py[j], px[j]
                    sy[kept], sx[kept] = sy[j], sx[j]
                    kept += 1
                else:
                    final[0, index[j]] = py[j]
                    final[1, index[j]] = px[j]
            m = kept
    for j in range(m):
        final[0, index[j]] = py[j]
        final[1, index[j]] = px[j]
    return final


def _max_pool(h: Any, kernel_size: int) -> Any:
    """Return cellpose's ``max_pool_nd`` of ``(n, y, x)``: stride 1, windows cut at edges."""
    import torch

    for axis in (1, 2):
        out = h.clone()
        n = h.shape[axis]
        for d in range(-(kernel_size // 2), kernel_size // 2 + 1):
            view = out.narrow(axis, max(-d, 0), n - abs(d))
            torch.maximum(view, h.narrow(axis, max(d, 0), n - abs(d)), out=view)
        h = out
    return h


def masks_from_sinks(final: Any, inds: tuple[np.ndarray, ...], shape: tuple[int, int],
                     max_size_fraction: float) -> np.ndarray:
    """Return the masks of pixels that ended together: cellpose's ``get_masks_torch`` in 2-D.

    Parameters
    ----------
    final : torch.Tensor
        ``(2, n)`` integer final positions of the pixels ``inds`` after flow following
        (changed in place, as cellpose changes it).
    inds : tuple of numpy.ndarray
        The ``(y, x)`` indices of those pixels.
    shape : (int, int)
        The window's shape.
    max_size_fraction : float
        Masks larger than this fraction of the window are removed (the caller's rule:
        :data:`~structfree_dask.pipeline.integrate.MAX_SIZE_FRACTION` of the field).

    Returns
    -------
    numpy.ndarray
        uint16 (uint32 from 65536 seeds) labels renumbered 1..n.
    """
    import fastremap
    import torch

    final += _PAD
    final = torch.clamp(final, min=0)
    for i in range(len(final)):
        final[i] = torch.clamp(final[i], max=shape[i] + _PAD - 1)
    padded = tuple(np.array(shape) + 2 * _PAD)
    hist = torch.sparse_coo_tensor(final, torch.ones(final.shape[1], dtype=torch.int),
                                   padded).to_dense()
    peaks = _max_pool(hist.unsqueeze(0), 5).squeeze()
    seeds = torch.nonzero((hist - peaks > -1e-6) * (hist > 10))
    if len(seeds) == 0:
        return np.zeros(shape, dtype="uint16")
    seeds = seeds[hist[tuple(seeds.T)].argsort()]
    n_seeds = len(seeds)
    # the 11 x 11 histogram around each seed (cellpose copies them one seed at a time)
    offsets = torch.arange(-5, 6)
    around = hist[(seeds[:, 0, None] + offsets)[:, :, None],
                  (seeds[:, 1, None] + offsets)[:, None, :]].to(torch.float32)
    grown = torch.zeros((n_seeds, 11, 11))
    grown[:, 5, 5] = 1
    for _ in range(5):
        grown = _max_pool(grown, 3)
        grown *= around > 2
    # cellpose writes seed k's pixels with 1 + k in the order of k: where grown seeds
    # overlap the last one stays, the largest 1 + k (one scatter instead of a loop)
    k, dy, dx = torch.nonzero(grown, as_tuple=True)
    labels = torch.zeros(padded, dtype=torch.int32 if n_seeds < 2**16 else torch.int64)
    at = (seeds[k, 0] + dy - 5) * padded[1] + (seeds[k, 1] + dx - 5)
    labels.view(-1).scatter_reduce_(0, at, (k + 1).to(labels.dtype), reduce="amax")
    masks = np.zeros(shape, dtype="uint16" if n_seeds < 2**16 else "uint32")
    masks[inds] = labels[tuple(final)].numpy()
    uniq, counts = fastremap.unique(masks, return_counts=True)
    big = uniq[counts > np.prod(shape) * max_size_fraction]
    if len(big) > 0 and (len(big) > 1 or big[0] != 0):
        masks = fastremap.mask(masks, big)
    fastremap.renumber(masks, in_place=True)
    return masks


def fill_holes_and_remove_small_masks(masks: np.ndarray,
                                      min_size: int = DEFAULT_MIN_SIZE) -> np.ndarray:
    """Fill each mask's holes and drop masks under ``min_size`` px: cellpose's, in 2-D.

    Parameters
    ----------
    masks : numpy.ndarray
        ``(y, x)`` labels 1..n (consecutive, as :func:`masks_from_sinks` gives them);
        changed in place.
    min_size : int
        Smallest mask kept (px), before and after filling (default
        :data:`~structfree_dask.config.DEFAULT_MIN_SIZE`, cellpose's); 0 or less keeps
        every mask.

    Returns
    -------
    numpy.ndarray
        Labels renumbered 1..n.
    """
    import fastremap
    import fill_voids
    from scipy.ndimage import find_objects

    if masks.ndim != 2:
        raise ValueError(f"expected (y, x) masks; got shape {masks.shape}")
    if min_size > 0:
        counts = fastremap.unique(masks, return_counts=True)[1][1:]
        masks = fastremap.mask(masks, np.nonzero(counts < min_size)[0] + 1)
        fastremap.renumber(masks, in_place=True)
    j = 0
    for i, where in enumerate(find_objects(masks)):
        if where is not None:
            inside = fill_voids.fill(masks[where] == (i + 1))
            masks[where][inside] = j + 1
            j += 1
    if min_size > 0:
        counts = fastremap.unique(masks, return_counts=True)[1][1:]
        masks = fastremap.mask(masks, np.nonzero(counts < min_size)[0] + 1)
        fastremap.renumber(masks, in_place=True)
    return masks

"""Cellpose's flow-error check (``flow_threshold``), bitwise, with a faster diffusion kernel.

Cellpose removes a mask whose flows, recomputed from the mask itself, disagree with the
network's (``dynamics.remove_bad_flow_masks``): each mask's flows come from a heat
diffusion from its centre (``dynamics.masks_to_flows_cpu``, numba's ``_extend_centers``),
which runs ``2 * (height + width)`` Jacobi steps over the mask's pixels. Cellpose writes a
step as one array expression: nine gathers and their sums allocated as temporary arrays at
every step. :func:`masks_to_flows` runs the same steps as a loop over the pixels, the nine
terms added in the same order (no reassociation, no fused multiply-add), so every value is
bitwise cellpose's, in about a quarter of the time on the CPU (``tests/pipeline``
compares both on real masks; benchmarks/README.md has the figures).

The module compiles its kernel when imported (an explicit signature): import it on a
clean stack, as the dynamics of :mod:`.integrate` are (numba keeps the importing stack).

Examples
--------
>>> masks = np.zeros((12, 12), np.uint16); masks[2:9, 3:10] = 1
>>> flows = masks_to_flows(masks)
>>> flows.shape, flows.dtype.name
((2, 12, 12), 'float64')
>>> float(np.abs(flows[:, masks == 0]).max())
0.0
>>> int(remove_bad_flow_masks(masks.copy(), 5 * flows.astype(np.float32), 0.4).max())
1
"""

from __future__ import annotations

import numpy as np

from .kernels import kernel

__all__ = ["masks_to_flows", "remove_bad_flow_masks"]


@kernel("float64[:](float64[:], int32[:], int32[:], int32, int32, int32, int32)")
def _diffuse(heat: np.ndarray, y: np.ndarray, x: np.ndarray, ymed: int, xmed: int, lx: int,
             niter: int) -> np.ndarray:  # pragma: no cover - compiled
    """Cellpose's ``_extend_centers``: ``niter`` Jacobi steps of the 3x3 mean on the pixels."""
    n = y.size
    # unsigned indices: no negative-index wraparound test at each of the nine reads (1.25x)
    flat = (y.astype(np.int64) * lx + x).astype(np.uint64)
    row = np.uint64(lx)
    one = np.uint64(1)
    new = np.empty(n)
    centre = ymed * lx + xmed
    ninth = 1 / 9.
    for _ in range(niter):
        heat[centre] += 1
        for k in range(n):
            i = flat[k]
            new[k] = ninth * (heat[i] + heat[i - row] + heat[i + row] + heat[i - one]
                              + heat[i + one] + heat[i - row - one] + heat[i - row + one]
                              + heat[i + row - one] + heat[i + row + one])
        for k in range(n):
            heat[flat[k]] = new[k]
    return heat


def masks_to_flows(masks: np.ndarray) -> np.ndarray:
    """Return the ``(2, y, x)`` unit flows of 2-D masks: cellpose's ``masks_to_flows_cpu``.

    Parameters
    ----------
    masks : numpy.ndarray
        ``(y, x)`` labels 1..n (0 is background).

    Returns
    -------
    numpy.ndarray
        float64 ``(dy, dx)`` per pixel, bitwise ``cellpose.dynamics.masks_to_flows`` on the
        CPU (zeros outside the masks).
    """
    from scipy.ndimage import find_objects

    if masks.ndim != 2:
        raise ValueError(f"expected (y, x) masks; got shape {masks.shape}")
    mu = np.zeros((2, *masks.shape), np.float64)
    for i, where in enumerate(find_objects(masks)):
        if where is None:
            continue
        sr, sc = where
        ly, lx = sr.stop - sr.start + 2, sc.stop - sc.start + 2
        y, x = np.nonzero(masks[sr, sc] == (i + 1))
        y = y.astype(np.int32) + 1
        x = x.astype(np.int32) + 1
        # the pixel of the mask nearest its mean position, as cellpose picks it
        nearest = ((x - x.mean()) ** 2 + (y - y.mean()) ** 2).argmin()
        heat = _diffuse(np.zeros(ly * lx, np.float64), y, x, np.int32(y[nearest]),
                        np.int32(x[nearest]), np.int32(lx), np.int32(2 * np.int32(ly + lx)))
        dy = heat[(y + 1) * lx + x] - heat[(y - 1) * lx + x]
        dx = heat[y * lx + x + 1] - heat[y * lx + x - 1]
        mu[:, sr.start + y - 1, sc.start + x - 1] = np.stack((dy, dx))
    mu /= (1e-60 + (mu ** 2).sum(axis=0) ** 0.5)
    return mu


def remove_bad_flow_masks(masks: np.ndarray, flows: np.ndarray, threshold: float) -> np.ndarray:
    """Zero the masks whose flows disagree with the network's: cellpose's check, bitwise.

    Parameters
    ----------
    masks : numpy.ndarray
        ``(y, x)`` labels 1..n; changed in place and returned.
    flows : numpy.ndarray
        ``(2, y, x)`` network flows (as cellpose's ``dP``, five times the unit flows).
    threshold : float
        Largest mean squared error kept (cellpose's ``flow_threshold``).

    Returns
    -------
    numpy.ndarray
        ``masks``, the rejected ones set to 0 (``cellpose.dynamics.remove_bad_flow_masks``).
    """
    from scipy.ndimage import mean

    if flows.shape[1:] != masks.shape:
        raise ValueError(f"flows {flows.shape} do not match masks {masks.shape}")
    n = int(masks.max())
    mu = masks_to_flows(masks)
    errors = np.zeros(n)
    for i in range(mu.shape[0]):
        errors += mean((mu[i] - flows[i] / 5.) ** 2, masks, index=np.arange(1, n + 1))
    bad = 1 + (errors > threshold).nonzero()[0]
    masks[np.isin(masks, bad)] = 0
    return masks

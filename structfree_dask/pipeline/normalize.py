"""Per-field intensity normalization statistics (never per tile)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["percentile_bounds", "normalize", "sample_stride"]


def sample_stride(shape_yx: tuple[int, int], max_pixels: int = 1 << 22) -> int:
    """Return the stride that samples about ``max_pixels`` of a plane.

    The stride is ``ceil(sqrt(pixels / max_pixels))``: ``x[::s, ::s]`` holds at most
    ``max_pixels`` for sides that are multiples of ``s``, a few more otherwise (one row or
    column per side; 4 196 352 of a 4097 x 4095 plane at the default 4 194 304).

    Examples
    --------
    >>> sample_stride((1024, 1024)), sample_stride((8192, 8192))
    (1, 4)
    """
    n = shape_yx[0] * shape_yx[1]
    return max(1, math.ceil(math.sqrt(n / max_pixels)))


def percentile_bounds(
    sample: np.ndarray, *, lower: float = 1.0, upper: float = 99.0
) -> tuple[float, float]:
    """Return the (lower, upper) percentiles of a channel's pixels (cellpose ``normalize99``).

    Parameters
    ----------
    sample : numpy.ndarray
        Pixels of one channel over the whole field (or a regular subsample).
    lower, upper : float
        Percentiles.

    Returns
    -------
    (float, float)

    Raises
    ------
    ValueError
        If the pixels contain NaN or infinite values.

    Examples
    --------
    >>> percentile_bounds(np.arange(101.0))
    (1.0, 99.0)
    """
    x = np.asarray(sample, dtype=np.float64).ravel()
    if not np.isfinite(x).all():
        raise ValueError(f"{int((~np.isfinite(x)).sum())} NaN or infinite pixel value(s)")
    lo, hi = np.percentile(x, [lower, upper])
    return float(lo), float(hi)


def normalize(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Scale intensities so ``lo`` -> 0 and ``hi`` -> 1 (float32); a flat channel gives 0.

    Examples
    --------
    >>> normalize(np.array([1.0, 3.0, 5.0]), 1.0, 5.0)
    array([0. , 0.5, 1. ], dtype=float32)
    """
    out = np.asarray(x, dtype=np.float32) - np.float32(lo)
    span = float(hi) - float(lo)
    if span > 0:
        out /= np.float32(span)
    else:
        out[...] = 0.0
    return out

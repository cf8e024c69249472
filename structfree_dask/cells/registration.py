"""Stage drift between timepoints: the shift of a field's content from one timepoint to the next.

When a stage revisits every well of a plate between timepoints, each field comes back a
few pixels off: every cell of the field seems to move by the same shift. Tracking on raw
centroids then mistakes the drift for motion (small cells that move further than their
radius are lost). :func:`content_shift` measures the shift between two timepoints from
their cell masks (scikit-image's ``phase_cross_correlation``, robust to cells that enter,
leave or change brightness); :func:`drift` chains the shifts of consecutive timepoints
into each timepoint's offset from the first, which tracking subtracts from the centroids
(:mod:`.plate_track`).

A shift is kept only where it explains the masks better than no shift (their overlap
grows); where it does not, the stage did not move if the masks agree without a shift well
beyond chance (:data:`MIN_AGREEMENT`: cells that moved on their own a little). An empty
timepoint, or one whose masks do not match the previous ones (out of focus), gets no shift
and is reported (``registered`` False).

Examples
--------
>>> prev = np.zeros((64, 64), np.uint32); prev[10:20, 10:20] = 1; prev[40:50, 30:44] = 2
>>> cur = np.roll(prev, (3, -5), axis=(0, 1))      # the content moved down 3, left 5
>>> content_shift(prev, cur)
Shift(dy=3.0, dx=-5.0, registered=True)
>>> registered_overlaps(prev, cur, content_shift(prev, cur))
{(1, 1): 1.0, (2, 2): 1.0}
>>> drift({0: (0.0, 0.0), 1: (3.0, -5.0), 2: (1.0, 1.0)})
{0: (0.0, 0.0), 1: (3.0, -5.0), 2: (4.0, -4.0)}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from ..pipeline.overlap import label_overlaps

__all__ = ["Shift", "content_shift", "drift", "mask_spectrum", "registered_overlaps",
           "agreement", "MAX_SHIFT_FRACTION", "MIN_AGREEMENT"]

#: Largest shift trusted, as a fraction of the field's smaller side.
MAX_SHIFT_FRACTION = 0.25
#: Least :func:`agreement` of two timepoints' masks without a shift for "the stage did not
#: move" when no shift explains them better. Consecutive timepoints of the simulator's cell
#: lines agree 0.6-0.7 without drift; masks unrelated to the cells (out of focus) about 0.
MIN_AGREEMENT = 0.2


class Shift(NamedTuple):
    """How far a field's content moved between two timepoints, in pixels (y, x).

    ``registered`` is False where no shift could be measured (then dy = dx = 0).
    """

    dy: float
    dx: float
    registered: bool


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Return the overlap of two masks beyond chance: 0 for independent masks, 1 for equal ones.

    The overlap (intersection over union) less the overlap that masks of the same coverage
    placed independently would have, over the most that is left above it (Cohen's kappa's
    correction, on the overlap).

    Examples
    --------
    >>> a = np.zeros((10, 10), bool); a[:5] = True
    >>> agreement(a, a), round(agreement(a, ~a), 3)
    (1.0, -0.5)
    """
    p, q = float(np.mean(a)), float(np.mean(b))
    if not p or not q:
        return 0.0
    chance = p * q / (p + q - p * q)
    return 1.0 if chance == 1 else (_overlap(a, b) - chance) / (1.0 - chance)


def _moved(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Return the mask with its content moved by (dy, dx) (what moves in is empty)."""
    out = np.zeros_like(mask)
    ny, nx = mask.shape
    src = mask[max(0, -dy):ny - max(0, dy), max(0, -dx):nx - max(0, dx)]
    out[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return out


def mask_spectrum(labels: np.ndarray) -> np.ndarray:
    """Return the Fourier transform of a plane's cell mask, as :func:`content_shift` takes it.

    A time-lapse registers each timepoint against the one before and the one after: its
    spectrum, computed once, serves both.
    """
    from scipy import fft

    return fft.fftn((labels != 0).astype(np.float32))


def content_shift(previous: np.ndarray, current: np.ndarray,
                  spectra: tuple[np.ndarray, np.ndarray] | None = None) -> Shift:
    """Return how far the content of ``previous`` moved to be where it is in ``current``.

    Parameters
    ----------
    previous, current : numpy.ndarray
        ``(y, x)`` cell labels (or masks) of one field at two timepoints.
    spectra : (numpy.ndarray, numpy.ndarray), optional
        Their :func:`mask_spectrum`, when already computed (the same shift).

    Returns
    -------
    Shift
        Whole pixels: ``current[y + dy, x + dx]`` shows what ``previous[y, x]`` showed.
        ``registered`` False (and no shift) when either plane is empty, when the shift
        is larger than :data:`MAX_SHIFT_FRACTION` of the field, or when it does not make
        the masks overlap more than without it and they do not agree without it
        (:func:`agreement` below :data:`MIN_AGREEMENT`).

    Raises
    ------
    ValueError
        Planes of different shapes.
    """
    from skimage.registration import phase_cross_correlation

    if previous.shape != current.shape or previous.ndim != 2:
        raise ValueError(f"expected two (y, x) planes of one shape; got {previous.shape} and "
                         f"{current.shape}")
    a, b = previous != 0, current != 0
    if not a.any() or not b.any():
        return Shift(0.0, 0.0, False)
    fa, fb = spectra if spectra is not None else (mask_spectrum(a), mask_spectrum(b))
    shift, _, _ = phase_cross_correlation(fa, fb, space="fourier", normalization=None)
    dy, dx = (-int(round(float(s))) for s in shift)  # moving `current` back onto `previous`
    if max(abs(dy), abs(dx)) > MAX_SHIFT_FRACTION * min(a.shape):
        return Shift(0.0, 0.0, False)
    if (dy, dx) != (0, 0) and _overlap(_moved(a, dy, dx), b) <= _overlap(a, b):
        # no shift explains the masks as well: the stage stayed, if they agree as they are
        return Shift(0.0, 0.0, agreement(a, b) >= MIN_AGREEMENT)
    return Shift(float(dy), float(dx), True)


def registered_overlaps(previous: np.ndarray, current: np.ndarray,
                        shift: Shift) -> dict[tuple[int, int], float]:
    """Return the IoU of each pair of cells of two timepoints, with the drift removed.

    Parameters
    ----------
    previous, current : numpy.ndarray
        ``(y, x)`` cell labels of one field at two timepoints (of one shape).
    shift : Shift
        The content's shift from ``previous`` to ``current`` (:func:`content_shift`);
        ``current`` is moved back by it before counting.

    Returns
    -------
    dict
        ``(label in previous, label in current) -> IoU`` for every pair that overlaps
        (cells that moved in from beyond the field count only their visible pixels).
    """
    back = _moved(current, -int(round(shift.dy)), -int(round(shift.dx)))
    o = label_overlaps(previous, back)
    return {(int(o.ids_a[i]), int(o.ids_b[j])): float(v)
            for i, j, v in zip(o.ia, o.ib, o.iou(), strict=True)}


def drift(steps: Mapping[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    """Chain the shifts between consecutive timepoints into each one's offset from the first.

    Parameters
    ----------
    steps : mapping
        Timepoint -> the content's shift from the timepoint before it (the first one's is
        ignored: it is the reference).

    Returns
    -------
    dict
        Timepoint -> (dy, dx) from the first timepoint, in timepoint order.
    """
    out: dict[int, tuple[float, float]] = {}
    y = x = 0.0
    for i, t in enumerate(sorted(steps)):
        if i:
            y, x = y + steps[t][0], x + steps[t][1]
        out[t] = (y, x)
    return out

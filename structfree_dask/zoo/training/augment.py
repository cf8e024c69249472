"""Training augmentations of (normalized image, label image) pairs.

Every augmentation is a pure function ``f(image, labels, rng, **params) -> (image,
labels)`` that leaves its inputs untouched; parameters not given are drawn from
``rng`` (a :class:`numpy.random.Generator`). :func:`augment` applies each of them with
probability ``p`` (0.5), in the fixed order of :data:`AUGMENTATIONS`: the geometric
ones first (the labels follow them, nearest-neighbour, and pixels brought in from
outside the image are 0 in both), then the intensity ones (the labels are unchanged).

========================  =========================================================
``scale``                 zoom out about the centre by s ~ U(0.5, 1), same shape
``rotate``                rotation about the centre by an angle ~ U(-pi/2, pi/2)
``hflip``, ``vflip``      horizontal / vertical flip
``gaussian_noise``        additive N(0, sigma^2), sigma ~ U(0, 0.1)
``poisson_noise``         shot noise: Poisson(peak * x) / peak, peak ~ U(10, 100)
``salt_and_pepper``       a fraction beta = 0.05 of pixels set to 0 or 1 (half each)
``brightness``            additive shift ~ U(-0.1, 0.1)
========================  =========================================================

Images are float (normalized, 0 = 1st and 1 = 99th percentile) and keep their
float dtype; labels keep their integer dtype.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
from scipy import ndimage

__all__ = [
    "AUGMENTATIONS",
    "augment",
    "augment_with_record",
    "scale",
    "rotate",
    "hflip",
    "vflip",
    "gaussian_noise",
    "poisson_noise",
    "salt_and_pepper",
    "brightness",
]

logger = logging.getLogger(__name__)

Pair = tuple[np.ndarray, np.ndarray]


def _check(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image)
    labels = np.asarray(labels)
    if image.ndim != 2 or labels.ndim != 2:
        raise ValueError(
            f"image and labels must be 2D (y, x); got shapes {image.shape} and {labels.shape}"
        )
    if image.shape != labels.shape:
        raise ValueError(
            f"image and labels must have the same shape; got {image.shape} and {labels.shape}"
        )
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"image must be float (normalized); got dtype {image.dtype}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must have an integer dtype; got {labels.dtype}")
    return image, labels


def _affine(image: np.ndarray, labels: np.ndarray, matrix: np.ndarray) -> Pair:
    """Resample both about the centre with ``input = c + matrix @ (output - c)``."""
    centre = (np.asarray(image.shape, dtype=np.float64) - 1.0) / 2.0
    offset = centre - matrix @ centre
    img = ndimage.affine_transform(image, matrix, offset=offset, order=1, mode="constant",
                                   cval=0.0, output=image.dtype)
    lab = ndimage.affine_transform(labels, matrix, offset=offset, order=0, mode="constant",
                                   cval=0, output=labels.dtype)
    return img, lab


def scale(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
          factor: float | None = None) -> Pair:
    """Zoom out about the centre by ``factor`` ~ U(0.5, 1), keeping the shape.

    Examples
    --------
    >>> lab = np.zeros((9, 9), np.int32); lab[2:7, 2:7] = 1
    >>> _, out = scale(lab.astype(np.float32), lab, np.random.default_rng(0), factor=0.5)
    >>> int((out == 1).sum()) < int((lab == 1).sum())
    True
    """
    image, labels = _check(image, labels)
    s = float(rng.uniform(0.5, 1.0)) if factor is None else float(factor)
    if not s > 0:
        raise ValueError(f"scale factor must be > 0; got {s}")
    return _affine(image, labels, np.eye(2) / s)


def rotate(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
           angle: float | None = None) -> Pair:
    """Rotate about the centre by ``angle`` radians ~ U(-pi/2, pi/2).

    Examples
    --------
    >>> lab = np.zeros((5, 5), np.int32); lab[0, 2] = 1
    >>> _, out = rotate(lab.astype(np.float32), lab, np.random.default_rng(0), angle=np.pi / 2)
    >>> [tuple(int(i) for i in p) for p in np.argwhere(out == 1)]
    [(2, 0)]
    """
    image, labels = _check(image, labels)
    a = float(rng.uniform(-math.pi / 2, math.pi / 2)) if angle is None else float(angle)
    c, s = math.cos(a), math.sin(a)
    # output (y, x) -> input: rotation by -a in (y, x) coordinates
    matrix = np.array([[c, s], [-s, c]])
    return _affine(image, labels, matrix)


def hflip(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> Pair:
    """Flip left-right (``rng`` is not used).

    Examples
    --------
    >>> img, lab = hflip(np.array([[0.0, 1.0]]), np.array([[1, 2]]), np.random.default_rng())
    >>> img.tolist(), lab.tolist()
    ([[1.0, 0.0]], [[2, 1]])
    """
    image, labels = _check(image, labels)
    return image[:, ::-1].copy(), labels[:, ::-1].copy()


def vflip(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> Pair:
    """Flip up-down (``rng`` is not used)."""
    image, labels = _check(image, labels)
    return image[::-1].copy(), labels[::-1].copy()


def gaussian_noise(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                   sigma: float | None = None) -> Pair:
    """Add N(0, sigma^2) noise, ``sigma`` ~ U(0, 0.1).

    Examples
    --------
    >>> img = np.zeros((200, 200), np.float32)
    >>> out, _ = gaussian_noise(img, img.astype(int), np.random.default_rng(0), sigma=0.05)
    >>> round(float(out.std()), 2)
    0.05
    """
    image, labels = _check(image, labels)
    s = float(rng.uniform(0.0, 0.1)) if sigma is None else float(sigma)
    if s < 0:
        raise ValueError(f"sigma must be >= 0; got {s}")
    noise = rng.standard_normal(image.shape).astype(image.dtype) * image.dtype.type(s)
    return image + noise, labels.copy()


def poisson_noise(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                  peak: float | None = None) -> Pair:
    """Shot noise: ``Poisson(peak * x) / peak`` on the positive part, ``peak`` ~ U(10, 100).

    An intensity of 1 (the 99th percentile) then has ``peak`` photons; the variance at
    intensity ``x`` is ``x / peak``. Negative intensities are kept as they are.

    Examples
    --------
    >>> img = np.full((300, 300), 0.5, np.float32)
    >>> out, _ = poisson_noise(img, img.astype(int), np.random.default_rng(0), peak=50.0)
    >>> round(float(out.mean()), 2), round(float(out.var()), 2)
    (0.5, 0.01)
    """
    image, labels = _check(image, labels)
    k = float(rng.uniform(10.0, 100.0)) if peak is None else float(peak)
    if not k > 0:
        raise ValueError(f"peak must be > 0; got {k}")
    pos = np.clip(image, 0.0, None).astype(np.float64)
    noisy = rng.poisson(pos * k) / k
    out = np.where(image > 0, noisy, image).astype(image.dtype)
    return out, labels.copy()


def salt_and_pepper(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                    beta: float = 0.05) -> Pair:
    """Set a fraction ``beta`` of pixels to 1 (salt) or 0 (pepper), half each.

    Examples
    --------
    >>> img = np.full((200, 200), 0.5, np.float32)
    >>> out, _ = salt_and_pepper(img, img.astype(int), np.random.default_rng(0))
    >>> round(float((out != 0.5).mean()), 2)
    0.05
    """
    image, labels = _check(image, labels)
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must be in [0, 1]; got {beta}")
    u = rng.random(image.shape)
    out = image.copy()
    out[u < beta / 2] = 0.0
    out[(u >= beta / 2) & (u < beta)] = 1.0
    return out, labels.copy()


def brightness(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
               shift: float | None = None) -> Pair:
    """Add a constant ``shift`` ~ U(-0.1, 0.1).

    Examples
    --------
    >>> out, _ = brightness(np.zeros((2, 2), np.float32), np.zeros((2, 2), int),
    ...                     np.random.default_rng(), shift=0.1)
    >>> out.tolist()
    [[0.10000000149011612, 0.10000000149011612], [0.10000000149011612, 0.10000000149011612]]
    """
    image, labels = _check(image, labels)
    b = float(rng.uniform(-0.1, 0.1)) if shift is None else float(shift)
    return image + image.dtype.type(b), labels.copy()


#: The augmentations in the order :func:`augment` applies them.
AUGMENTATIONS: dict[str, Callable[..., Pair]] = {
    "scale": scale,
    "rotate": rotate,
    "hflip": hflip,
    "vflip": vflip,
    "gaussian_noise": gaussian_noise,
    "poisson_noise": poisson_noise,
    "salt_and_pepper": salt_and_pepper,
    "brightness": brightness,
}


def augment_with_record(
    image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *, p: float = 0.5
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Like :func:`augment`, and also return the names of the augmentations applied.

    Examples
    --------
    >>> img, lab = np.zeros((8, 8), np.float32), np.zeros((8, 8), np.int32)
    >>> _, _, names = augment_with_record(img, lab, np.random.default_rng(0), p=1.0)
    >>> names == tuple(AUGMENTATIONS)
    True
    """
    image, labels = _check(image, labels)
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1]; got {p}")
    applied = []
    for name, fn in AUGMENTATIONS.items():
        if rng.random() < p:
            image, labels = fn(image, labels, rng)
            applied.append(name)
    return image, labels, tuple(applied)


def augment(
    image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *, p: float = 0.5
) -> Pair:
    """Apply each augmentation of :data:`AUGMENTATIONS` with probability ``p``.

    Parameters
    ----------
    image : numpy.ndarray
        ``(y, x)`` float normalized image.
    labels : numpy.ndarray
        ``(y, x)`` integer labels (0 = background).
    rng : numpy.random.Generator
        Source of all randomness: the same seed gives the same output.
    p : float
        Probability of each augmentation.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        New image and labels of the input shapes and dtypes.

    Raises
    ------
    ValueError
        If the shapes differ or are not 2D.
    TypeError
        If the image is not float or the labels not integer.

    Examples
    --------
    >>> img = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    >>> lab = (img > 0.5).astype(np.int32)
    >>> a = augment(img, lab, np.random.default_rng(7))
    >>> b = augment(img, lab, np.random.default_rng(7))
    >>> bool(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])), a[0].shape
    (True, (32, 32))
    """
    out_image, out_labels, _ = augment_with_record(image, labels, rng, p=p)
    return out_image, out_labels

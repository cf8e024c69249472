"""Shape and position of labelled objects, all objects at once: scikit-image's values, faster.

:func:`shape_props` gives what ``skimage.measure.regionprops`` gives for ``area``,
``centroid``, ``bbox``, ``eccentricity``, ``axis_major_length``, ``axis_minor_length`` and
``solidity``, for labels 1..n, without a Python object per label for most of them:

* area, centroid and the central moments of second order from ``bincount`` over the
  pixels (the centroid is the same float: sums of integer coordinates are exact); the
  inertia tensor's eigenvalues in closed form (a 2 x 2 symmetric matrix), so the axis
  lengths and the eccentricity equal scikit-image's to rounding (relative 1e-12);
* the box from ``scipy.ndimage.find_objects``;
* the convex area, as ``skimage.morphology.convex_hull_image`` counts it: the convex hull
  of the midpoints of the object's pixel edges (from the first and last pixel of each row
  and column, as scikit-image picks them), and the pixels of the box whose centre lies in
  it or on its border, counted row by row as intervals of x; tested equal to
  scikit-image's on simulated, real and odd shapes.

Examples
--------
>>> labels = np.zeros((8, 10), np.int64)
>>> labels[1:4, 1:5] = 1; labels[5:8, 2:9] = 2; labels[5:7, 5:9] = 0   # a box, an L
>>> props = shape_props(labels, 2)
>>> props["area"].tolist(), props["bbox"].tolist()
([12, 13], [[1, 1, 4, 5], [5, 2, 8, 9]])
>>> [round(float(v), 3) for v in props["solidity"]]
[1.0, 0.765]
"""

from __future__ import annotations

import numpy as np

__all__ = ["shape_props"]

#: Distance (pixels) within which a pixel centre counts as on the hull's border.
HULL_TOLERANCE = 1e-10

#: The midpoints of a pixel's four edges, from its centre.
_EDGE_MIDPOINTS = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, -0.5], [0.0, 0.5]])


def shape_props(labels: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Return the shape of each label 1..n of a 2-D label image (every one present).

    Parameters
    ----------
    labels : numpy.ndarray
        ``(y, x)`` integer labels; each of 1..n has at least one pixel.
    n : int
        The largest label.

    Returns
    -------
    dict
        ``area`` (n,), ``centroid`` (n, 2), ``bbox`` (n, 4: min row, min column, max row
        + 1, max column + 1), ``eccentricity``, ``axis_major_length``,
        ``axis_minor_length``, ``solidity`` (n,) as ``regionprops`` defines them.
    """
    from scipy import ndimage as ndi

    flat = labels.ravel()
    fg = np.flatnonzero(flat)
    lab = flat[fg].astype(np.int64)
    ys, xs = np.divmod(fg, labels.shape[1])
    area = np.bincount(lab, minlength=n + 1)[1:]
    if np.any(area == 0):
        raise ValueError(f"labels 1..{n} must all be present; missing "
                         f"{(np.flatnonzero(area == 0) + 1)[:5].tolist()}")
    cy = np.bincount(lab, ys, minlength=n + 1)[1:] / area
    cx = np.bincount(lab, xs, minlength=n + 1)[1:] / area
    dy, dx = ys - cy[lab - 1], xs - cx[lab - 1]
    # the inertia tensor [[mu_xx, -mu_xy], [-mu_xy, mu_yy]] / area and its eigenvalues
    a = np.bincount(lab, dx * dx, minlength=n + 1)[1:] / area
    d = np.bincount(lab, dy * dy, minlength=n + 1)[1:] / area
    b = -np.bincount(lab, dy * dx, minlength=n + 1)[1:] / area
    mid, half = (a + d) / 2, np.sqrt(((a - d) / 2) ** 2 + b * b)
    l1, l2 = np.clip(mid + half, 0, None), np.clip(mid - half, 0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        eccentricity = np.where(l1 == 0, 0.0, np.sqrt(np.clip(1 - l2 / l1, 0, None)))
    boxes = ndi.find_objects(labels, max_label=n)
    bbox = np.array([[s[0].start, s[1].start, s[0].stop, s[1].stop] for s in boxes],
                    dtype=np.int64).reshape(n, 4)
    convex = np.array([_convex_area(labels[s] == i) for i, s in enumerate(boxes, start=1)],
                      dtype=np.float64)
    return {"area": area, "centroid": np.stack([cy, cx], axis=1), "bbox": bbox,
            "eccentricity": eccentricity, "axis_major_length": 4 * np.sqrt(l1),
            "axis_minor_length": 4 * np.sqrt(l2), "solidity": area / convex}


def _convex_area(image: np.ndarray) -> int:
    """Pixels of ``skimage.morphology.convex_hull_image(image)`` (a boolean crop)."""
    from scipy.spatial import ConvexHull
    from skimage.util import unique_rows

    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    h, w = image.shape
    first_x = np.argmax(image[rows], axis=1)
    last_x = w - 1 - np.argmax(image[rows, ::-1], axis=1)
    first_y = np.argmax(image[:, cols], axis=0)
    last_y = h - 1 - np.argmax(image[::-1, cols], axis=0)
    ends = np.concatenate([np.stack([rows, first_x], 1), np.stack([rows, last_x], 1),
                           np.stack([first_y, cols], 1), np.stack([last_y, cols], 1)])
    points = unique_rows((ends[:, None, :] + _EDGE_MIDPOINTS).reshape(-1, 2))
    hull = ConvexHull(points)
    # a pixel (y, x) is in the hull when ny y + nx x + d <= tolerance for every edge: per
    # row, an interval of x, counted without visiting the pixels
    ny, nx, d = hull.equations.T
    rhs = HULL_TOLERANCE - d[:, None] - ny[:, None] * np.arange(h, dtype=np.float64)
    lo, hi, rows_in = np.zeros(h), np.full(h, w - 1.0), np.ones(h, bool)
    right, left = nx > 0, nx < 0
    if right.any():
        hi = np.minimum(hi, (rhs[right] / nx[right, None]).min(axis=0))
    if left.any():
        lo = np.maximum(lo, (rhs[left] / nx[left, None]).max(axis=0))
    flat = ~(right | left)
    if flat.any():
        rows_in &= (rhs[flat] >= 0).all(axis=0)
    return int((np.clip(np.floor(hi) - np.ceil(lo) + 1, 0, None) * rows_in).sum())

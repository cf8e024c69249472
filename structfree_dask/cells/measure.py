"""Per-cell measurements of linked objects: shape, position and per-channel intensities.

:func:`measure_cells` measures the cells a region owns on a window that holds them
whole (pure function on arrays; shape and position are scikit-image's ``regionprops``
values, computed for all cells at once by :mod:`.shapes`). Each channel is measured in the
whole cell, its nucleus and its cytoplasm (mean, median, integrated = sum). Column names
are those of :mod:`.columns`.

The nucleus / cytoplasm readout resists blur and background, as translocation assays
measure it (CellProfiler's nucleus shrunk and cytoplasm ring):

* the **nucleus core**: the nucleus eroded by :data:`NUCLEUS_EROSION_PX` (a nucleus too
  small to erode keeps all its pixels);
* the **cytoplasm ring**: the cell's pixels from :data:`RING_GAP_PX` to
  ``RING_GAP_PX + RING_WIDTH_PX`` outside its nucleus (the whole cytoplasm when the
  ring is empty);
* the cell's **local background**: the median of the pixels outside every cell from
  :data:`BACKGROUND_GAP_PX` to ``BACKGROUND_GAP_PX + BACKGROUND_WIDTH_PX`` around it (at
  least :data:`MIN_BACKGROUND_PX` of them), else the field's background
  (:func:`field_background`);
* ``<channel>__nc_ratio`` = (core mean - background) / (ring mean - background), NaN
  when the ring is less than :data:`MIN_RING_CONTRAST` above the background (no
  cytoplasm signal to divide by). ``<channel>__nc_ratio_raw`` is the whole nucleus mean
  over the whole cytoplasm mean, uncorrected.

On the simulator's CL1 and CL5 widefield time-lapses (ground-truth objects, 2 wells x 12
timepoints), against the true ratios: Pearson r 0.996 and 0.965, median relative error
0.18 and 0.16, where the raw ratio gives r 0.94 and 0.81 and errors of 0.59 and 0.27
(benchmarks/README.md).

Examples
--------
A cell on a background of 10, its cytoplasm at 30 and its nucleus at 90: the raw ratio
is 90 / 30, the corrected one (90 - 10) / (30 - 10).

>>> cells = np.zeros((60, 60), np.uint32); cells[20:40, 20:40] = 1
>>> linked = np.zeros_like(cells); linked[26:34, 26:34] = 1
>>> image = np.full((1, 60, 60), 10.0); image[0, 20:40, 20:40] = 30; image[0, 26:34, 26:34] = 90
>>> df = measure_cells(cells, linked, image, owned=np.array([1]), channel_names=["rep"],
...                    pixel_size_um=(0.5, 0.5), field_shape=(60, 60), n_nuclei=np.array([1]))
>>> df[["label", "area_px", "area_um2", "touches_edge"]].to_dict("records")
[{'label': 1, 'area_px': 400, 'area_um2': 100.0, 'touches_edge': False}]
>>> df[["rep__background", "rep__nc_ratio", "rep__nc_ratio_raw"]].to_dict("records")
[{'rep__background': 10.0, 'rep__nc_ratio': 4.0, 'rep__nc_ratio_raw': 3.0}]
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .columns import (
    COMPARTMENTS,
    SHAPE_COLUMNS,
    STATISTICS,
    TRACK_COLUMNS,
    intensity_column,
    readout_columns,
)
from .shapes import shape_props

__all__ = ["column_dtypes", "empty_measurements", "field_background", "label_medians",
           "measure_cells", "measure_columns",
           "NUCLEUS_EROSION_PX", "RING_GAP_PX", "RING_WIDTH_PX", "BACKGROUND_GAP_PX",
           "BACKGROUND_WIDTH_PX", "MIN_BACKGROUND_PX", "MIN_RING_CONTRAST", "WINDOW_MARGIN",
           "READOUT_VERSION"]

#: Pixels the nucleus is eroded by for its core.
NUCLEUS_EROSION_PX = 2
#: Pixels between the nucleus and the cytoplasm ring ...
RING_GAP_PX = 1
#: ... and the ring's width.
RING_WIDTH_PX = 4
#: Pixels between a cell and its background annulus ...
BACKGROUND_GAP_PX = 4
#: ... and the annulus's width.
BACKGROUND_WIDTH_PX = 8
#: Fewest annulus pixels for a local background (else the field's).
MIN_BACKGROUND_PX = 20
#: Smallest (ring mean - background) / ring mean for a ratio (else NaN).
MIN_RING_CONTRAST = 0.05
#: Pixels a measuring window reaches beyond its cells: their background annuli, and the
#: cells near those (a pixel belongs to the annulus of its nearest cell).
WINDOW_MARGIN = 2 * (BACKGROUND_GAP_PX + BACKGROUND_WIDTH_PX)
#: Version of the readout, recorded with a table (tables of another version are not resumed).
READOUT_VERSION = 2

_INT = {"label": "int64", "t": "int32", "area_px": "int64", "n_nuclei": "int32",
        "nucleus_area_px": "int64", "track_id": "int64", "parent_track_id": "int64"}


def column_dtypes(channel_names: Sequence[str]) -> dict[str, str]:
    """Every column of a measurement table and its dtype, in table order.

    Examples
    --------
    >>> list(column_dtypes(["a"]))[:4]
    ['label', 't', 'area_px', 'area_um2']
    >>> len(column_dtypes(["a", "b"])) - len(column_dtypes([]))
    28
    """
    cols: dict[str, str] = {"label": "int64", "t": "int32"}
    for name in SHAPE_COLUMNS:
        cols[name] = _INT.get(name, "bool" if name == "touches_edge" else "float64")
    for ch in channel_names:
        for comp in COMPARTMENTS:
            for stat in STATISTICS:
                cols[intensity_column(ch, comp, stat)] = "float64"
        for name in readout_columns(ch):
            cols[name] = "float64"
    for name in TRACK_COLUMNS:
        cols[name] = "int64"
    return cols


def empty_measurements(channel_names: Sequence[str]) -> pd.DataFrame:
    """Return a measurement table with no rows (every column, with its dtype)."""
    return _empty(tuple(channel_names)).copy()


@functools.lru_cache(maxsize=16)
def _empty(channel_names: tuple[str, ...]) -> pd.DataFrame:
    dtypes = column_dtypes(channel_names)
    return pd.DataFrame({k: pd.Series([], dtype=v) for k, v in dtypes.items()})


def _compartment_props(lab: np.ndarray, in_nucleus: np.ndarray, values: np.ndarray, n: int
                       ) -> dict[str, dict[str, np.ndarray]]:
    """Area, and mean and median per channel, of cells 1..n, their nuclei and cytoplasm.

    ``lab`` are the cell (1..n) of each pixel of the owned cells, ``in_nucleus`` whether
    the pixel is in the cell's nucleus, ``values`` the ``(c, pixels)`` intensities of those
    pixels. The nucleus and the cytoplasm are summed in one pass (the cytoplasm under IDs
    n+1..2n); a cell's sums are theirs added. NaN where a compartment is empty. Sums by
    ``bincount`` and medians from one sort (:func:`label_medians`): the values scikit-image's
    ``regionprops`` gives (means to rounding), without a Python call per object.
    """
    split = np.where(in_nucleus, lab, lab + n)
    area2, sums2 = _label_sums(split, values, 2 * n)
    medians2 = _present_medians(split, values, area2)
    area, sums = area2[:n] + area2[n:], sums2[:n] + sums2[n:]
    out = {"cell": (area, sums, _present_medians(lab, values, area)),
           "nucleus": (area2[:n], sums2[:n], medians2[:n]),
           "cytoplasm": (area2[n:], sums2[n:], medians2[n:])}
    with np.errstate(invalid="ignore", divide="ignore"):
        return {name: {"area": a, "mean": s / a[:, None], "median": m}
                for name, (a, s, m) in out.items()}


def _present_medians(flat: np.ndarray, values: np.ndarray, area: np.ndarray) -> np.ndarray:
    """``(len(area), c)`` medians of labels 1..len(area) of ``flat`` (NaN where empty)."""
    medians = np.full((len(area), values.shape[0]), np.nan)
    present = np.flatnonzero(area) + 1
    if present.size:
        medians[present - 1] = _medians(flat, values, present)
    return medians


def field_background(cells: np.ndarray, image: np.ndarray, margin: int = BACKGROUND_GAP_PX
                     ) -> np.ndarray:
    """Return each channel's background: the median of the pixels away from every cell.

    Parameters
    ----------
    cells : numpy.ndarray
        ``(y, x)`` cell labels (of a field, or a regular subsample of it).
    image : numpy.ndarray
        ``(c, y, x)`` intensities of the same pixels.
    margin : int
        Pixels kept clear of the cells (their blur).

    Returns
    -------
    numpy.ndarray
        One value per channel. With fewer than :data:`MIN_BACKGROUND_PX` pixels away from
        the cells (a confluent field), the 1st percentile of all pixels.

    Examples
    --------
    >>> cells = np.zeros((40, 40), np.uint32); cells[10:20, 10:20] = 1
    >>> image = np.full((1, 40, 40), 100.0); image[0, 10:20, 10:20] = 500
    >>> field_background(cells, image).tolist()
    [100.0]
    """
    from scipy import ndimage as ndi

    free = ndi.distance_transform_edt(cells == 0) > margin if (cells != 0).any() else (
        np.ones(cells.shape, bool))
    return _free_median(free, image)


def _free_median(free: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Each channel's median over the ``free`` pixels (or its 1st percentile, too few)."""
    pixels = np.asarray(image).reshape(image.shape[0], -1)
    if np.count_nonzero(free) >= MIN_BACKGROUND_PX:
        chosen = pixels[:, free.ravel()]
        if _small_unsigned(chosen):  # 8- and 16-bit images: from the histogram (exact)
            return np.array([_histogram_median(row) for row in chosen])
        return np.median(chosen.astype(np.float64), axis=1)
    if not pixels.shape[1]:
        return np.zeros(image.shape[0])
    return np.percentile(pixels.astype(np.float64), 1, axis=1)


def _small_unsigned(values: np.ndarray) -> bool:
    """Whether ``values`` are unsigned integers of at most 16 bits (most microscopy images)."""
    return values.dtype.kind == "u" and values.dtype.itemsize <= 2


def _histogram_median(values: np.ndarray) -> float:
    """``np.median`` of unsigned integers of at most 16 bits, from their histogram."""
    below = np.cumsum(np.bincount(values))
    lo, hi = np.searchsorted(below, [(len(values) - 1) // 2 + 1, len(values) // 2 + 1])
    return (float(lo) + float(hi)) / 2


def _core(nuclei: np.ndarray) -> np.ndarray:
    """Each nucleus eroded by :data:`NUCLEUS_EROSION_PX`; one that would vanish stays whole."""
    from scipy import ndimage as ndi
    from skimage.segmentation import find_boundaries

    # the pixels at least NUCLEUS_EROSION_PX from every edge pixel: an erosion by the disk
    # of the offsets nearer than that (what a distance transform's threshold gives)
    interior = ~(find_boundaries(nuclei, mode="inner") | (nuclei == 0))
    r = NUCLEUS_EROSION_PX
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    keep = ndi.binary_erosion(interior, structure=dy * dy + dx * dx < r * r, border_value=1)
    core = np.where(keep, nuclei, 0)
    lost = np.setdiff1d(nuclei[nuclei > 0], core[core > 0])
    return np.where(np.isin(nuclei, lost), nuclei, core) if lost.size else core


def _ring(cells: np.ndarray, nuclei: np.ndarray) -> np.ndarray:
    """Return each cell's cytoplasm ring: its pixels RING_GAP_PX to +RING_WIDTH_PX out.

    ``nuclei`` carry their cell's ID; every nucleus of the window counts (a pixel nearer
    another cell's nucleus is not in the ring), so the ring does not depend on which
    cells a window measures.
    """
    from scipy import ndimage as ndi

    # expand_labels(nuclei, d) for both distances from one distance transform
    dist, (iy, ix) = ndi.distance_transform_edt(nuclei == 0, return_indices=True)
    nearest = nuclei[iy, ix]
    ring = (dist > RING_GAP_PX) & (dist <= RING_GAP_PX + RING_WIDTH_PX) & (nearest == cells)
    return np.where(ring & (cells > 0), cells, 0)


def _label_sums(labels: np.ndarray, planes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(n,)`` and intensity sums ``(n, c)`` of labels 1..n.

    ``planes`` are the ``(c, pixels)`` intensities (one contiguous row per channel).
    """
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n + 1)[1:].astype(np.float64)
    sums = np.stack([np.bincount(flat, weights=plane, minlength=n + 1)[1:] for plane in planes],
                    axis=1) if len(planes) else np.zeros((n, 0))
    return counts, sums


def _label_means(labels: np.ndarray, planes: np.ndarray, n: int) -> np.ndarray:
    """``(n, c)`` mean intensity of labels 1..n (NaN where a label has no pixel)."""
    counts, sums = _label_sums(labels, planes, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def _local_background(nearest: np.ndarray, dist: np.ndarray, planes: np.ndarray, n: int,
                      fallback: np.ndarray) -> np.ndarray:
    """``(n, c)`` background of cells 1..n: their annulus's median, or ``fallback``.

    ``nearest`` is the measured cell (1..n; 0 for others) nearest each pixel and ``dist``
    the distance to it (a distance transform of the background with its indices).
    """
    ring = np.where((dist > BACKGROUND_GAP_PX)
                    & (dist <= BACKGROUND_GAP_PX + BACKGROUND_WIDTH_PX), nearest, 0)
    out = np.tile(np.asarray(fallback, np.float64), (n, 1))
    counts = np.bincount(ring.ravel(), minlength=n + 1)[1:]
    have = np.flatnonzero(counts >= MIN_BACKGROUND_PX) + 1
    if have.size:
        out[have - 1] = _medians(ring.ravel(), planes, have)
    return out


def label_medians(labels: np.ndarray, intensity: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Return the ``(len(ids), c)`` median intensity of each label in ``ids``, per channel.

    The same values as ``scipy.ndimage.median`` per channel (the mean of the two middle
    values for an even count), from one sort of the labels' pixels for all channels
    instead of one selection per channel; 8- and 16-bit images are sorted as one 32-bit key
    (label, value) per channel. ``ids`` are sorted, and every one has a pixel.

    Examples
    --------
    >>> labels = np.array([[1, 1, 2], [1, 2, 2]])
    >>> intensity = np.arange(12.0).reshape(2, 3, 2)
    >>> label_medians(labels, intensity, np.array([1, 2])).tolist()
    [[2.0, 3.0], [8.0, 9.0]]
    """
    values = np.asarray(intensity)
    planes = np.moveaxis(values, -1, 0).reshape(values.shape[-1], -1)
    return _medians(np.asarray(labels).ravel(), planes, np.asarray(ids))


def _medians(flat: np.ndarray, planes: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """:func:`label_medians` on flat labels and ``(c, pixels)`` intensities."""
    top = int(flat.max()) if flat.size else 0
    if top <= 2 * flat.size + 1024:  # a lookup table no larger than the image
        lut = np.full(top + 1, -1, np.int64)
        lut[ids[ids <= top]] = np.arange(np.count_nonzero(ids <= top))
        index = lut[flat]
        keep = index >= 0
        index = index[keep]
    else:
        keep = np.isin(flat, ids)
        index = np.searchsorted(ids, flat[keep])
    sub = planes[:, keep]
    count = np.bincount(index, minlength=len(ids))
    start = np.cumsum(count) - count
    lo = start + (count - 1) // 2
    hi = start + count // 2
    out = np.empty((len(ids), sub.shape[0]))
    if _small_unsigned(sub) and len(ids) <= 1 << 16:
        # integers of at most 16 bits: sort one 32-bit key (label << 16 | value) per channel,
        # a single vectorised sort; the low half is then the values ranked within each label
        high = index.astype(np.uint32) << 16
        for j, values in enumerate(sub):
            ranked = np.sort(high | values)
            out[:, j] = ((ranked[lo] & 0xFFFF).astype(np.float64) + (ranked[hi] & 0xFFFF)) / 2
        return out
    # sort each channel's values, then (stably) by label: a radix sort for small indices
    sub = sub.astype(np.float64, copy=False)
    key = index.astype(np.uint16 if len(ids) <= np.iinfo(np.uint16).max else np.int64)
    for j, values in enumerate(sub):
        by_value = np.argsort(values)
        ranked = values[by_value[np.argsort(key[by_value], kind="stable")]]
        out[:, j] = (ranked[lo] + ranked[hi]) / 2
    return out


def measure_cells(cells: np.ndarray, linked: np.ndarray, image: np.ndarray, *,
                  owned: np.ndarray, channel_names: Sequence[str],
                  pixel_size_um: tuple[float, float], field_shape: tuple[int, int],
                  n_nuclei: np.ndarray, offset: tuple[int, int] = (0, 0),
                  background: np.ndarray | None = None) -> pd.DataFrame:
    """Measure the owned cells of a window into a table.

    The arguments and the columns are those of :func:`measure_columns`; this returns them
    as a ``pandas.DataFrame``.
    """
    return pd.DataFrame(measure_columns(
        cells, linked, image, owned=owned, channel_names=channel_names,
        pixel_size_um=pixel_size_um, field_shape=field_shape, n_nuclei=n_nuclei,
        offset=offset, background=background))


def measure_columns(cells: np.ndarray, linked: np.ndarray, image: np.ndarray, *,
                    owned: np.ndarray, channel_names: Sequence[str],
                    pixel_size_um: tuple[float, float], field_shape: tuple[int, int],
                    n_nuclei: np.ndarray, offset: tuple[int, int] = (0, 0),
                    background: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Measure the owned cells of a window: one array per column, in table order.

    Parameters
    ----------
    cells : numpy.ndarray
        ``(y, x)`` cell labels of the window (every owned cell whole).
    linked : numpy.ndarray
        ``(y, x)`` linked nuclei of the window (a nucleus carries its cell's ID).
    image : numpy.ndarray
        ``(c, y, x)`` intensities of the window, one plane per channel.
    owned : numpy.ndarray
        IDs of the cells to measure (others in the window are ignored).
    channel_names : sequence of str
        One name per channel of ``image``.
    pixel_size_um : (float, float)
        Pixel size along y and x in micrometres.
    field_shape : (int, int)
        Size of the whole field, for ``touches_edge``.
    n_nuclei : numpy.ndarray
        Nuclei linked to each owned cell (same order as ``owned``).
    offset : (int, int)
        Field coordinates of the window's first pixel.
    background : numpy.ndarray, optional
        The field's background per channel (:func:`field_background`), for cells without
        a local one (default: the window's own).

    Returns
    -------
    dict of str to numpy.ndarray
        The columns of :func:`column_dtypes`, in that order and with those dtypes, one row
        per owned cell present in the window (``t`` 0, tracks -1); NaN where a compartment
        is empty (a cell with no nucleus has no nucleus intensities and no ratio). Without
        the overhead of a data frame: written to Arrow as they are.
    """
    from scipy import ndimage as ndi
    if image.ndim != 3 or image.shape[1:] != cells.shape or linked.shape != cells.shape:
        raise ValueError(
            f"expected cells and linked (y, x) and image (c, y, x) of one window; got "
            f"{cells.shape}, {linked.shape} and {image.shape}"
        )
    if image.shape[0] != len(channel_names):
        raise ValueError(f"{image.shape[0]} channels but {len(channel_names)} channel names")
    owned = np.asarray(owned, np.int64)
    keep = np.isin(cells, owned)
    if not keep.any():
        return {k: np.zeros(0, dtype) for k, dtype in column_dtypes(channel_names).items()}
    # scikit-image sizes its per-object lists by the largest ID: measure on IDs 1..n (memory
    # by the number of cells, not by their IDs) and give the rows their own IDs back
    ids = np.unique(cells[keep]).astype(np.int64)
    cells_owned = np.where(keep, np.searchsorted(ids, cells) + 1, 0).astype(np.int64)
    nuc = np.where(keep & (linked == cells), cells_owned, 0)
    # (c, pixels), integer images kept as integers: exact sums, and medians by one sort
    planes = np.asarray(image).reshape(image.shape[0], -1)
    fg = np.flatnonzero(keep)  # the owned cells' pixels: the only ones their compartments hold
    lab = cells_owned.ravel()[fg]
    values = planes[:, fg]
    shape = shape_props(cells_owned, len(ids))  # regionprops' values, all cells at once
    seq = np.arange(1, len(ids) + 1)
    labels = ids[seq - 1]
    py, px = pixel_size_um
    cy = shape["centroid"][:, 0] + offset[0]
    cx = shape["centroid"][:, 1] + offset[1]
    y0, x0, y1, x1 = (shape["bbox"][:, k] + offset[k % 2] for k in range(4))
    n_lut = dict(zip(owned.tolist(), np.asarray(n_nuclei).tolist(), strict=True))
    n = len(ids)
    in_nucleus = (linked == cells).ravel()[fg]
    parts = {name: {k: v[seq - 1] for k, v in props.items()}
             for name, props in _compartment_props(lab, in_nucleus, values, n).items()}
    # the readout: nucleus core, cytoplasm ring, local background (module docstring)
    # one distance transform of the background: the field's background (where not given)
    # and each cell's annulus
    dist, (iy, ix) = ndi.distance_transform_edt(cells == 0, return_indices=True)
    fallback = background if background is not None else _free_median(
        dist > BACKGROUND_GAP_PX, image)
    every_nucleus = np.where((linked == cells) & (cells > 0), cells, 0).astype(np.int64)
    ring_ids = _ring(np.asarray(cells, np.int64), every_nucleus)
    # core (in the nucleus) and ring (outside every nucleus) are disjoint: one pass, the
    # ring under IDs n+1..2n
    core_ring = np.where(ring_ids.ravel()[fg] > 0, lab + n, _core(nuc).ravel()[fg])
    means = _label_means(core_ring, values, 2 * n)
    core, ring = means[:n][seq - 1], means[n:][seq - 1]
    ring = np.where(np.isnan(ring), parts["cytoplasm"]["mean"], ring)  # no ring: all cytoplasm
    local = _local_background(cells_owned[iy, ix], dist, planes, n, fallback)[seq - 1]
    out: dict[str, object] = {
        "label": labels,
        "t": np.zeros(len(labels), np.int32),
        "area_px": shape["area"].astype(np.int64),
        "area_um2": shape["area"] * py * px,
        "centroid_y": cy,
        "centroid_x": cx,
        "centroid_y_um": cy * py,
        "centroid_x_um": cx * px,
        "eccentricity": shape["eccentricity"],
        "solidity": shape["solidity"],
        "major_axis_px": shape["axis_major_length"],
        "minor_axis_px": shape["axis_minor_length"],
        "touches_edge": (y0 <= 0) | (x0 <= 0) | (y1 >= field_shape[0]) | (x1 >= field_shape[1]),
        "n_nuclei": np.array([n_lut.get(int(v), 0) for v in labels], np.int32),
        "nucleus_area_px": parts["nucleus"]["area"].astype(np.int64),
    }
    for j, ch in enumerate(channel_names):
        for comp in COMPARTMENTS:
            p = parts[comp]
            mean = p["mean"][:, j]
            out[intensity_column(ch, comp, "mean")] = mean
            out[intensity_column(ch, comp, "median")] = p["median"][:, j]
            out[intensity_column(ch, comp, "integrated")] = mean * p["area"]
        bg_col, core_col, ring_col, ratio_col, raw_col = readout_columns(ch)
        bg, c_mean, r_mean = local[:, j], core[:, j], ring[:, j]
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = (out[intensity_column(ch, "nucleus", "mean")]
                   / out[intensity_column(ch, "cytoplasm", "mean")])
            ratio = (c_mean - bg) / (r_mean - bg)
        contrast = (r_mean - bg) > MIN_RING_CONTRAST * np.abs(r_mean)
        out[bg_col], out[core_col], out[ring_col] = bg, c_mean, r_mean
        out[ratio_col] = np.where(contrast & np.isfinite(ratio), ratio, np.nan)
        out[raw_col] = np.where(np.isfinite(raw), raw, np.nan)
    for name in TRACK_COLUMNS:
        out[name] = np.full(len(labels), -1, np.int64)
    return {k: np.asarray(out[k], dtype) for k, dtype in column_dtypes(channel_names).items()}

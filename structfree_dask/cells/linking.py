"""Linking nuclei to cells: each nucleus goes to the cell that holds most of it.

Everything here is computed region by region from sums that add up across regions
(overlap pixel counts, bounding boxes), so a field is linked with memory bounded by the
region size: :func:`region_summary` per region, :func:`merge_summaries` over the
regions of a (field, timepoint), :func:`link` once, then :func:`linked_nuclei` and
:func:`cytoplasm` per region again.

In the linked output a nucleus carries its cell's ID (two nuclei of one cell carry the
same ID); a nucleus outside every cell keeps an ID of its own above the largest cell ID.
Cells with no nucleus, with two or more, and nuclei outside any cell are counted, never
dropped.

Examples
--------
>>> cells = np.array([[1, 1, 0, 2, 2],
...                   [1, 1, 0, 2, 2]], dtype=np.uint32)
>>> nuclei = np.array([[7, 0, 0, 0, 9],
...                    [0, 0, 8, 0, 0]], dtype=np.uint32)
>>> summary = region_summary(nuclei, cells)
>>> result = link(summary)
>>> result.cells_without_nucleus, result.cells_with_several_nuclei, result.orphan_nuclei
(0, 0, 1)
>>> linked_nuclei(nuclei, result).tolist()
[[1, 0, 0, 0, 2], [0, 0, 3, 0, 0]]
>>> cytoplasm(cells, linked_nuclei(nuclei, result)).tolist()
[[0, 1, 0, 2, 0], [1, 1, 0, 2, 2]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..config import LABEL_DTYPE
from ..pipeline.overlap import label_overlaps

__all__ = [
    "Linking",
    "RegionSummary",
    "bounding_boxes",
    "cytoplasm",
    "link",
    "linked_nuclei",
    "merge_summaries",
    "region_summary",
]

_I64 = np.int64


@dataclass(frozen=True)
class RegionSummary:
    """What linking needs from one region, in sums that add up across regions.

    Attributes
    ----------
    cell_ids : numpy.ndarray
        Cell IDs present (sorted, 0 excluded).
    cell_boxes : numpy.ndarray
        ``(n, 4)`` bounding box ``(y0, x0, y1, x1)`` of each cell's pixels in the region, in
        field coordinates, ``y1``/``x1`` exclusive.
    pairs : numpy.ndarray
        ``(m, 3)`` rows ``(nucleus ID, cell ID or 0, overlapping pixels)``.
    """

    cell_ids: npt.NDArray[np.int64]
    cell_boxes: npt.NDArray[np.int64]
    pairs: npt.NDArray[np.int64]


def bounding_boxes(labels: np.ndarray, offset: tuple[int, int] = (0, 0)
                   ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """IDs (0 excluded) of a label plane and their ``(y0, x0, y1, x1)`` boxes.

    Examples
    --------
    >>> ids, boxes = bounding_boxes(np.array([[0, 3], [3, 3]]), offset=(10, 20))
    >>> ids.tolist(), boxes.tolist()
    ([3], [[10, 20, 12, 22]])
    """
    ys, xs = np.nonzero(labels)
    if not len(ys):
        return np.zeros(0, _I64), np.zeros((0, 4), _I64)
    values = labels[ys, xs]
    ids, inverse = np.unique(values, return_inverse=True)
    boxes = np.empty((len(ids), 4), _I64)
    boxes[:, 0] = np.iinfo(_I64).max
    boxes[:, 1] = np.iinfo(_I64).max
    boxes[:, 2] = -1
    boxes[:, 3] = -1
    np.minimum.at(boxes[:, 0], inverse, ys)
    np.minimum.at(boxes[:, 1], inverse, xs)
    np.maximum.at(boxes[:, 2], inverse, ys)
    np.maximum.at(boxes[:, 3], inverse, xs)
    boxes[:, 2:] += 1
    boxes += np.array([offset[0], offset[1], offset[0], offset[1]], _I64)
    return ids.astype(_I64), boxes


def region_summary(nuclei: np.ndarray, cells: np.ndarray,
                   offset: tuple[int, int] = (0, 0)) -> RegionSummary:
    """Cell boxes and nucleus-by-cell overlaps of one region (2-D planes of equal shape).

    Raises
    ------
    ValueError
        If the planes differ in shape.
    """
    if nuclei.shape != cells.shape:
        raise ValueError(
            f"nuclei and cells must have the same shape; got {nuclei.shape} and {cells.shape}"
        )
    ids, boxes = bounding_boxes(cells, offset)
    # nuclei outside cells pair with cell 0; areas are not needed (the pairs' pixels only)
    o = label_overlaps(nuclei, cells, b_background=True, areas=False)
    pairs = np.column_stack([o.ids_a[o.ia], o.ids_b[o.ib], o.inter]).astype(_I64)
    return RegionSummary(ids, boxes, pairs.reshape(-1, 3))


def merge_summaries(summaries: list[RegionSummary]) -> RegionSummary:
    """Combine the summaries of the regions of one plane (boxes united, overlaps summed).

    Examples
    --------
    >>> a = region_summary(np.array([[5, 5]]), np.array([[1, 1]]))
    >>> b = region_summary(np.array([[5, 0]]), np.array([[1, 2]]), offset=(0, 2))
    >>> m = merge_summaries([a, b])
    >>> m.cell_ids.tolist(), m.cell_boxes.tolist(), m.pairs.tolist()
    ([1, 2], [[0, 0, 1, 3], [0, 3, 1, 4]], [[5, 1, 3]])
    """
    if not summaries:
        return RegionSummary(np.zeros(0, _I64), np.zeros((0, 4), _I64), np.zeros((0, 3), _I64))
    all_ids = np.concatenate([s.cell_ids for s in summaries])
    all_boxes = np.concatenate([s.cell_boxes for s in summaries])
    ids, inverse = np.unique(all_ids, return_inverse=True)
    boxes = np.empty((len(ids), 4), _I64)
    boxes[:, :2] = np.iinfo(_I64).max
    boxes[:, 2:] = np.iinfo(_I64).min
    np.minimum.at(boxes[:, 0], inverse, all_boxes[:, 0])
    np.minimum.at(boxes[:, 1], inverse, all_boxes[:, 1])
    np.maximum.at(boxes[:, 2], inverse, all_boxes[:, 2])
    np.maximum.at(boxes[:, 3], inverse, all_boxes[:, 3])
    all_pairs = np.concatenate([s.pairs for s in summaries])
    if len(all_pairs):
        keys, inv = np.unique(all_pairs[:, :2], axis=0, return_inverse=True)
        counts = np.zeros(len(keys), _I64)
        np.add.at(counts, inv.ravel(), all_pairs[:, 2])
        pairs = np.column_stack([keys, counts])
    else:
        pairs = np.zeros((0, 3), _I64)
    return RegionSummary(ids.astype(_I64), boxes, pairs)


@dataclass(frozen=True)
class Linking:
    """The links of one (field, timepoint).

    Attributes
    ----------
    nucleus_ids : numpy.ndarray
        Every nucleus ID (sorted).
    nucleus_cell : numpy.ndarray
        The cell holding most of each nucleus; 0 for a nucleus outside every cell.
    nucleus_label : numpy.ndarray
        Each nucleus's ID in the linked output: its cell's ID, or for a nucleus outside
        every cell an ID above the largest cell ID.
    cell_ids : numpy.ndarray
        Every cell ID (sorted).
    cell_boxes : numpy.ndarray
        ``(n, 4)`` bounding boxes of the cells (see :class:`RegionSummary`).
    n_nuclei : numpy.ndarray
        Nuclei linked to each cell.
    """

    nucleus_ids: npt.NDArray[np.int64]
    nucleus_cell: npt.NDArray[np.int64]
    nucleus_label: npt.NDArray[np.int64]
    cell_ids: npt.NDArray[np.int64]
    cell_boxes: npt.NDArray[np.int64]
    n_nuclei: npt.NDArray[np.int64]

    @property
    def cells_without_nucleus(self) -> int:
        """Cells no nucleus was linked to."""
        return int(np.count_nonzero(self.n_nuclei == 0))

    @property
    def cells_with_several_nuclei(self) -> int:
        """Cells two or more nuclei were linked to."""
        return int(np.count_nonzero(self.n_nuclei >= 2))

    @property
    def orphan_nuclei(self) -> int:
        """Nuclei outside every cell."""
        return int(np.count_nonzero(self.nucleus_cell == 0))

    def counts(self) -> dict[str, int]:
        """Cells, nuclei and flagged objects, by name."""
        return {
            "cells": len(self.cell_ids),
            "nuclei": len(self.nucleus_ids),
            "cells_without_nucleus": self.cells_without_nucleus,
            "cells_with_several_nuclei": self.cells_with_several_nuclei,
            "nuclei_outside_cells": self.orphan_nuclei,
        }


def link(summary: RegionSummary) -> Linking:
    """Link each nucleus to the cell that holds most of its pixels.

    A nucleus whose pixels lie mostly outside every cell (background holds more than any
    one cell) is a nucleus outside any cell. Ties go to the smaller ID (deterministic).
    """
    pairs = summary.pairs
    if len(pairs):
        # most pixels first, then the smaller cell ID; the first row per nucleus wins
        order = np.lexsort((pairs[:, 1], -pairs[:, 2], pairs[:, 0]))
        ordered = pairs[order]
        first = np.ones(len(ordered), bool)
        first[1:] = ordered[1:, 0] != ordered[:-1, 0]
        nucleus_ids = ordered[first, 0]
        nucleus_cell = ordered[first, 1]
    else:
        nucleus_ids = np.zeros(0, _I64)
        nucleus_cell = np.zeros(0, _I64)
    top = int(summary.cell_ids.max()) if len(summary.cell_ids) else 0
    label = nucleus_cell.copy()
    orphans = np.flatnonzero(nucleus_cell == 0)
    label[orphans] = top + 1 + np.arange(len(orphans), dtype=_I64)
    linked = nucleus_cell[nucleus_cell != 0]
    idx = np.searchsorted(summary.cell_ids, linked)
    n_nuclei = np.bincount(idx, minlength=len(summary.cell_ids)).astype(_I64)
    return Linking(nucleus_ids, nucleus_cell, label, summary.cell_ids, summary.cell_boxes,
                   n_nuclei)


def linked_nuclei(nuclei: np.ndarray, linking: Linking) -> npt.NDArray[np.uint32]:
    """Relabel a nucleus plane with the IDs of :func:`link` (0 stays 0).

    Raises
    ------
    ValueError
        If the plane holds a nucleus ID that the linking does not know (a plane of
        another timepoint or field).
    """
    out = np.zeros(nuclei.shape, LABEL_DTYPE)
    mask = nuclei != 0
    if not mask.any():
        return out
    values = nuclei[mask].astype(_I64)
    idx = np.searchsorted(linking.nucleus_ids, values)
    idx = np.clip(idx, 0, max(len(linking.nucleus_ids) - 1, 0))
    if not len(linking.nucleus_ids) or np.any(linking.nucleus_ids[idx] != values):
        raise ValueError("the nucleus plane holds IDs this linking does not know")
    out[mask] = linking.nucleus_label[idx].astype(LABEL_DTYPE)
    return out


def cytoplasm(cells: np.ndarray, linked: np.ndarray) -> npt.NDArray[np.uint32]:
    """Return the cytoplasm: each cell's pixels not covered by its own linked nucleus.

    A pixel of a cell covered by the nucleus of another cell stays cytoplasm.
    """
    out = np.asarray(cells, dtype=LABEL_DTYPE).copy()
    out[(linked != 0) & (linked == cells)] = 0
    return out

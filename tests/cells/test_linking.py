import numpy as np
import pytest

from structfree_dask.cells.linking import (
    bounding_boxes,
    cytoplasm,
    link,
    linked_nuclei,
    merge_summaries,
    region_summary,
)


def _scene(seed=0, size=96):
    """Random cells (squares) with nuclei inside, one shared by two cells, one outside."""
    rng = np.random.default_rng(seed)
    cells = np.zeros((size, size), np.uint32)
    nuclei = np.zeros_like(cells)
    k = 0
    for y in range(0, size - 16, 20):
        for x in range(0, size - 16, 20):
            k += 1
            h, w = rng.integers(10, 18, 2)
            cells[y:y + h, x:x + w] = k
            if k % 5:  # every fifth cell has no nucleus
                nuclei[y + 3:y + 7, x + 3:x + 7] = 100 + k
            if k % 7 == 0:  # a second nucleus
                nuclei[y + 8:y + 10, x + 8:x + 10] = 300 + k
    nuclei[size - 4:, size - 4:] = 999  # outside every cell
    return nuclei, cells


def test_links_flags_and_labels():
    nuclei, cells = _scene()
    result = link(region_summary(nuclei, cells))
    n_cells = len(np.unique(cells)) - 1
    assert result.counts()["cells"] == n_cells
    assert result.cells_without_nucleus == sum(1 for k in range(1, n_cells + 1) if k % 5 == 0)
    assert result.cells_with_several_nuclei == sum(
        1 for k in range(1, n_cells + 1) if k % 7 == 0 and k % 5)
    assert result.orphan_nuclei == 1
    lk = linked_nuclei(nuclei, result)
    inside = (nuclei != 0) & (nuclei != 999)
    assert np.array_equal(lk[inside], cells[inside])  # a nucleus carries its cell's ID
    assert lk[-1, -1] == cells.max() + 1  # the nucleus outside any cell keeps its own ID
    cyt = cytoplasm(cells, lk)
    assert not np.any(cyt[inside]) and np.array_equal(cyt[(cells != 0) & ~inside],
                                                       cells[(cells != 0) & ~inside])


@pytest.mark.parametrize("step", [7, 16, 33])
def test_regions_add_up_to_the_whole_plane(step):
    nuclei, cells = _scene(seed=3)
    whole = link(region_summary(nuclei, cells))
    parts = [region_summary(nuclei[y:y + step, x:x + step], cells[y:y + step, x:x + step],
                            (y, x))
             for y in range(0, cells.shape[0], step) for x in range(0, cells.shape[1], step)]
    merged = link(merge_summaries(parts))
    for name in ("nucleus_ids", "nucleus_cell", "nucleus_label", "cell_ids", "cell_boxes",
                 "n_nuclei"):
        assert np.array_equal(getattr(whole, name), getattr(merged, name)), name
    ids, boxes = bounding_boxes(cells)
    assert np.array_equal(boxes, merged.cell_boxes) and np.array_equal(ids, merged.cell_ids)


def test_a_nucleus_goes_to_the_cell_holding_most_of_it():
    cells = np.array([[1, 1, 1, 2, 2, 0]], np.uint32)
    nuclei = np.array([[0, 5, 5, 5, 0, 0]], np.uint32)
    assert link(region_summary(nuclei, cells)).nucleus_cell.tolist() == [1]
    # mostly outside any cell: a nucleus outside cells, even though it touches cell 2
    cells2 = np.array([[1, 1, 1, 2, 2, 0]], np.uint32)
    nuclei2 = np.array([[0, 0, 0, 0, 6, 6]], np.uint32)
    nuclei2 = np.concatenate([nuclei2, [[0, 0, 0, 0, 0, 6]]])
    cells2 = np.concatenate([cells2, [[0, 0, 0, 0, 0, 0]]])
    r = link(region_summary(nuclei2, cells2))
    assert r.nucleus_cell.tolist() == [0] and r.orphan_nuclei == 1
    # a tie goes to the smaller cell ID
    r = link(region_summary(np.array([[7, 7]], np.uint32), np.array([[3, 2]], np.uint32)))
    assert r.nucleus_cell.tolist() == [2]


def test_empty_planes_and_bad_input():
    z = np.zeros((8, 8), np.uint32)
    r = link(region_summary(z, z))
    assert r.counts() == {"cells": 0, "nuclei": 0, "cells_without_nucleus": 0,
                          "cells_with_several_nuclei": 0, "nuclei_outside_cells": 0}
    assert not linked_nuclei(z, r).any()
    with pytest.raises(ValueError, match="same shape"):
        region_summary(z, np.zeros((4, 4), np.uint32))
    with pytest.raises(ValueError, match="does not know"):
        linked_nuclei(np.ones((2, 2), np.uint32), r)

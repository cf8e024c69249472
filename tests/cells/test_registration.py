"""cells.registration: the stage drift between timepoints, from the cell masks."""

from __future__ import annotations

import numpy as np
import pytest

from structfree_dask.cells.registration import (
    MAX_SHIFT_FRACTION,
    MIN_AGREEMENT,
    Shift,
    agreement,
    content_shift,
    drift,
    registered_overlaps,
)
from structfree_dask.simulate import simulate_field


@pytest.fixture(scope="module")
def world():
    """A larger field of real-looking cells; crops of it are the stage's views."""
    return simulate_field("CL1", size=256, timepoints=2, seed=3).cyto


def _view(plane, dy, dx, size=192, margin=32):
    """What the camera sees when the stage is off by (dy, dx): content moves by (-dy, -dx)."""
    return plane[margin + dy:margin + dy + size, margin + dx:margin + dx + size]


@pytest.mark.parametrize("shift", [(0, 0), (3, -5), (-15, 12), (15, 15), (-7, 0)])
def test_the_shift_of_the_content_is_found(world, shift):
    dy, dx = shift
    previous = _view(world[0], 0, 0)
    current = _view(world[0], -dy, -dx)  # cells enter and leave at the borders
    assert content_shift(previous, current) == Shift(float(dy), float(dx), True)


def test_the_shift_is_found_while_cells_move_and_divide(world):
    previous = _view(world[0], 0, 0)
    current = _view(world[1], 6, -9)  # the next timepoint, the stage 6 px down, 9 px left
    assert content_shift(previous, current)[:2] == (-6.0, 9.0)


def test_what_cannot_be_registered_is_said():
    empty = np.zeros((64, 64), np.uint32)
    cells = np.zeros((64, 64), np.uint32)
    cells[10:20, 10:20] = 1
    assert content_shift(empty, cells) == Shift(0.0, 0.0, False)  # an empty timepoint
    rng = np.random.default_rng(0)
    other = (rng.random((64, 64)) > 0.5).astype(np.uint32)  # unrelated (out of focus)
    assert content_shift(cells, other).registered is False
    far = np.roll(cells, int(64 * MAX_SHIFT_FRACTION) + 8, axis=0)
    assert content_shift(cells, far) == Shift(0.0, 0.0, False)  # more than a plausible drift
    with pytest.raises(ValueError, match="two"):
        content_shift(cells, cells[:32])


def test_cells_that_moved_on_their_own_without_drift_are_registered_unmoved():
    """Two cells one pixel apart in opposite directions: a 1 px shift explains the masks no
    better than none (a tie); the masks agree as they are, so the stage did not move."""
    previous = np.zeros((64, 64), np.uint32)
    previous[10:30, 10:30] = 1
    previous[36:56, 36:56] = 2
    current = np.zeros_like(previous)
    current[10:30, 11:31] = 1
    current[36:56, 35:55] = 2
    assert agreement(previous != 0, current != 0) > MIN_AGREEMENT
    assert content_shift(previous, current) == Shift(0.0, 0.0, True)
    # the same masks, no longer agreeing with what came before (out of focus): not registered
    blobs = (np.random.default_rng(1).random(previous.shape) > 0.5).astype(np.uint32)
    assert agreement(previous != 0, blobs != 0) < MIN_AGREEMENT
    assert content_shift(previous, blobs).registered is False


def test_drift_chains_the_steps_from_the_first_timepoint():
    assert drift({3: (9.0, 9.0), 5: (1.0, -2.0), 4: (2.0, 0.5)}) == {
        3: (0.0, 0.0), 4: (2.0, 0.5), 5: (3.0, -1.5)}
    assert drift({}) == {}


def test_overlaps_are_counted_with_the_drift_removed(world):
    previous = _view(world[0], 0, 0)
    current = _view(world[0], 9, -12)  # the content moved up 9 and right 12
    pairs = registered_overlaps(previous, current, content_shift(previous, current))
    area_p, area_c = np.bincount(previous.ravel()), np.bincount(current.ravel())
    whole = [lb for lb in range(1, min(len(area_p), len(area_c)))
             if area_p[lb] and area_p[lb] == area_c[lb] == np.count_nonzero(world[0] == lb)]
    assert whole and all(pairs[(lb, lb)] == 1.0 for lb in whole)  # seen whole in both
    assert all(a == b for a, b in pairs)  # once registered, no cell covers another
    raw = registered_overlaps(previous, current, Shift(0.0, 0.0, False))
    assert max(raw.get((lb, lb), 0.0) for lb in whole) < 1.0
    assert any(a != b for a, b in raw)


def test_spectra_computed_once_give_the_same_shift(world):
    from structfree_dask.cells.registration import mask_spectrum

    previous, current = _view(world[0], 0, 0), _view(world[1], 4, -7)
    spectra = (mask_spectrum(previous), mask_spectrum(current))
    assert content_shift(previous, current, spectra) == content_shift(previous, current)

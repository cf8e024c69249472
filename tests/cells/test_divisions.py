"""Divisions decided again from laptrack's links: evidence, and daughters to mothers."""

from __future__ import annotations

import numpy as np
import pytest

from structfree_dask.cells import divisions
from structfree_dask.cells.divisions import assign_divisions, division_evidence


def positions(*cells: tuple[float, float, float, int, int]) -> np.ndarray:
    """``pos`` rows from (y, x, radius, t, label) tuples."""
    return np.array(cells, dtype=np.float64)


def test_daughters_on_either_side_of_their_mother():
    pos = positions((20, 20, 8, 0, 1), (20, 13, 6, 1, 1), (20, 27, 6, 1, 2),
                    (20, 40, 6, 1, 3), (27, 20, 6, 1, 4))
    assert division_evidence(pos, 0, [1, 2], reference=8.0)
    assert not division_evidence(pos, 0, [2, 3], reference=8.0)  # both on her right
    assert not division_evidence(pos, 0, [1, 4], reference=8.0)  # midpoint off her centre


def test_overlap_is_evidence_where_the_centroids_are_not():
    # a mother cut by the field's edge: her centroid lies off her daughters' midpoint and
    # one daughter is far nearer than the other; both daughters cover her
    pos = positions((5, 20, 8, 0, 1), (4, 17, 6, 1, 1), (12, 28, 6, 1, 2))
    assert not division_evidence(pos, 0, [1, 2], reference=8.0)
    overlaps = {(0, 1, 1, 1): 0.3, (0, 1, 1, 2): 0.2}
    assert division_evidence(pos, 0, [1, 2], reference=8.0, overlaps=overlaps)
    # too little overlap with one of them
    assert not division_evidence(pos, 0, [1, 2], reference=8.0,
                                 overlaps={(0, 1, 1, 1): 0.3, (0, 1, 1, 2): 0.05})
    # a sliver of a cell is no daughter, however it overlaps
    sliver = pos.copy()
    sliver[2, 2] = 1.5  # (1.5 / 6)^2 = 0.06 of its sister's area
    assert not division_evidence(sliver, 0, [1, 2], reference=8.0, overlaps=overlaps)


def test_two_neighbours_dividing_at_once_keep_their_daughters():
    # mothers at x = 20 and x = 44 divide at once; their inner daughters cross over (the
    # first mother's at x = 33, the second's at x = 31), so on distance alone each inner
    # daughter is nearer the other mother, and laptrack gives them so
    pos = positions((20, 20, 8, 0, 1), (20, 44, 8, 0, 2),
                    (20, 10, 6, 1, 1), (20, 31, 6, 1, 2), (20, 33, 6, 1, 3), (20, 54, 6, 1, 4))
    born = np.array([False, False, True, True, True, True])
    crossed = [(0, 2), (0, 3), (1, 4), (1, 5)]
    # each daughter covers her own mother: the overlaps give them back
    overlaps = {(0, 1, 1, 1): 0.3, (0, 1, 1, 3): 0.25, (0, 2, 1, 2): 0.25, (0, 2, 1, 4): 0.3}
    assert assign_divisions(crossed, pos, born, reference=8.0, division_distance=16.0,
                            overlaps=overlaps) == [(0, 2), (0, 4), (1, 3), (1, 5)]
    # without overlaps both pairings are as evident, the crossed one more symmetric
    assert assign_divisions(crossed, pos, born, reference=8.0,
                            division_distance=16.0) == crossed


def test_the_mother_the_daughter_covers_wins_a_tie():
    # two mothers at the same distance from a daughter, both with their first daughter
    # placed symmetrically: the daughter goes to the one her mask overlaps
    pos = positions((20, 20, 8, 0, 1), (20, 40, 8, 0, 2),
                    (20, 12, 6, 1, 1), (20, 48, 6, 1, 2), (20, 30, 6, 1, 3))
    born = np.array([False, False, True, True, True])
    links = [(0, 2), (1, 3)]
    for overlapped, mother in (((0, 1), 0), ((0, 2), 1)):
        overlaps = {(*overlapped, 1, 3): 0.4}
        got = assign_divisions(links, pos, born, reference=8.0, division_distance=30.0,
                               overlaps=overlaps)
        assert (mother, 4) in got and sorted(got) == got and len(got) == 3


def test_no_divisions_without_evidence_distance_or_a_free_mother():
    pos = positions((20, 20, 8, 0, 1), (20, 13, 6, 1, 1), (20, 27, 6, 1, 2))
    born = np.array([False, True, True])
    # laptrack's division goes back to the mother going on as her nearer child
    assert assign_divisions([(0, 1), (0, 2)], pos, born, reference=8.0,
                            division_distance=0.0) == [(0, 1)]
    # the second daughter beyond the division distance
    assert assign_divisions([(0, 1)], pos, born, reference=8.0,
                            division_distance=5.0) == [(0, 1)]
    # a row that is not being tracked (an earlier timepoint's) is never born
    assert assign_divisions([(0, 1)], pos, np.array([False, True, False]), reference=8.0,
                            division_distance=16.0) == [(0, 1)]
    # a mother that ends (no continuation) gives no daughter
    assert assign_divisions([], pos, born, reference=8.0, division_distance=16.0) == []


def test_a_mother_that_still_covers_a_daughter_went_on_as_her():
    # daughters on either side of her: evidence by geometry, unless one of them covers
    # her as much as a cell going on does (a neighbour's daughter beside her)
    pos = positions((20, 20, 8, 0, 1), (20, 15, 8, 1, 1), (20, 26, 6, 1, 2))
    assert division_evidence(pos, 0, [1, 2], reference=8.0)
    shared = {(0, 1, 1, 1): 0.45, (0, 1, 1, 2): 0.3}
    assert division_evidence(pos, 0, [1, 2], reference=8.0, overlaps=shared)
    for same in (0.6, 0.75):
        overlaps = {(0, 1, 1, 1): same, (0, 1, 1, 2): 0.05}
        assert not division_evidence(pos, 0, [1, 2], reference=8.0, overlaps=overlaps)
        assert not division_evidence(pos, 0, [2, 1], reference=8.0, overlaps=overlaps)
    born = np.array([False, True, True])
    assert assign_divisions([(0, 1)], pos, born, reference=8.0, division_distance=16.0,
                            overlaps={(0, 1, 1, 1): 0.7}) == [(0, 1)]
    assert assign_divisions([(0, 1)], pos, born, reference=8.0, division_distance=16.0,
                            overlaps=shared) == [(0, 1), (0, 2)]


def test_a_daughter_on_her_mothers_mask_is_within_reach():
    # daughters on either side of their mother, the second one's centroid beyond the
    # division distance (14 px > 12 px): within reach where her mask lies on her mother's
    pos = positions((20, 20, 8, 0, 1), (20, 8, 6, 1, 1), (20, 34, 6, 1, 2))
    born = np.array([False, True, True])
    assert division_evidence(pos, 0, [1, 2], reference=8.0)
    overlaps = {(0, 1, 1, 1): 0.3, (0, 1, 1, 2): 0.15}
    assert assign_divisions([(0, 1)], pos, born, reference=8.0, division_distance=12.0,
                            overlaps=overlaps) == [(0, 1), (0, 2)]
    # barely touching her, or without overlaps, she is out of reach
    overlaps[(0, 1, 1, 2)] = 0.05
    for given in (overlaps, None):
        assert assign_divisions([(0, 1)], pos, born, reference=8.0, division_distance=12.0,
                                overlaps=given) == [(0, 1)]
    # an overlap with a cell two timepoints later brings nothing within reach
    late = positions((20, 20, 8, 0, 1), (20, 8, 6, 1, 1), (20, 34, 6, 2, 2))
    assert assign_divisions([(0, 1)], late, born, reference=8.0, division_distance=12.0,
                            overlaps={(0, 1, 1, 1): 0.3, (0, 1, 2, 2): 0.4}) == [(0, 1)]


def test_the_sisters_rule_can_be_switched_by_its_constant(monkeypatch):
    pos = positions((5, 20, 8, 0, 1), (4, 17, 6, 1, 1), (12, 28, 3, 1, 2))
    overlaps = {(0, 1, 1, 1): 0.3, (0, 1, 1, 2): 0.2}
    assert division_evidence(pos, 0, [1, 2], reference=8.0, overlaps=overlaps)
    monkeypatch.setattr(divisions, "DIVISION_SISTERS", 0.5)  # (3 / 6)^2 = 0.25 < 0.5
    assert not division_evidence(pos, 0, [1, 2], reference=8.0, overlaps=overlaps)


@pytest.mark.parametrize("n", [0, 1])
def test_empty_inputs(n):
    pos = positions((20, 20, 8, 0, 1))[:n].reshape(n, 5)
    assert assign_divisions([], pos, np.zeros(n, dtype=bool), reference=8.0,
                            division_distance=16.0) == []

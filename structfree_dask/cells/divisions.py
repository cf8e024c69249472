"""Divisions: which cell, if any, a cell that starts a track was born from.

laptrack (:mod:`.tracking`) links cells from one timepoint to the next and proposes
divisions, each daughter matched to the nearest cell before her on distance alone. Near the
field's edge, in a crowd, or where two neighbours divide at once, the nearest cell is often
not the mother. Here every division is decided again, from laptrack's links:

1. A cell with two children keeps the nearer one as her continuation; the other becomes a
   cell without a predecessor, like every cell that starts a track after the first
   timepoint.
2. Each such cell at ``t + 1`` may be the second daughter of a cell at ``t`` that goes on
   as exactly one cell at ``t + 1`` (her first daughter), when the pair shows evidence of
   a division (:func:`division_evidence`) and the daughter lies within the division
   distance or overlaps her (IoU at least :data:`DIVISION_OVERLAP`: a daughter on her
   mother's mask is within reach however far the centroids lie).
3. Of those candidates, the daughters are given to the mothers by linear assignment
   (scipy's ``linear_sum_assignment``, one timepoint at a time, as many divisions as the
   evidence allows): a candidate costs the distance from the mother's centroid to the
   midpoint of her daughters (over her radius) minus the overlap (IoU) of her mask with the
   daughter's, so a daughter goes to the mother that sits between her daughters and that
   she covers most.

Rows are given as an array ``pos`` of ``(y, x, radius, t, label)`` per row (a radius of 0
where the area is not known), as :mod:`.tracking` builds it, and links as pairs of row
positions ``(a, b)`` with ``a`` before ``b``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "DIVISION_MIDPOINT",
    "DIVISION_OVERLAP",
    "DIVISION_SAME",
    "DIVISION_SISTERS",
    "DIVISION_SYMMETRY",
    "assign_divisions",
    "division_evidence",
]

#: Largest distance from a mother's centroid to the midpoint of her two daughters, as a
#: fraction of her radius (or of the typical radius, where that is larger).
DIVISION_MIDPOINT = 0.5
#: Smallest ratio of the nearer daughter's distance from her mother to the farther one's.
DIVISION_SYMMETRY = 0.4
#: Smallest overlap (IoU of the registered masks) of a mother with each daughter that is
#: evidence of a division where the centroids are not (a mother cut by the field's edge,
#: whose centroid is not where she is).
DIVISION_OVERLAP = 0.1
#: Overlap (IoU) of a mother with a "daughter" from which on she is taken to go on as that
#: cell, not to divide: a daughter shares her mother's mask with her sister, and none of
#: the true divisions of the simulated time-lapses overlapped that much.
DIVISION_SAME = 0.6
#: With that overlap, the smaller daughter's area must be at least this fraction of the
#: larger one's (a sliver of a cell entering beside a mother is no daughter).
DIVISION_SISTERS = 0.1

logger = logging.getLogger(__name__)

#: A link between rows, as their positions.
Edge = tuple[int, int]
#: The IoU of two cells' registered masks, keyed ``(t, label, t2, label2)`` with ``t < t2``.
Overlaps = Mapping[tuple[int, int, int, int], float]


def _iou(pos: np.ndarray, a: int, b: int, overlaps: Overlaps) -> float:
    key = (int(pos[a, 3]), int(pos[a, 4]), int(pos[b, 3]), int(pos[b, 4]))
    return float(overlaps.get(key, 0.0))


def division_evidence(pos: np.ndarray, mother: int, daughters: Sequence[int], *,
                      reference: float, overlaps: Overlaps | None = None) -> bool:
    """Return whether two cells look like the daughters of ``mother``.

    Either the daughters lie on either side of her (their midpoint within
    :data:`DIVISION_MIDPOINT` of her radius, at least ``reference``, from her centroid, and
    the nearer at least :data:`DIVISION_SYMMETRY` times as far from her as the farther), or
    their midpoint lies within her radius, her mask overlaps each of theirs by at least
    :data:`DIVISION_OVERLAP` (IoU) and the smaller daughter has at least
    :data:`DIVISION_SISTERS` of the larger one's area. Either way, a "daughter" whose mask
    overlaps hers by :data:`DIVISION_SAME` or more is her, going on: no division.

    Parameters
    ----------
    pos : numpy.ndarray
        ``(y, x, radius, t, label)`` per row.
    mother : int
        Row of the mother.
    daughters : sequence of int
        Rows of the two daughters.
    reference : float
        The typical cell radius in pixels.
    overlaps : mapping, optional
        IoU of registered masks keyed ``(t, label, t2, label2)``; without it (or without
        the pairs) only the geometry counts.

    Examples
    --------
    >>> import numpy as np
    >>> pos = np.array([[20.0, 20.0, 8.0, 0, 1],     # the mother
    ...                 [20.0, 13.0, 6.0, 1, 1],     # on her left
    ...                 [20.0, 27.0, 6.0, 1, 2],     # on her right
    ...                 [20.0, 40.0, 6.0, 1, 3]])    # far on her right
    >>> division_evidence(pos, 0, [1, 2], reference=8.0)
    True
    >>> division_evidence(pos, 0, [2, 3], reference=8.0)
    False
    """
    pair = list(daughters)
    ious = [_iou(pos, mother, d, overlaps) for d in pair] if overlaps else []
    if ious and max(ious) >= DIVISION_SAME:
        return False
    centre = pos[mother, :2]
    dist = np.hypot(*(pos[pair, :2] - centre).T)
    midpoint = float(np.hypot(*(pos[pair, :2].mean(axis=0) - centre)))
    radius = max(reference, float(pos[mother, 2]))
    symmetric = dist.max() == 0 or dist.min() >= DIVISION_SYMMETRY * dist.max()
    if midpoint <= DIVISION_MIDPOINT * radius and symmetric:
        return True
    if not overlaps or midpoint > radius:
        return False
    if min(ious) < DIVISION_OVERLAP:
        return False
    areas = pos[pair, 2] ** 2
    return bool(areas.max() == 0 or areas.min() >= DIVISION_SISTERS * areas.max())


def assign_divisions(edges: Sequence[Edge], pos: np.ndarray, born: np.ndarray, *,
                     reference: float, division_distance: float,
                     overlaps: Overlaps | None = None) -> list[Edge]:
    """Return laptrack's links with every division decided again (see the module's text).

    Parameters
    ----------
    edges : sequence of (int, int)
        laptrack's links ``(a, b)`` between rows (each ``b`` a row that may be born:
        ``born[b]``), divisions as two links from one row.
    pos : numpy.ndarray
        ``(y, x, radius, t, label)`` per row.
    born : numpy.ndarray of bool
        Rows that may start a track or be born at a division (the rows being tracked;
        rows of earlier timepoints, already tracked, may only be mothers).
    reference : float
        The typical cell radius in pixels.
    division_distance : float
        Largest distance in pixels from a mother (of the typical radius; a larger one's
        grows in proportion to her radius) to a daughter; 0 gives no divisions.
    overlaps : mapping, optional
        IoU of registered masks keyed ``(t, label, t2, label2)``.

    Returns
    -------
    list of (int, int)
        The links, sorted: each cell's continuation, and a second link from each mother.

    Examples
    --------
    laptrack gave the daughter on the right to the neighbour further right, nearer to her
    than her mother; the mother sits between her two daughters:

    >>> import numpy as np
    >>> pos = np.array([[20.0, 20.0, 8.0, 0, 1],     # 0: the mother
    ...                 [20.0, 33.0, 6.0, 0, 2],     # 1: a neighbour
    ...                 [20.0, 13.0, 6.0, 1, 1],     # 2: the left daughter
    ...                 [20.0, 27.0, 6.0, 1, 2],     # 3: the right daughter
    ...                 [20.0, 37.0, 6.0, 1, 3]])    # 4: the neighbour, moved
    >>> born = np.array([False, False, True, True, True])
    >>> assign_divisions([(0, 2), (1, 4), (1, 3)], pos, born, reference=8.0,
    ...                  division_distance=12.0)
    [(0, 2), (0, 3), (1, 4)]
    """
    children: dict[int, list[int]] = {}
    for a, b in edges:
        children.setdefault(int(a), []).append(int(b))
    continuation: dict[int, int] = {}
    for a, kids in children.items():
        dist = np.hypot(*(pos[kids, :2] - pos[a, :2]).T)
        continuation[a] = kids[int(np.argmin(dist))]
    links = sorted(continuation.items())
    if not division_distance:
        return links
    t = pos[:, 3].astype(np.int64)
    has_predecessor = set(continuation.values())
    first = int(t.min()) if len(t) else 0
    orphans = [int(b) for b in np.flatnonzero(born)
               if b not in has_predecessor and t[b] > first]
    born_at: dict[int, list[int]] = {}
    for b in orphans:
        born_at.setdefault(int(t[b]), []).append(b)
    going_on: dict[int, list[int]] = {}  # by the timepoint of the cell they go on as
    for a, b in continuation.items():
        if t[b] == t[a] + 1:
            going_on.setdefault(int(t[b]), []).append(a)
    added: list[Edge] = []
    covered = _covered(pos, overlaps or {})
    for when, at in sorted(born_at.items()):
        added += _assign(at, going_on.get(when, []), continuation, pos, reference,
                         division_distance, overlaps or {}, covered)
    if logger.isEnabledFor(logging.DEBUG):  # the sets only for the debug line
        proposed = {(int(a), int(b)) for a, b in edges} - set(links)
        logger.debug("%d divisions (laptrack proposed %d, %d of them kept)", len(added),
                     len(proposed), len(proposed & set(added)))
    return sorted(links + added)


def _covered(pos: np.ndarray, overlaps: Overlaps) -> dict[int, list[int]]:
    """Rows that overlap each row of the timepoint after theirs by DIVISION_OVERLAP."""
    row = {(int(t), int(label)): i for i, (t, label) in enumerate(pos[:, 3:5].tolist())}
    covered: dict[int, list[int]] = {}
    for (t, label, t2, label2), iou in overlaps.items():
        a, b = row.get((t, label)), row.get((t2, label2))
        if iou >= DIVISION_OVERLAP and a is not None and b is not None and t2 == t + 1:
            covered.setdefault(b, []).append(a)
    return covered


def _assign(orphans: list[int], mothers: list[int], continuation: dict[int, int],
            pos: np.ndarray, reference: float, division_distance: float,
            overlaps: Overlaps, covered: Mapping[int, list[int]]) -> list[Edge]:
    """Return the divisions of one timepoint: each orphan to at most one mother."""
    from scipy.optimize import linear_sum_assignment

    if not orphans or not mothers:
        return []
    m = np.asarray(mothers)
    radius = np.maximum(reference, pos[m, 2])
    reach = division_distance * radius / reference  # a larger mother's daughters lie further
    cost = np.full((len(orphans), len(mothers)), np.inf)
    for i, d in enumerate(orphans):
        near = np.hypot(*(pos[m, :2] - pos[d, :2]).T) <= reach
        near |= np.isin(m, covered.get(d, []))  # a daughter on her mother's mask
        for j in np.flatnonzero(near):
            mother, first = int(m[j]), continuation[int(m[j])]
            if not division_evidence(pos, mother, [first, d], reference=reference,
                                     overlaps=overlaps):
                continue
            midpoint = math.hypot(*((pos[first, :2] + pos[d, :2]) / 2 - pos[mother, :2]))
            cost[i, j] = midpoint / radius[j] - _iou(pos, mother, d, overlaps)
    allowed = np.isfinite(cost)
    if not allowed.any():
        return []
    # forbidden pairs cost more than any set of allowed ones: as many divisions as possible
    rows, cols = linear_sum_assignment(np.where(allowed, cost, 1e6))
    return [(int(m[j]), orphans[i]) for i, j in zip(rows, cols, strict=True) if allowed[i, j]]

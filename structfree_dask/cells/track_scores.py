"""Links of a tracked table, and their scores against ground truth.

A link is ``((t, label), (t2, label2))``: two consecutive rows of one track, or a
mother's last row and a daughter's first row (a division link); see
:mod:`.tracking` for the definitions.

Examples
--------
>>> import pandas as pd
>>> tracked = pd.DataFrame({"t": [0, 1, 1], "label": [1, 2, 3], "track_id": [1, 2, 3],
...                         "parent_track_id": [-1, 1, 1]})
>>> link_scores(track_links(tracked).divisions, {((0, 1), (1, 2))}).precision
0.5
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..pipeline.overlap import label_overlaps
from .columns import KEYS, TRACK_COLUMNS

__all__ = ["Link", "LinkScores", "Node", "TrackLinks", "link_scores", "match_labels",
           "persistent_links", "track_links"]

_LABEL, _T = KEYS
_TRACK, _PARENT = TRACK_COLUMNS

#: A cell at one timepoint, ``(t, label)``.
Node = tuple[int, int]
#: A link between two cells, ``((t, label), (t2, label2))``.
Link = tuple[Node, Node]


class TrackLinks(NamedTuple):
    """Links of a tracked table: within tracks, and from mothers to daughters."""

    links: set[Link]
    divisions: set[Link]


def track_links(table: pd.DataFrame) -> TrackLinks:
    """Return the links of a tracked table.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows with ``t``, ``label``, ``track_id`` and ``parent_track_id`` (rows with
        ``track_id`` -1 have no links).

    Returns
    -------
    TrackLinks
        ``links``: each pair of consecutive rows of a track; ``divisions``: the last row of
        each mother to the first row of each daughter (for mothers in the table).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"t": [0, 1, 2, 2], "label": [1, 1, 5, 6], "track_id": [1, 1, 2, 3],
    ...                   "parent_track_id": [-1, -1, 1, 1]})
    >>> links = track_links(t)
    >>> links.links
    {((0, 1), (1, 1))}
    >>> sorted(links.divisions)
    [((1, 1), (2, 5)), ((1, 1), (2, 6))]
    """
    missing = [c for c in (_T, _LABEL, *TRACK_COLUMNS) if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks the column(s) {missing}")
    d = table.loc[table[_TRACK].to_numpy() >= 1, [_T, _LABEL, *TRACK_COLUMNS]]
    d = d.astype(np.int64).sort_values([_TRACK, _T])
    if d.empty:
        return TrackLinks(set(), set())
    track = d[_TRACK].to_numpy()
    nodes = list(zip(d[_T].tolist(), d[_LABEL].tolist(), strict=True))
    same = track[1:] == track[:-1]
    links = {(nodes[i], nodes[i + 1]) for i in np.flatnonzero(same)}
    first = np.flatnonzero(np.r_[True, ~same])
    last_row = {int(track[i]): nodes[i] for i in np.r_[first[1:] - 1, len(d) - 1]}
    parents = d[_PARENT].to_numpy()
    divisions = {(last_row[int(parents[i])], nodes[i]) for i in first
                 if int(parents[i]) in last_row}
    return TrackLinks(links, divisions)


def persistent_links(labels: np.ndarray) -> set[Link]:
    """Return the links of a label stack whose IDs persist while a cell lives.

    Parameters
    ----------
    labels : numpy.ndarray
        Label images ``(t, y, x)`` (or ``(t, ...)``) in which a cell keeps its ID over
        time and an ID is never reused, such as the simulator's ground truth (daughters get
        new IDs).

    Returns
    -------
    set of Link
        ``((t, id), (t2, id))`` from each timepoint ``t`` where an ID is present to the
        next one ``t2`` (usually ``t + 1``; later where the cell left the field for a while).

    Examples
    --------
    >>> import numpy as np
    >>> stack = np.array([[[1, 2]], [[1, 0]], [[1, 2]]])
    >>> sorted(persistent_links(stack))
    [((0, 1), (1, 1)), ((0, 2), (2, 2)), ((1, 1), (2, 1))]
    """
    last: dict[int, int] = {}
    out: set[Link] = set()
    for t, plane in enumerate(np.asarray(labels)):
        for i in np.unique(plane).tolist():
            if i == 0:
                continue
            if i in last:
                out.add(((last[i], int(i)), (t, int(i))))
            last[i] = t
    return out


@dataclass(frozen=True)
class LinkScores:
    """Precision, recall and F1 of predicted links against true ones.

    Attributes
    ----------
    tp, fp, fn : int
        Links found, predicted but not true, true but not predicted.
    precision, recall, f1 : float
        All 1.0 when there are neither predicted nor true links; 0.0 when only one side is
        empty.
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float


def link_scores(pred: Iterable[Link], true: Iterable[Link], *,
                matches: Mapping[Node, int] | None = None) -> LinkScores:
    """Score predicted links against true links (frame-to-frame links, or divisions).

    Parameters
    ----------
    pred, true : iterable of Link
        ``((t, label), (t2, label2))`` pairs, e.g. from :func:`track_links` and
        :func:`persistent_links`.
    matches : mapping, optional
        Predicted object ``(t, label)`` to the true label it matches at ``t`` (see
        :func:`match_labels`). When given, links are compared on matched objects only:
        predicted links are translated to true labels and those with an unmatched end are
        left out, as are true links with an end that no predicted object matches.
        Without it the predicted and true labels name the same objects.

    Returns
    -------
    LinkScores

    Examples
    --------
    >>> true = {((0, 1), (1, 1)), ((1, 1), (2, 1))}
    >>> link_scores({((0, 1), (1, 1)), ((1, 1), (2, 2))}, true)
    LinkScores(tp=1, fp=1, fn=1, precision=0.5, recall=0.5, f1=0.5)
    >>> matches = {(0, 7): 1, (1, 8): 1, (2, 9): 1}
    >>> link_scores({((0, 7), (1, 8)), ((1, 8), (2, 9))}, true, matches=matches).f1
    1.0
    """
    p, tr = set(pred), set(true)
    if matches is not None:
        seen = {(t, lab) for (t, _), lab in matches.items()}
        p = {((a[0], matches[a]), (b[0], matches[b])) for a, b in p
             if a in matches and b in matches}
        tr = {(a, b) for a, b in tr if a in seen and b in seen}
    tp = len(p & tr)
    fp, fn = len(p) - tp, len(tr) - tp
    if not p and not tr:
        return LinkScores(0, 0, 0, 1.0, 1.0, 1.0)
    precision = tp / len(p) if p else 0.0
    recall = tp / len(tr) if tr else 0.0
    return LinkScores(tp, fp, fn, precision, recall, 2 * tp / (2 * tp + fp + fn))


def match_labels(true: np.ndarray, pred: np.ndarray, *,
                 iou_threshold: float = 0.5) -> dict[int, int]:
    """Match the objects of two label images of one timepoint by overlap.

    Parameters
    ----------
    true, pred : numpy.ndarray
        Label images of the same shape, 0 = background.
    iou_threshold : float
        Smallest intersection over union of a match, at least 0.5 (then each object
        matches at most one other).

    Returns
    -------
    dict
        Predicted label to the true label it matches.

    Examples
    --------
    >>> import numpy as np
    >>> true = np.array([[1, 1, 0, 2, 2]])
    >>> pred = np.array([[5, 5, 0, 0, 3]])
    >>> match_labels(true, pred)
    {5: 1}
    """
    if not 0.5 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0.5, 1], got {iou_threshold!r}")
    if np.shape(true) != np.shape(pred):
        raise ValueError(f"true and pred differ in shape: {np.shape(true)} vs {np.shape(pred)}")
    o = label_overlaps(true, pred)
    iou = o.iou()
    ok = iou > iou_threshold if iou_threshold == 0.5 else iou >= iou_threshold
    return {int(o.ids_b[j]): int(o.ids_a[i]) for i, j in zip(o.ia[ok], o.ib[ok], strict=True)}

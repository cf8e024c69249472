"""Links of tracked tables and label stacks, scored against ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd

from structfree_dask.cells.plate_track import cell_radius
from structfree_dask.cells.track_scores import (
    link_scores,
    match_labels,
    persistent_links,
    track_links,
)
from structfree_dask.cells.tracking import track_cells


def test_the_true_links_of_a_simulated_field_score_one(field):
    labels, table = field
    tracked = track_cells(table, max_distance=cell_radius(table))
    links = track_links(tracked)
    assert links.links and link_scores(links.links, links.links).f1 == 1.0
    # the simulator's IDs persist while a cell lives: its own links are the truth
    truth = persistent_links(labels)
    assert link_scores(links.links, truth).f1 > 0.95


def test_division_links_of_a_hand_made_table():
    table = pd.DataFrame({"t": [0, 1, 2, 2], "label": [1, 1, 5, 6], "track_id": [1, 1, 2, 3],
                          "parent_track_id": [-1, -1, 1, 1]})
    links = track_links(table)
    assert links.links == {((0, 1), (1, 1))}
    assert links.divisions == {((1, 1), (2, 5)), ((1, 1), (2, 6))}
    untracked = table.assign(track_id=-1)
    assert track_links(untracked) == (set(), set())


def test_link_scores_on_matched_objects():
    true = np.array([[[1, 1, 0, 2, 2]], [[1, 1, 0, 2, 2]]])
    pred = np.array([[[4, 4, 0, 0, 6]], [[7, 7, 0, 9, 9]]])
    matches = {(t, p): tr for t in range(2) for p, tr in match_labels(true[t], pred[t]).items()}
    assert matches == {(0, 4): 1, (1, 7): 1, (1, 9): 2}
    scores = link_scores({((0, 4), (1, 7)), ((0, 6), (1, 9))}, persistent_links(true),
                         matches=matches)
    assert (scores.tp, scores.fp, scores.fn, scores.f1) == (1, 0, 0, 1.0)
    assert link_scores(set(), set()).f1 == 1.0
    assert link_scores({((0, 1), (1, 1))}, set()).precision == 0.0

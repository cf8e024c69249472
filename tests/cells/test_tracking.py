"""Tracks with divisions from laptrack: simulated ground truth, hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from structfree_dask.cells import tracking
from structfree_dask.cells.columns import SHAPE_COLUMNS, TRACK_COLUMNS
from structfree_dask.cells.track_scores import link_scores, persistent_links, track_links
from structfree_dask.cells.tracking import (
    POSITION_COLUMNS,
    median_step,
    relabel_by_track,
    track_cells,
)


def cell_radius(table: pd.DataFrame) -> float:
    return float(np.sqrt(table["area_px"].median() / np.pi))


def rows(*cells: tuple[int, int, float, float]) -> pd.DataFrame:
    """A table from (t, label, y, x) tuples."""
    return pd.DataFrame(cells, columns=["t", "label", *POSITION_COLUMNS])


def division_table() -> pd.DataFrame:
    """Cell 1 moves right and divides into 2 and 3 at t = 3; cell 9 stays far away."""
    return rows(
        (0, 1, 20.0, 20.0), (1, 1, 20.0, 22.0), (2, 1, 20.0, 24.0),
        (3, 2, 15.0, 24.0), (3, 3, 25.0, 24.0), (4, 2, 14.0, 25.0), (4, 3, 26.0, 25.0),
        (0, 9, 80.0, 80.0), (1, 9, 80.0, 81.0), (2, 9, 81.0, 81.0), (3, 9, 81.0, 82.0),
        (4, 9, 82.0, 82.0),
    )


def test_column_names_are_the_tables():
    assert set(POSITION_COLUMNS) <= set(SHAPE_COLUMNS)


# --------------------------------------------------------------------------------------------
# simulated ground truth


def test_tracks_reproduce_the_true_links(field):
    labels, table = field
    tracked = track_cells(table, max_distance=cell_radius(table))
    scores = link_scores(track_links(tracked).links, persistent_links(labels))
    assert scores.f1 >= 0.97, scores  # measured 0.982 (CL1, 160 px, 10 timepoints, seed 0)
    assert scores.tp > 300


def test_tracking_does_not_depend_on_row_order(field):
    _, table = field
    r = cell_radius(table)
    tracked = track_cells(table, max_distance=r)
    shuffled = table.sample(frac=1.0, random_state=3)
    again = track_cells(shuffled, max_distance=r)
    assert list(again.index) == list(shuffled.index)  # same rows, same order
    pd.testing.assert_frame_equal(again.loc[tracked.index], tracked)


def test_track_ids_follow_first_appearance(field):
    _, table = field
    tracked = track_cells(table, max_distance=cell_radius(table))
    assert tracked["track_id"].dtype == np.int64 and tracked["parent_track_id"].dtype == np.int64
    assert (tracked["track_id"] >= 1).all()
    first = tracked.sort_values(["t", "label"]).drop_duplicates("track_id")
    assert first["track_id"].tolist() == list(range(1, len(first) + 1))
    # one row per track and timepoint; parents are earlier tracks
    assert not tracked.duplicated(["track_id", "t"]).any()
    parents = tracked.loc[tracked["parent_track_id"] >= 1]
    assert (parents["parent_track_id"] < parents["track_id"]).all()


def test_appending_timepoints_keeps_the_ids(field):
    _, table = field
    r = cell_radius(table)
    whole = track_cells(table, max_distance=r)
    done = track_cells(table[table["t"] <= 2], max_distance=r)
    for new in (table[table["t"] == 3], table[table["t"] == 4], table[table["t"] >= 5]):
        more = track_cells(new, max_distance=r, previous=done)
        assert list(more.index) == list(new.index)
        assert more["track_id"].min() >= 1
        done = pd.concat([done, more])
    earlier = whole["t"] <= 2
    pd.testing.assert_frame_equal(done.loc[whole.index[earlier]], whole[earlier])
    # the tracker's decisions agree here, so the results are the same
    pd.testing.assert_frame_equal(done.loc[whole.index], whole)


# --------------------------------------------------------------------------------------------
# hand-made tables


def test_a_division_starts_two_tracks():
    tracked = track_cells(division_table(), max_distance=8.0)
    key = zip(tracked["t"], tracked["label"], strict=True)
    ids = dict(zip(key, zip(tracked["track_id"], tracked["parent_track_id"], strict=True),
                   strict=True))
    assert ids[(0, 1)] == ids[(2, 1)] == (1, -1)
    assert ids[(0, 9)] == ids[(4, 9)] == (2, -1)
    assert ids[(3, 2)] == ids[(4, 2)] == (3, 1)
    assert ids[(3, 3)] == ids[(4, 3)] == (4, 1)
    links = track_links(tracked)
    true_divisions = {((2, 1), (3, 2)), ((2, 1), (3, 3))}
    assert links.divisions == true_divisions
    assert link_scores(links.divisions, true_divisions).f1 == 1.0
    assert len(links.links) == 2 + 4 + 1 + 1


def test_division_distance_and_no_divisions():
    table = division_table()
    far = track_cells(table, max_distance=8.0, division_distance=3.0)
    assert not track_links(far).divisions  # daughters are 5 px from the mother
    off = track_cells(table, max_distance=8.0, division_distance=0)
    assert not track_links(off).divisions
    assert (off["parent_track_id"] == -1).all()


def test_a_cell_entering_beside_another_is_not_a_division():
    # cell 1 stays put; at t = 2 cell 5 comes into view 7 px beside it (within the
    # division distance of 1.5 x 8 px) but nothing lies on the other side of cell 1
    table = rows((0, 1, 20.0, 20.0), (1, 1, 20.0, 20.5), (2, 1, 20.0, 21.0),
                 (2, 5, 20.0, 28.0), (3, 1, 20.0, 21.5), (3, 5, 20.0, 28.5))
    tracked = track_cells(table, max_distance=8.0)
    assert not track_links(tracked).divisions
    by_label = tracked.groupby("label")["track_id"].unique()
    assert len(by_label[1]) == 1 and len(by_label[5]) == 1  # cell 1 keeps its track
    assert (tracked["parent_track_id"] == -1).all()
    # the same newcomer with a sibling on the other side is a division
    split = rows((0, 1, 20.0, 20.0), (1, 1, 20.0, 20.5), (2, 6, 20.0, 14.0),
                 (2, 5, 20.0, 28.0), (3, 6, 20.0, 13.5), (3, 5, 20.0, 28.5))
    assert track_links(track_cells(split, max_distance=8.0)).divisions == {
        ((1, 1), (2, 5)), ((1, 1), (2, 6))}


def test_large_cells_may_move_their_radius():
    # a cell of radius 20 px whose centroid moves 12 px a step, beside the limit of 8 px
    big = np.pi * 20.0**2
    table = rows((0, 1, 50.0, 50.0), (1, 1, 50.0, 62.0), (2, 1, 50.0, 74.0)).assign(
        area_px=big)
    assert track_cells(table, max_distance=8.0)["track_id"].tolist() == [1, 1, 1]
    # without areas (or for small cells) the limit is max_distance
    assert track_cells(table.drop(columns="area_px"),
                       max_distance=8.0)["track_id"].tolist() == [1, 2, 3]
    small = table.assign(area_px=np.pi * 4.0**2)
    assert track_cells(small, max_distance=8.0)["track_id"].tolist() == [1, 2, 3]
    # the limits are for cells of the typical radius: a cell of that radius keeps them,
    # one of twice that radius may move twice as far
    assert track_cells(table, max_distance=8.0, radius=20.0)["track_id"].tolist() == [1, 2, 3]
    assert track_cells(table, max_distance=8.0, radius=10.0)["track_id"].tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="radius must be a positive number of pixels"):
        track_cells(table, max_distance=8.0, radius=0)


def test_median_step():
    assert median_step(rows((0, 1, 0.0, 0.0))) == 0.0
    table = rows((0, 1, 0.0, 0.0), (0, 2, 40.0, 0.0), (1, 1, 0.0, 6.0), (1, 2, 40.0, 2.0),
                 (2, 1, 0.0, 12.0), (2, 2, 40.0, 4.0), (2, 3, 90.0, 90.0))
    assert median_step(table) == pytest.approx(4.0)  # steps 6, 2, 6, 2: a newcomer ignored


def test_a_division_across_the_append_boundary():
    table = division_table()
    whole = track_cells(table, max_distance=8.0)
    for last in range(4):  # the mother's last timepoint is 2, the daughters' first 3
        done = track_cells(table[table["t"] <= last], max_distance=8.0)
        more = track_cells(table[table["t"] > last], max_distance=8.0, previous=done)
        pd.testing.assert_frame_equal(pd.concat([done, more]).loc[whole.index], whole)


def test_gaps_are_closed_up_to_max_gap():
    table = rows((0, 1, 10.0, 10.0), (1, 1, 10.0, 11.0), (3, 4, 10.0, 12.0), (4, 4, 10.0, 13.0),
                 (0, 2, 50.0, 50.0), (1, 2, 50.0, 50.0), (2, 2, 50.0, 50.0))
    tracked = track_cells(table, max_distance=5.0)
    assert tracked["track_id"].tolist() == [1, 1, 1, 1, 2, 2, 2]  # t = 2 has no cell 1
    assert track_cells(table, max_distance=5.0, max_gap=0)["track_id"].tolist() == [
        1, 1, 3, 3, 2, 2, 2]
    # across an append, from a track that ended one timepoint before the last one
    done = track_cells(table[table["t"] <= 2], max_distance=5.0)
    more = track_cells(table[table["t"] > 2], max_distance=5.0, previous=done)
    assert more["track_id"].tolist() == [1, 1]
    # a cell that reappears after too long a gap starts a new track (above earlier IDs)
    late = track_cells(rows((6, 7, 10.0, 13.0)), max_distance=5.0,
                       previous=pd.concat([done, more]).query("t <= 3"))
    assert late["track_id"].tolist() == [3]


def test_empty_inputs():
    cols = ["t", "label", *POSITION_COLUMNS]
    empty = pd.DataFrame({c: pd.Series(dtype="int64" if c in ("t", "label") else "float64")
                          for c in cols})
    out = track_cells(empty, max_distance=5.0)
    assert out.empty and set(TRACK_COLUMNS) <= set(out.columns)
    assert out["track_id"].dtype == np.int64
    # a field without cells at some timepoints; one appended without cells
    table = rows((0, 1, 10.0, 10.0), (2, 1, 10.0, 11.0), (5, 3, 40.0, 40.0))
    tracked = track_cells(table, max_distance=5.0)
    assert tracked["track_id"].tolist() == [1, 1, 2]
    assert track_cells(empty, max_distance=5.0, previous=tracked).empty
    assert track_cells(table, max_distance=5.0, previous=out).equals(tracked)
    # no previous cells at all, and rows that cannot be placed
    no_cells = tracked.iloc[:0]
    assert track_cells(table, max_distance=5.0, previous=no_cells).equals(tracked)
    nan = rows((0, 1, np.nan, 10.0), (1, 1, 10.0, 10.0))
    assert track_cells(nan, max_distance=5.0)["track_id"].tolist() == [-1, 1]
    assert track_links(out) == (set(), set())


def test_bad_inputs_are_refused():
    table = division_table()
    with pytest.raises(ValueError, match="max_distance"):
        track_cells(table, max_distance=0)
    with pytest.raises(ValueError, match="max_gap"):
        track_cells(table, max_distance=5.0, max_gap=-1)
    with pytest.raises(ValueError, match="lacks"):
        track_cells(table.drop(columns="centroid_x"), max_distance=5.0)
    with pytest.raises(ValueError, match="more than one row"):
        track_cells(pd.concat([table, table.iloc[:1]]), max_distance=5.0)
    done = track_cells(table, max_distance=5.0)
    with pytest.raises(ValueError, match="not after"):
        track_cells(table, max_distance=5.0, previous=done)
    with pytest.raises(ValueError, match="more than one row at a timepoint"):
        track_cells(rows((9, 1, 1.0, 1.0)), max_distance=5.0, previous=done.assign(track_id=1))


# --------------------------------------------------------------------------------------------
# label images and scores


def test_relabel_by_track():
    plane = np.array([[0, 3, 3], [5, 5, 8]], dtype=np.uint32)
    at_t = pd.DataFrame({"label": [5, 3, 8], "track_id": [11, 2, -1]})
    out = relabel_by_track(plane, at_t)
    assert out.dtype == np.uint32 and out.tolist() == [[0, 2, 2], [11, 11, 0]]
    assert not relabel_by_track(plane, at_t.iloc[:0]).any()


def test_a_tracked_label_stack_keeps_ids_over_time(field):
    labels, table = field
    tracked = track_cells(table, max_distance=cell_radius(table))
    stack = np.stack([relabel_by_track(labels[t], tracked[tracked["t"] == t])
                      for t in range(len(labels))])
    assert np.array_equal(stack > 0, labels > 0)
    key = zip(tracked["t"], tracked["label"], strict=True)
    track_of = dict(zip(key, tracked["track_id"], strict=True))
    expected = {((a[0], track_of[a]), (b[0], track_of[b]))
                for a, b in track_links(tracked).links}
    assert persistent_links(stack) == expected


def test_overlap_prefers_the_cell_that_still_covers_it():
    # two candidates about as far: the nearer wins on distance alone, the one whose
    # registered mask still covers the cell wins with the overlaps
    table = rows((0, 1, 10.0, 10.0), (1, 2, 10.0, 16.0), (1, 3, 10.0, 4.5))
    plain = track_cells(table, max_distance=8.0, division_distance=0)
    assert track_links(plain).links == {((0, 1), (1, 3))}
    with_overlap = track_cells(table, max_distance=8.0, division_distance=0,
                               overlaps={(0, 1, 1, 2): 0.6})
    assert track_links(with_overlap).links == {((0, 1), (1, 2))}
    # an overlap the distance cannot reach links nothing
    far = rows((0, 1, 10.0, 10.0), (1, 2, 10.0, 30.0))
    assert track_cells(far, max_distance=8.0, overlaps={(0, 1, 1, 2): 1.0})[
        "track_id"].tolist() == [1, 2]


def test_a_vanishing_fragment_does_not_take_a_daughter(monkeypatch):
    # a mother (area 1000 px) divides into two cells of 500 px on either side of her; a
    # fragment of 20 px beside her (a cell almost hidden, or leaving the field) vanishes
    # at the same time. On distance alone the fragment goes on as the right daughter
    # (cheaper than ending its track and starting hers); the size change prevents it
    table = rows((0, 1, 50.0, 50.0), (0, 2, 50.0, 75.0),
                 (1, 3, 50.0, 40.0), (1, 4, 50.0, 62.0)).assign(
        area_px=[1000.0, 20.0, 500.0, 500.0])
    division = {((0, 1), (1, 3)), ((0, 1), (1, 4))}
    tracked = track_cells(table, max_distance=20.0, radius=15.0)
    assert track_links(tracked).divisions == division
    assert not track_links(tracked).links
    monkeypatch.setattr(tracking, "SIZE_CHANGE", float("inf"))
    by_distance = track_links(track_cells(table, max_distance=20.0, radius=15.0))
    assert by_distance.links == {((0, 1), (1, 3)), ((0, 2), (1, 4))}
    assert not by_distance.divisions

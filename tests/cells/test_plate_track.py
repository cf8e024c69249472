"""Tracking a measured plate on a real multi-process cluster."""

import numpy as np
import pandas as pd
import pytest

from structfree_dask import simulate_plate
from structfree_dask.cells.plate_measure import measure_plate
from structfree_dask.cells.plate_track import track_plate, tracked_name, tracks_location
from structfree_dask.cells.track_scores import link_scores, persistent_links, track_links
from structfree_dask.cells.tracking import TRACKER_VERSION
from structfree_dask.io import (
    open_labels,
    open_plate,
    read_feature_table,
    read_plate_dataset,
    table_attrs,
    update_table_attrs,
)

#: The table attribute that holds the tracking settings.
TRACKING = "structfree_dask_tracking"


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    path = tmp_path_factory.mktemp("tracks") / "p.zarr"
    simulate_plate(path, cell_line="CL1", rows=1, cols=1, timepoints=8, size=160, seed=0)
    return path


def test_tracks_appended_timepoints_keep_their_ids(plate, cluster_client):
    image = open_plate(plate).field("A/1/0")
    measure_plate(str(plate), labels="gt_cyto", nuclei="gt_nuclei", table="cells",
                  client=cluster_client, timepoints=range(5))
    first = track_plate(str(plate), table="cells", tracked_labels=True, client=cluster_client)
    assert first.ok and first.tracks["A/1/0"][2] == [0, 1, 2, 3, 4]
    early = read_feature_table(image, "cells")
    # a nightly run: the plate's last timepoints are measured and tracked afterwards
    measure_plate(str(plate), labels="gt_cyto", nuclei="gt_nuclei", table="cells",
                  client=cluster_client)
    second = track_plate(str(plate), table="cells", tracked_labels=True, client=cluster_client)
    assert second.tracks["A/1/0"][2] == [5, 6, 7]
    table = read_feature_table(image, "cells")
    again = table[table["t"] < 5].reset_index(drop=True)
    pd.testing.assert_frame_equal(again, early)  # earlier track IDs did not change
    assert (table["track_id"] >= 1).all()
    # the simulator keeps a cell's ID while it lives: tracks reproduce its links
    gt = open_labels(image, "gt_cyto").read()[:, 0]
    scores = link_scores(track_links(table).links, persistent_links(gt))
    assert scores.f1 >= 0.95, scores
    # the plate-level dataset carries the tracks too
    plate_rows = read_plate_dataset(str(plate), "cells")
    assert plate_rows["track_id"].tolist() == table["track_id"].tolist()
    # the tracked label image: a cell keeps its track ID over time
    tracked = open_labels(image, tracked_name("gt_cyto")).read()[:, 0]
    for t in (0, 7):
        rows = table[table["t"] == t]
        for label, track in zip(rows["label"], rows["track_id"], strict=True):
            assert np.all(tracked[t][gt[t] == label] == track)
    # the track graph as geff
    geff = pytest.importorskip("geff")
    graph, _ = geff.read(tracks_location(image, "cells"))
    assert graph.number_of_nodes() == len(table)


def test_track_bad_input(plate, cluster_client):
    with pytest.raises(KeyError, match="no table 'nope'"):
        track_plate(str(plate), table="nope", client=cluster_client)
    with pytest.raises(ValueError, match="max_distance"):
        track_plate(str(plate), table="cells", max_distance=-1, client=cluster_client)


def test_a_table_tracked_by_another_tracker_version_is_tracked_again_only_on_request(
        plate, cluster_client):
    image = open_plate(plate).field("A/1/0")
    record = table_attrs(image, "cells")[TRACKING]
    assert record["tracker"] == TRACKER_VERSION
    older = {k: v for k, v in record.items() if k != "tracker"}  # as an earlier version wrote
    update_table_attrs(image, "cells", **{TRACKING: older})
    before = read_feature_table(image, "cells")
    with pytest.raises(FileExistsError, match="tracked with other settings"):
        track_plate(str(plate), table="cells", client=cluster_client)
    pd.testing.assert_frame_equal(read_feature_table(image, "cells"), before)
    again = track_plate(str(plate), table="cells", overwrite=True, client=cluster_client)
    assert again.ok and again.tracks["A/1/0"][2] == list(range(8))  # every timepoint
    assert table_attrs(image, "cells")[TRACKING]["tracker"] == TRACKER_VERSION


def test_a_checked_tracking_plan_is_run_only_for_its_request(tmp_path, cluster_client):
    from structfree_dask.cells.plate_track import check_tracks

    path = tmp_path / "p.zarr"
    simulate_plate(path, cell_line="CL2", timepoints=3, size=64, seed=2)
    measure_plate(str(path), labels="gt_cyto", client=cluster_client)
    plan = check_tracks(str(path), "gt_cyto_features", max_distance=9)
    with pytest.raises(ValueError, match="checked for another request"):
        track_plate(str(path), table="gt_cyto_features", max_distance=10, plan=plan,
                    client=cluster_client)
    result = track_plate(str(path), table="gt_cyto_features", max_distance=9.0, plan=plan,
                         client=cluster_client)
    assert result.ok and result.done == [("A/1/0", None)]
    table = read_feature_table(open_plate(path).field("A/1/0"), "gt_cyto_features")
    assert (table["track_id"] >= 0).all()


def test_tracking_follows_cells_through_stage_jitter(tmp_path, cluster_client):
    """The drift is measured from the masks (the simulator's truth) and tracks hold through it."""
    from structfree_dask.cells.plate_track import DRIFT_ATTRIBUTE
    from structfree_dask.io import table_attrs

    path = tmp_path / "p.zarr"
    simulate_plate(path, cell_line="CL1", timepoints=6, size=192, seed=4, stage_jitter_px=15)
    measure_plate(str(path), labels="gt_cyto", client=cluster_client)
    result = track_plate(str(path), table="gt_cyto_features", client=cluster_client)
    assert result.ok and result.unregistered() == [] and result.warnings() == []
    image = open_plate(path).field("A/1/0")
    truth = read_feature_table(image, "gt_truth").groupby("t")[["stage_dy", "stage_dx"]].first()
    steps = table_attrs(image, "gt_cyto_features")[DRIFT_ATTRIBUTE]
    for t in range(1, 6):  # the content moves opposite to the stage, step by step
        expected = -(truth.loc[t] - truth.loc[t - 1]).to_numpy()
        assert steps[str(t)][:2] == pytest.approx(expected, abs=1.0), t
        assert steps[str(t)][2] is True
    # a cell keeps its track from one timepoint to the next (its ID persists in the truth)
    table = read_feature_table(image, "gt_cyto_features")

    def kept(tracked):
        by = tracked.set_index(["t", "label"])["track_id"]
        return [by[(t, lab)] == by[(t + 1, lab)] for t, lab in by.index
                if (t + 1, lab) in by.index]

    assert len(kept(table)) > 20 and np.mean(kept(table)) >= 0.95
    from structfree_dask.cells.plate_track import cell_radius
    from structfree_dask.cells.tracking import track_cells

    raw = track_cells(table.drop(columns=["track_id", "parent_track_id"]),
                      max_distance=cell_radius(table))  # the raw centroids: drift as motion
    assert np.mean(kept(raw)) < 0.8


def test_the_default_limit_follows_fast_cells():
    from structfree_dask.cells.plate_track import cell_radius, motion_limit
    from structfree_dask.cells.tracking import track_cells

    # a 5 x 5 lattice of cells of radius 10 px, 60 px apart, all moving 15 px a step
    radius = 10.0
    rows = [(t, 1 + i * 5 + j, 30.0 + 60 * i, 30.0 + 60 * j + 15 * t, np.pi * radius**2)
            for t in range(4) for i in range(5) for j in range(5)]
    table = pd.DataFrame(rows, columns=["t", "label", "centroid_y", "centroid_x", "area_px"])
    assert cell_radius(table) == pytest.approx(radius)
    limit = motion_limit(table)
    assert limit == pytest.approx(2.5 * 15.0)  # from the motion, not the radius
    by_radius = track_cells(table, max_distance=cell_radius(table))
    by_motion = track_cells(table, max_distance=limit)
    assert by_radius["track_id"].nunique() == 100  # every step lost
    assert by_motion["track_id"].nunique() == 25  # one track per cell
    # slow cells keep the radius
    slow = table.assign(centroid_x=table["centroid_x"] - 14 * table["t"])
    assert motion_limit(slow) == pytest.approx(radius)


def test_an_out_of_focus_timepoint_does_not_lose_the_drift(tmp_path, cluster_client):
    """A timepoint whose masks are blobs unrelated to the cells (out of focus) is not
    registered, is said, and the next one is registered against the last good one: tracks
    close the gap through it."""
    from scipy import ndimage as ndi
    from skimage.measure import label as connected
    from skimage.transform import resize

    from structfree_dask.cells.planes import level_shape
    from structfree_dask.cells.plate_track import DRIFT_ATTRIBUTE
    from structfree_dask.io import table_attrs, write_label_region

    path = tmp_path / "p.zarr"
    simulate_plate(path, cell_line="CL1", timepoints=6, size=192, seed=4, stage_jitter_px=15)
    image = open_plate(path).field("A/1/0")
    label = open_labels(image, "gt_cyto")
    noise = ndi.gaussian_filter(np.random.default_rng(0).random((192, 192)), 6)
    blobs = connected(noise > np.median(noise)).astype(np.uint32)
    for level in range(len(label.shapes)):
        ny, nx = level_shape(label, level)
        plane = resize(blobs, (ny, nx), order=0, preserve_range=True, anti_aliasing=False)
        write_label_region(label, {"t": slice(3, 4)}, plane.astype(np.uint32), level=level)
    measure_plate(str(path), labels="gt_cyto", client=cluster_client)
    result = track_plate(str(path), table="gt_cyto_features", client=cluster_client)
    assert result.ok and result.unregistered() == [("A/1/0", 3)]
    assert any("drift" in line and "A/1/0" in line for line in result.warnings())
    truth = read_feature_table(image, "gt_truth").groupby("t")[["stage_dy", "stage_dx"]].first()
    steps = table_attrs(image, "gt_cyto_features")[DRIFT_ATTRIBUTE]
    assert steps["3"] == [0.0, 0.0, False]
    across = -(truth.loc[4] - truth.loc[2]).to_numpy()  # t = 4 registered against t = 2
    assert steps["4"][:2] == pytest.approx(across, abs=1.0) and steps["4"][2] is True
    table = read_feature_table(image, "gt_cyto_features").set_index(["t", "label"])
    ids = table["track_id"]
    closed = [ids[(2, lab)] == ids[(4, lab)] for t, lab in ids.index
              if t == 2 and (4, lab) in ids.index]
    assert len(closed) > 5 and np.mean(closed) >= 0.9

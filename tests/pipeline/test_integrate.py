"""Flow integration with cellpose's dynamics, and cell ownership (pipeline.integrate)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from cellpose import dynamics, utils
from skimage.segmentation import relabel_sequential

from structfree_dask.config import (
    DEFAULT_CELLPROB_THRESHOLD,
    DEFAULT_FLOW_THRESHOLD,
    DEFAULT_MIN_SIZE,
    FUSION_BASELINES,
    SegmentationConfig,
)
from structfree_dask.evaluation.metrics import match_scores
from structfree_dask.pipeline.flows import average_flows
from structfree_dask.pipeline.fusion import fuse_masks
from structfree_dask.pipeline.integrate import (
    FLOW_STEPS,
    MAX_SIZE_FRACTION,
    Dynamics,
    cut_cells,
    dynamics_for,
    integrate_flows,
    owned_cells,
)


def flows_of(masks: np.ndarray) -> np.ndarray:
    """(3, y, x) flows a perfect network would give for ``masks``.

    cellpose's own ``masks_to_flows`` (unit vectors; the network's flows are 5 times
    larger) and a cell probability logit of +4 inside cells, -4 outside.
    """
    dp = 5 * dynamics.masks_to_flows(masks.astype(np.int64))
    prob = np.where(masks > 0, 4.0, -4.0)
    return np.concatenate([dp, prob[None]]).astype(np.float32)


@pytest.fixture(scope="module")
def kc_masks(real_dev) -> np.ndarray:
    """160 x 160 px of a real Kc167 annotation, IDs 1..n (real cell shapes)."""
    import imageio.v3 as iio

    masks = iio.imread(real_dev / "Kc167" / "095_masks.png")[:160, :160]
    return relabel_sequential(masks.astype(np.int64))[0]


@pytest.fixture(scope="module")
def small_masks(kc_masks) -> np.ndarray:
    """96 x 96 px of the annotation (for tests that integrate several times)."""
    return relabel_sequential(kc_masks[:96, :96])[0]


@pytest.fixture(scope="module")
def channel_stack(small_masks) -> np.ndarray:
    """(3, 3, y, x) flows of three channels: two see the cells, one sees them shifted."""
    shifted = flows_of(np.roll(small_masks, 3, axis=0))
    return np.stack([flows_of(small_masks), shifted, flows_of(small_masks)])


def discs(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros(shape, np.int64)
    for i, (cy, cx) in enumerate(centres, start=1):
        out[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = i
    return out


# ---------------------------------------------------------------------------- integrate_flows


def test_integrating_the_flows_of_masks_gives_the_masks_back(kc_masks):
    fl = flows_of(kc_masks)
    labels = integrate_flows(fl[:2], fl[2])
    assert labels.shape == kc_masks.shape and labels.dtype == np.uint32
    ids = np.unique(labels)
    np.testing.assert_array_equal(ids, np.arange(ids.size))  # consecutive from 1
    s = match_scores(kc_masks, labels.astype(np.int64), iou_threshold=0.9)
    assert s.n_true >= 10 and s.tp == s.n_true == s.n_pred


def test_integrate_flows_equals_cellposes_compute_masks_and_fill_holes(kc_masks):
    fl = flows_of(np.roll(kc_masks, 7, axis=1))
    fl[:2] += np.random.default_rng(0).normal(0, 0.3, fl[:2].shape).astype(np.float32)
    for kwargs in ({}, {"niter": 80, "cellprob_threshold": 1.0, "flow_threshold": 0.8,
                        "min_size": 200}):
        ours = integrate_flows(fl[:2], fl[2], **kwargs)
        ref = dynamics.compute_masks(
            fl[:2], fl[2], niter=kwargs.get("niter", FLOW_STEPS),
            cellprob_threshold=kwargs.get("cellprob_threshold", DEFAULT_CELLPROB_THRESHOLD),
            flow_threshold=kwargs.get("flow_threshold", DEFAULT_FLOW_THRESHOLD),
            max_size_fraction=MAX_SIZE_FRACTION)
        ref = utils.fill_holes_and_remove_small_masks(
            ref, min_size=kwargs.get("min_size", DEFAULT_MIN_SIZE))
        np.testing.assert_array_equal(ours, ref)
        assert ours.max() > 0


def test_integrate_flows_min_size_removes_small_cells():
    masks = np.zeros((80, 80), np.int64)
    masks[5:25, 5:25] = 1  # 400 px
    masks[40:46, 40:46] = 2  # 36 px
    fl = flows_of(masks)
    assert integrate_flows(fl[:2], fl[2], min_size=15).max() == 2
    kept = integrate_flows(fl[:2], fl[2], min_size=100)
    assert kept.max() == 1 and (kept > 0).sum() == 400


def test_integrate_flows_largest_cell_is_a_fraction_of_the_field_not_of_the_window():
    """A cell over 40 % of a window stays when the window is a small part of its field."""
    masks = discs((64, 64), [(32, 32)], 23)  # ~1660 px: 40.5 % of the window
    assert (masks > 0).mean() > MAX_SIZE_FRACTION
    fl = flows_of(masks)
    assert integrate_flows(fl[:2], fl[2]).max() == 0  # the window as the field: removed
    field = integrate_flows(fl[:2], fl[2], max_size_px=MAX_SIZE_FRACTION * 512 * 512)
    assert field.max() == 1
    assert match_scores(masks, field.astype(np.int64)).mean_matched_jaccard > 0.95
    assert integrate_flows(fl[:2], fl[2], max_size_px=1000.0).max() == 0


def test_integrate_flows_nothing_above_the_threshold_gives_no_cells():
    zeros = np.zeros((2, 48, 48), np.float32)
    labels = integrate_flows(zeros, np.full((48, 48), -5.0, np.float32))
    assert labels.dtype == np.uint32 and labels.shape == (48, 48) and not labels.any()


@pytest.mark.parametrize(("dp_shape", "prob_shape"), [((3, 20, 20), (20, 20)),
                                                      ((2, 20, 20), (20, 21)),
                                                      ((2, 20, 20), (1, 20, 20))])
def test_integrate_flows_refuses_mismatched_shapes(dp_shape, prob_shape):
    expected = f"dP must be (2, h, w) and cellprob (h, w); got {dp_shape}, {prob_shape}"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        integrate_flows(np.zeros(dp_shape, np.float32), np.zeros(prob_shape, np.float32))


# ---------------------------------------------------------------------------- the rule


def test_dynamics_for_steps_largest_cell_and_settings():
    d = dynamics_for((100, 200), 2.0)
    assert d == Dynamics(niter=100, cellprob_threshold=DEFAULT_CELLPROB_THRESHOLD,
                         flow_threshold=DEFAULT_FLOW_THRESHOLD, min_size=DEFAULT_MIN_SIZE,
                         max_size_px=MAX_SIZE_FRACTION * 100 * 200, fusion="fa")
    assert dynamics_for((10, 10), 1.0).niter == FLOW_STEPS
    assert dynamics_for((10, 10), 0.3).niter == 667  # round(200 / 0.3)
    assert dynamics_for((10, 10), 3.0).niter == 67
    cfg = SegmentationConfig(cellprob_threshold=-1.5, flow_threshold=0.9, min_size=40,
                             fusion="staple")
    d = dynamics_for((512, 256), 1.25, cfg)
    assert (d.niter, d.cellprob_threshold, d.flow_threshold, d.min_size, d.fusion) == (
        160, -1.5, 0.9, 40, "staple")
    assert d.max_size_px == pytest.approx(0.4 * 512 * 256)


def test_dynamics_labels_of_one_flow_stack_is_integrate_flows(small_masks):
    fl = flows_of(small_masks)
    d = dynamics_for(small_masks.shape, 1.5, SegmentationConfig(min_size=30))
    labels = d.labels(fl)
    np.testing.assert_array_equal(
        labels, integrate_flows(fl[:2], fl[2], niter=133, min_size=30,
                                max_size_px=0.4 * small_masks.size))
    assert labels.max() >= 5


def test_dynamics_labels_flow_averages_a_per_channel_stack(channel_stack):
    d = dynamics_for(channel_stack.shape[-2:], 1.0)
    fa = d.labels(channel_stack)
    np.testing.assert_array_equal(fa, d.labels(average_flows(channel_stack)))
    assert fa.dtype == np.uint32 and fa.max() >= 5


@pytest.fixture(scope="module")
def channel_labels(channel_stack) -> list[np.ndarray]:
    d = dynamics_for(channel_stack.shape[-2:], 1.0)
    return [d.labels(f) for f in channel_stack]


@pytest.mark.parametrize("fusion", FUSION_BASELINES)
def test_dynamics_labels_fuses_per_channel_masks_for_the_baselines(channel_stack, channel_labels,
                                                                   fusion):
    d = dynamics_for(channel_stack.shape[-2:], 1.0, SegmentationConfig(fusion=fusion))
    fused = d.labels(channel_stack)
    np.testing.assert_array_equal(
        fused, fuse_masks(channel_labels, method=fusion, min_size=d.min_size))
    assert fused.dtype == np.uint32 and fused.max() >= 5


# ---------------------------------------------------------------------------- ownership


def test_owned_cells_by_centroid():
    lab = np.zeros((10, 10), np.uint32)
    lab[0:4, 3:7] = 4  # centroid (1.5, 4.5) -> region x < 5
    lab[6:9, 5:9] = 9  # centroid (7, 6.5) -> region x >= 5
    left, n_left = owned_cells(lab, (0, 0), (0, 10, 0, 5))
    right, n_right = owned_cells(lab, (0, 0), (0, 10, 5, 10))
    assert (n_left, n_right) == (1, 1)
    assert set(np.unique(left)) == {0, 1} and (left > 0).sum() == 16
    assert (right > 0).sum() == 12
    # origin shifts the ownership test into field coordinates
    _, n = owned_cells(lab, (100, 100), (0, 10, 0, 5))
    assert n == 0
    assert cut_cells(left, (5, 0), (100, 100)) == 1  # touches the top edge inside the field
    assert cut_cells(left, (0, 0), (10, 10)) == 0


def test_owned_cells_partition_a_window_among_regions(kc_masks):
    """Each cell is owned by exactly one region of a grid; renumbered 1..n there."""
    lab = kc_masks.astype(np.uint32)
    origin = (300, 200)
    total = 0
    covered = np.zeros(lab.shape, np.int64)
    for y0 in range(300, 460, 40):
        for x0 in range(200, 360, 64):
            kept, n = owned_cells(lab, origin, (y0, y0 + 40, x0, x0 + 64))
            assert kept.dtype == np.uint32 and kept.shape == lab.shape
            ids = np.unique(kept)
            np.testing.assert_array_equal(ids, np.arange(n + 1))
            total += n
            covered += kept > 0
            # a kept cell is a whole cell of the input
            for i in ids[1:]:
                src = np.unique(lab[kept == i])
                assert src.size == 1 and ((lab == src[0]) == (kept == i)).all()
    assert total == lab.max()
    np.testing.assert_array_equal(covered, lab > 0)


def test_owned_cells_centroid_on_the_upper_bound_belongs_to_the_next_region():
    lab = np.zeros((8, 8), np.uint32)
    lab[3:5, 0:2] = 2  # centroid y = 3.5, x = 0.5
    lab[1:3, 5:7] = 3  # centroid y = 1.5, x = 5.5
    kept, n = owned_cells(lab, (0, 0), (0, 3.5, 0, 8))
    assert n == 1 and set(np.unique(kept[lab == 3])) == {1} and not kept[lab == 2].any()
    kept, n = owned_cells(lab, (0, 0), (3.5, 8, 0, 8))
    assert n == 1 and set(np.unique(kept[lab == 2])) == {1}


def test_owned_cells_keep_the_order_of_ids_and_ignore_missing_ids():
    lab = np.zeros((6, 9), np.uint32)
    lab[0:2, 0:2] = 2
    lab[0:2, 4:6] = 40
    lab[4:6, 7:9] = 7000
    kept, n = owned_cells(lab, (0, 0), (0, 6, 0, 9))
    assert n == 3 and kept.dtype == np.uint32
    assert (kept[0, 0], kept[0, 4], kept[5, 8]) == (1, 2, 3)


def test_owned_cells_of_an_empty_window():
    kept, n = owned_cells(np.zeros((5, 7), np.int32), (0, 0), (0, 5, 0, 7))
    assert n == 0 and kept.dtype == np.uint32 and kept.shape == (5, 7) and not kept.any()


@pytest.mark.parametrize(("origin", "field", "expected"), [
    ((0, 0), (10, 12), 0),  # the window is the field: its edges are the field's
    ((5, 0), (100, 12), 3),  # top edge (cells 1, 2) and bottom edge (cell 3)
    ((0, 0), (100, 12), 1),  # only the bottom edge is inside the field: cell 3
    ((0, 4), (10, 16), 1),  # left edge (cell 1); the right edge is the field's
    ((0, 4), (10, 17), 2),  # left edge (cell 1) and right edge (cell 2)
    ((3, 3), (100, 100), 3),  # every edge: each cell touching one counts once
])
def test_cut_cells_counts_cells_on_edges_inside_the_field(origin, field, expected):
    kept = np.zeros((10, 12), np.uint32)
    kept[0:3, 0:2] = 1  # top-left corner
    kept[0:3, 10:12] = 2  # top-right corner
    kept[9, 5:7] = 3  # bottom edge
    kept[4:6, 4:6] = 4  # inside, touches no edge
    assert cut_cells(kept, origin, field) == expected


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "int32", "int64", "uint64"])
def test_owned_cells_takes_every_integer_label_dtype(dtype):
    lab = np.zeros((8, 8), dtype)
    lab[0:2, 0:2], lab[5:7, 5:7], lab[0:2, 5:7] = 9, 4, 2
    kept, n = owned_cells(lab, (0, 0), (0, 4, 0, 8))
    assert n == 2 and kept.dtype == np.uint32
    assert kept[0, 0] == 2 and kept[0, 5] == 1 and kept[5, 5] == 0  # 1..n in ID order


def test_settled_pixels_stop_and_the_masks_stay_cellposes(kc_masks):
    """The CPU path stops settled pixels early; the masks are cellpose's, bitwise."""
    from structfree_dask.pipeline import integrate

    fl = flows_of(kc_masks)
    fl[:2] += np.random.default_rng(1).normal(0, 0.3, fl[:2].shape).astype(np.float32)
    inside = fl[2] > 0
    inds = np.nonzero(inside)
    scaled = fl[:2] * inside / 5.0
    full = np.asarray(dynamics.follow_flows(scaled, inds, niter=200))
    settled = integrate._follow_settling(scaled.astype(np.float32), inds, 200)
    assert settled.shape == full.shape
    moved = np.abs(settled - full).max(axis=0)
    assert (moved > 0).any() and moved.max() < 0.01  # stopped early, inside their sink
    ref = dynamics.compute_masks(fl[:2], fl[2], niter=200, cellprob_threshold=0.0,
                                 flow_threshold=0.4, max_size_fraction=0.4)
    ours = integrate._cpu_masks(fl[:2], fl[2], niter=200, threshold=0.0,
                                flow_threshold=0.4, max_size_fraction=0.4)
    np.testing.assert_array_equal(ours, ref)
    assert ours.max() > 0

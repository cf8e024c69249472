"""Cellpose's thresholds of a selection, chosen on the validation fields (scoring.threshold).

The selection is the CW model of ``generalist_zoo`` (conftest) on cyto-reporter: the
shipped generalist's weights, which find the simulated cells, so the F1 of each
(flow, cell probability) pair differs. It is checked against Flow Averaging done by
hand: the generalist's flows on the validation field, integrated at each pair.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from structfree_dask.backbones import resolve_model
from structfree_dask.config import SegmentationConfig
from structfree_dask.evaluation.metrics import evaluate
from structfree_dask.pipeline.segment import channel_flows, flows_to_labels
from structfree_dask.zoo import load_planes, resolve
from structfree_dask.zoo.scoring.threshold import (
    CELLPROB_THRESHOLDS,
    FLOW_THRESHOLDS,
    best_thresholds,
    check_cellprob_thresholds,
    check_flow_thresholds,
    choice_key,
    choose_thresholds,
    threshold_scores,
)

pytestmark = pytest.mark.usefixtures("one_thread")

FLOWS, CELLPROBS = (0.4, 0.8), (0.0, -2.0)
GRID = [(f, c) for f in FLOWS for c in CELLPROBS]


@pytest.fixture(scope="module")
def by_hand(tiny_plate):
    """``{(flow, cellprob): scores}`` of the generalist on cyto-reporter of the val field."""
    [plane] = load_planes(tiny_plate, ["A/3/0"], [0], "gt_cyto")
    flows = channel_flows(plane.image, resolve_model(None), diameter=30.0)
    truth = plane.labels.astype(np.int64)
    return {(f, c): evaluate(truth, flows_to_labels(flows, SegmentationConfig(
        flow_threshold=f, cellprob_threshold=c)).astype(np.int64)) for f, c in GRID}


@pytest.fixture
def selected(generalist_zoo, tiny_plate):
    """The CW selection of cyto-reporter (its plate and ground truth recorded)."""
    return generalist_zoo.set_selection("CL1", "cyto", {
        "strategy": "cw", "model_ids": {0: "cw0"}, "eval_channels": [0], "val_f1": 0.5,
        "gt": "gt_cyto", "plate": str(tiny_plate), "seed": 0})


def test_threshold_lists_are_checked():
    assert check_flow_thresholds((0.8, 0, "0.4", 0.8)) == [0.8, 0.0, 0.4]
    assert check_cellprob_thresholds([-100, 100, "-1", -1.0]) == [-100.0, 100.0, -1.0]
    # the default lists hold Cellpose's own thresholds, and are valid
    assert 0.4 in FLOW_THRESHOLDS and 0.0 in CELLPROB_THRESHOLDS
    assert check_flow_thresholds(FLOW_THRESHOLDS) == list(FLOW_THRESHOLDS)
    assert check_cellprob_thresholds(CELLPROB_THRESHOLDS) == list(CELLPROB_THRESHOLDS)
    for bad in ([], [-0.1], [0.4, math.nan]):
        with pytest.raises(ValueError, match="flow_thresholds must be one or more numbers >= 0"):
            check_flow_thresholds(bad)
    for bad in ([], [100.5], [-101], [math.nan]):
        with pytest.raises(ValueError, match="cellprob_thresholds must be one or more numbers "
                                             "from -100 to 100"):
            check_cellprob_thresholds(bad)


def test_choice_key_and_best_thresholds():
    # higher F1 wins; NaN F1 ranks below any score
    assert max([(math.nan, 1, 0.4), (0.0, 3, 0.8)], key=lambda c: choice_key(*c)) == (0.0, 3, 0.8)
    # ties: fewer channels, then the flow threshold nearest 0.4 (either side), then the cell
    # probability threshold nearest 0
    assert choice_key(0.9, 2, 0.8) > choice_key(0.9, 3, 0.4)
    assert choice_key(0.9, 2, 0.3) > choice_key(0.9, 2, 0.6)
    assert choice_key(0.9, 2, 0.4, 1.0) > choice_key(0.9, 2, 0.4, -2.0)
    assert best_thresholds({(0.8, -2.0): 0.9, (0.4, -2.0): 0.9, (0.6, 0.0): 0.89}) == (0.4, -2.0)
    assert best_thresholds({(0.4, 0.0): math.nan, (0.8, -1): 0.1}) == (0.8, -1.0)
    best = best_thresholds({(1, 0): 0.5})
    assert best == (1.0, 0.0) and all(isinstance(v, float) for v in best)
    with pytest.raises(ValueError, match="no thresholds were scored"):
        best_thresholds({})


def test_threshold_scores_integrate_the_selected_pair_at_each_pair(generalist_zoo, selected,
                                                                   tiny_plate, by_hand):
    scores = threshold_scores(generalist_zoo, selected.to_dict(), tiny_plate, FLOWS, CELLPROBS)
    assert list(scores) == GRID
    for pair, s in scores.items():
        hand = by_hand[pair]
        assert s["n_images"] == 1 and s["n_true"] == hand["n_true"] > 5
        assert (s["tp"], s["fp"], s["fn"]) == (hand["tp"], hand["fp"], hand["fn"])
        assert s["f1"] == pytest.approx(hand["f1"])
    assert len({round(s["f1"], 6) for s in scores.values()}) > 1  # the thresholds matter here


def test_choose_thresholds_stores_the_best_pair(generalist_zoo, selected, by_hand):
    chosen = choose_thresholds(generalist_zoo, "CL1", "cyto", FLOWS, CELLPROBS)
    f1 = {pair: s["f1"] for pair, s in by_hand.items()}
    best = best_thresholds(f1)
    assert (chosen.flow_threshold, chosen.cellprob_threshold) == best
    # F1 along each threshold, the other at its chosen value; thresholds as text
    assert chosen.flow_threshold_val_f1 == pytest.approx(
        {f"{f:g}": f1[(f, best[1])] for f in FLOWS})
    assert chosen.cellprob_threshold_val_f1 == pytest.approx(
        {f"{c:g}": f1[(best[0], c)] for c in CELLPROBS})
    assert set(chosen.cellprob_threshold_val_f1) == {"0", "-2"}
    # stored; the rest of the selection kept; segmenting with the zoo now uses them
    assert generalist_zoo.selection("CL1", "cyto") == chosen
    assert (chosen.channel_models, chosen.val_f1, chosen.gt) == ({0: "cw0"}, 0.5, "gt_cyto")
    resolved = resolve(generalist_zoo, "CL1", "cyto", None)
    assert (resolved.flow_threshold, resolved.cellprob_threshold) == best


def test_choose_thresholds_bad_input(generalist_zoo, selected, tiny_plate):
    with pytest.raises(KeyError, match="no selection for CL1/nuclei"):
        choose_thresholds(generalist_zoo, "CL1", "nuclei")
    with pytest.raises(ValueError, match="flow_thresholds must be one or more numbers >= 0"):
        choose_thresholds(generalist_zoo, "CL1", "cyto", [-1.0])
    with pytest.raises(ValueError, match="cellprob_thresholds must be one or more numbers"):
        choose_thresholds(generalist_zoo, "CL1", "cyto", [0.4], [])
    generalist_zoo.set_selection("CL1", "cyto", {"strategy": "cw", "model_ids": {0: "cw0"},
                                                 "eval_channels": [0], "val_f1": 0.5})
    with pytest.raises(KeyError, match="the selection of CL1/cyto records no plate; pass plate="):
        choose_thresholds(generalist_zoo, "CL1", "cyto")
    assert generalist_zoo.selection("CL1", "cyto").flow_threshold == 0.4  # nothing stored

"""Candidate pairs and the Vanilla baseline scored per split; the selection (scoring.scoring).

In the zoo of ``generalist_zoo`` (conftest) the CW model of channel 0 holds the shipped
generalist's weights, which find the simulated cells; scores are checked against the
engine's own Flow Averaging (``segment_array``), and candidates holding the base
weights against the Vanilla baseline.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from structfree_dask.config import SegmentationConfig
from structfree_dask.evaluation.metrics import evaluate
from structfree_dask.pipeline.segment import segment_array
from structfree_dask.zoo import (
    SELECTION_RULE,
    VANILLA,
    Split,
    Zoo,
    load_planes,
    score_split,
    score_vanilla,
    select_best,
    select_from_scores,
    select_models,
)
from structfree_dask.zoo.scoring.scoring import score_candidates

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = ("cyto-reporter", "translocation-reporter", "ER", "mito")
VAL, TEST = "A/3/0", "A/3/1"  # the validation and test fields of tiny_split


def _plane(plate, field, channels):
    [plane] = load_planes(plate, [field], list(channels), "gt_cyto")
    return plane


def _n_cells(plane):
    return len(np.unique(plane.labels)) - 1


def _engine(plate, field, channels, models=None):
    """Scores of the engine's FA (``segment_array``) on one field at 30 px."""
    plane = _plane(plate, field, channels)
    config = SegmentationConfig(channels=tuple(range(len(channels))), diameter=30.0,
                                channel_models=None if models is None else tuple(map(str, models)))
    labels = segment_array(plane.image, config)
    return evaluate(plane.labels.astype(np.int64), labels.astype(np.int64))


def _ids(value):
    """``model_ids`` with integer channel keys (JSON makes them text)."""
    return {int(k): v for k, v in value.items()} if isinstance(value, dict) else value


def test_select_models_scores_every_pair_and_keeps_the_best(generalist_zoo, tiny_plate):
    zoo = generalist_zoo
    sel = select_models(zoo, tiny_plate, "gt_cyto", "CL1", "cyto")
    rows = sel.candidates
    assert [(r["strategy"], r["train_channels"], r["eval_channels"]) for r in rows] == [
        ("cw", [0], [0]), ("cw", [3], [3]), ("cw", [0, 3], [0, 3]),
        ("mc", [0, 3], [0]), ("mc", [0, 3], [3]), ("mc", [0, 3], [0, 3])]
    assert [_ids(r["model_ids"]) for r in rows] == [
        {0: "cw0"}, {3: "cw3"}, {0: "cw0", 3: "cw3"}, "mc03", "mc03", "mc03"]
    n_val = _n_cells(_plane(tiny_plate, VAL, [0]))
    for r in rows:  # scored on the cards' validation field, every cell of it counted
        assert r["eval_channel_names"] == [NAMES[c] for c in r["eval_channels"]]
        assert r["val_n_images"] == 1 and r["val_n_true"] == n_val > 5
        assert r["val_tp"] + r["val_fn"] == n_val
        assert not any(k.startswith("test_") for k in r)
    # the CW pair on both channels is the engine's FA with one model per channel
    engine = _engine(tiny_plate, VAL, (0, 3), [zoo.weights_path("cw0"), zoo.weights_path("cw3")])
    pair = rows[2]
    assert (pair["val_tp"], pair["val_fp"], pair["val_fn"]) == (
        engine["tp"], engine["fp"], engine["fn"])
    assert pair["val_f1"] == pytest.approx(engine["f1"])
    # the stored selection is the best row of the table
    best = select_best(rows)
    assert sel.pair_key == (best["strategy"], tuple(best["train_channels"]),
                            tuple(best["eval_channels"]))
    assert sel.channel_models == {c: m for c, m in _ids(best["model_ids"]).items()}
    assert sel.val_f1 == best["val_f1"] > 0.5  # the generalist's weights find these cells
    assert rows[0]["val_f1"] > 0.5 and rows[1]["val_f1"] < rows[0]["val_f1"]
    assert sel.strategy == "cw" and sel.eval_channel_names == tuple(best["eval_channel_names"])
    assert zoo.selection("CL1", "cyto") == sel


def test_models_that_cannot_be_scored_together_are_refused(generalist_zoo, make_card,
                                                           small_base, tiny_plate, tiny_split):
    zoo = generalist_zoo
    with pytest.raises(KeyError, match="has no cw/mc model for CL1/nuclei with fold=None"):
        score_candidates(zoo, tiny_plate, "gt_nuclei", "CL1", "nuclei")
    with pytest.raises(KeyError, match="has no cw model for CL1/cyto with fold=2, seed=0"):
        score_split(zoo, tiny_plate, "gt_cyto", "CL1", "cyto", strategies=["cw"], fold=2,
                    seed=0)
    # two models of the same channels: a seed must choose
    zoo.add(make_card("cw0-s1", (0,), split=replace(tiny_split, seed=1)), small_base.path)
    with pytest.raises(ValueError, match=r"'cw0' and 'cw0-s1' both train on channels \[0\]; "
                                         "pass seed="):
        score_candidates(zoo, tiny_plate, "gt_cyto", "CL1", "cyto")
    # models validated on different fields
    other = Split(("A/1/0", "A/1/1", "A/2/0"), ("A/2/1",), ("A/3/0", "A/3/1"), seed=0)
    zoo.add(make_card("cw1", (1,), split=other), small_base.path)
    with pytest.raises(ValueError, match="validated on different fields.*pass fields="):
        score_candidates(zoo, tiny_plate, "gt_cyto", "CL1", "cyto", seed=0)
    with pytest.raises(ValueError, match="validated or tested on different fields"):
        score_split(zoo, tiny_plate, "gt_cyto", "CL1", "cyto", seed=0)


def test_score_vanilla_is_the_engine_on_the_base_model(tiny_plate, small_base):
    [row] = score_vanilla(tiny_plate, "gt_cyto", [VAL], [["cyto-reporter"], [0]],
                          diameter=30.0, prefix="test_")  # one subset, named or not
    assert (row["strategy"], row["train_channels"], row["eval_channels"],
            row["eval_channel_names"], row["model_ids"]) == (
        VANILLA, [], [0], ["cyto-reporter"], "generalist")
    engine = _engine(tiny_plate, VAL, (0,))
    assert (row["test_tp"], row["test_fp"], row["test_fn"]) == (
        engine["tp"], engine["fp"], engine["fn"])
    assert row["test_f1"] == pytest.approx(engine["f1"]) and engine["f1"] > 0.5
    assert row["test_n_images"] == 1 and row["test_n_true"] == engine["n_true"]
    # several subsets, in the order given; the scores of the prefix asked for
    rows = score_vanilla(tiny_plate, "gt_cyto", [VAL, TEST], [("mito", 0), [2]], small_base)
    assert [(r["eval_channels"], r["eval_channel_names"], r["model_ids"]) for r in rows] == [
        ([0, 3], ["cyto-reporter", "mito"], small_base.name), ([2], ["ER"], small_base.name)]
    assert all(r["val_n_images"] == 2 for r in rows)
    assert not any(k.startswith("test_") for r in rows for k in r)


@pytest.mark.parametrize(("fields", "subsets", "error", "match"), [
    ([], [[0]], ValueError, "no fields given to score the Vanilla baseline on"),
    ([VAL], [], ValueError, "no evaluation subset given"),
    ([VAL], [[]], ValueError, "evaluation subsets must not be empty"),
    ([VAL], [["DAPI"]], KeyError, "channel 'DAPI' does not exist"),
])
def test_score_vanilla_bad_input(tiny_plate, fields, subsets, error, match):
    with pytest.raises(error, match=match):
        score_vanilla(tiny_plate, "gt_cyto", fields, subsets)


def test_score_split_scores_val_and_test_with_the_vanilla_baseline(generalist_zoo, tiny_plate,
                                                                    small_base):
    # the MC model holds the base weights (the small network) at its diameter
    rows = score_split(generalist_zoo, tiny_plate, "gt_cyto", "CL1", "cyto", strategies=["mc"],
                       base=small_base, seed=0)
    mc = [r for r in rows if r["strategy"] == "mc"]
    vanilla = [r for r in rows if r["strategy"] == VANILLA]
    assert len(rows) == 6 and rows[:3] == mc  # candidates first, then the baseline
    assert [r["eval_channels"] for r in mc] == [[0], [3], [0, 3]]
    assert [r["eval_channels"] for r in vanilla] == [[0], [3], [0, 3]]
    assert [r["model_ids"] for r in rows] == ["mc03"] * 3 + [small_base.name] * 3
    assert [r["train_channel_names"] for r in rows] == [["cyto-reporter", "mito"]] * 3 + [[]] * 3
    assert all(r["fold"] is None and r["seed"] == 0 for r in rows)
    # validation scores on the validation field, test scores on the test field
    n_val = _n_cells(_plane(tiny_plate, VAL, [0]))
    n_test = _n_cells(_plane(tiny_plate, TEST, [0]))
    assert n_val != n_test
    assert all(r["val_n_true"] == n_val and r["test_n_true"] == n_test for r in rows)
    assert all(r["val_n_images"] == r["test_n_images"] == 1 for r in rows)
    # the same weights at the same diameter score as the baseline, subset by subset
    for m, v in zip(mc, vanilla, strict=True):
        keys = [k for k in m if k.startswith(("val_", "test_"))]
        assert len(keys) == 24
        assert {k: v[k] for k in keys} == pytest.approx({k: m[k] for k in keys}, nan_ok=True)


def _row(strategy, train, ev, val_f1, test_f1, fold, ids):
    return {"strategy": strategy, "train_channels": train, "eval_channels": ev,
            "train_channel_names": [NAMES[c] for c in train],
            "eval_channel_names": [NAMES[c] for c in ev], "val_f1": val_f1,
            "test_f1": test_f1, "fold": fold, "model_ids": ids}


def test_select_from_scores_pools_folds_and_never_selects_vanilla(tmp_path, make_card,
                                                                  small_base):
    zoo = Zoo(tmp_path / "zoo")
    for model_id, channels in (("cw0", (0,)), ("cw3", (3,)), ("mc03", (0, 3))):
        zoo.add(make_card(model_id, channels), small_base.path)
    rows = [  # two folds, fold 1 listed first; values exact in binary
        _row(VANILLA, [], [0], 0.9375, 0.875, 1, "generalist"),
        _row(VANILLA, [], [0], 0.9375, 1.0, 0, "generalist"),
        _row("cw", [0], [0], 0.875, 0.75, 1, {0: "cw0-f1"}),
        _row("cw", [0], [0], 0.625, 0.5, 0, {0: "cw0"}),  # mean 0.75
        _row("cw", [3], [3], 0.875, 0.875, 0, {3: "cw3"}),
        _row("cw", [3], [3], 0.5, 0.875, 1, {3: "cw3-f1"}),  # mean 0.6875
        _row("mc", [0, 3], [0, 3], 0.75, 0.875, 0, "mc03"),
        _row("mc", [0, 3], [0, 3], 0.75, 0.875, 1, "mc03-f1"),  # mean 0.75: a tie
    ]
    sel = select_from_scores(zoo, "CL1", "cyto", rows, gt="gt_cyto", plate="p.zarr",
                             baseline={"model": "generalist"})
    # Vanilla has the highest F1 but is the baseline; the tie goes to fewer channels
    assert sel.pair_key == ("cw", (0,), (0,)) and sel.channel_models == {0: "cw0"}
    assert (sel.val_f1, sel.val_f1_std, sel.test_f1, sel.test_f1_std) == (
        0.75, 0.125, 0.625, 0.125)
    assert (sel.fold, sel.n_folds, sel.seed) == (0, 2, None)  # the first fold's model
    assert sel.train_channel_names == ("cyto-reporter",)
    assert sel.eval_channel_names == ("cyto-reporter",)
    assert sel.rule == SELECTION_RULE and sel.created
    assert (sel.gt, sel.plate, sel.baseline) == ("gt_cyto", "p.zarr", {"model": "generalist"})
    assert len(sel.candidates) == len(rows)
    # the baseline on the selected subset, pooled over the folds
    assert (sel.vanilla["val_f1"], sel.vanilla["test_f1"], sel.vanilla["test_f1_std"]) == (
        0.9375, 0.9375, 0.0625)
    assert sel.vanilla["n_folds"] == 2 and sel.vanilla["folds"] == [0, 1]
    assert zoo.selection("CL1", "cyto") == sel
    with pytest.raises(ValueError, match=r"no CW or MC candidate among the 2 score row\(s\) "
                                         "of CL1/cyto"):
        select_from_scores(zoo, "CL1", "cyto", rows[:2])
    with pytest.raises(ValueError, match="no row of the score table has a finite 'val_f1'"):
        select_from_scores(zoo, "CL1", "cyto", [_row("cw", [3], [3], None, None, 0,
                                                     {3: "cw3"})])
    assert zoo.selection("CL1", "cyto") == sel  # a failed selection leaves the stored one

"""Model sets and per-plane scores of FA and the mask fusions (zoo.scoring.predict)."""

from __future__ import annotations

import numpy as np
import pytest

from structfree_dask.evaluation.metrics import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")


def test_method_scores_rejects_unknown_methods():
    from structfree_dask.backbones import resolve_model
    from structfree_dask.zoo.scoring.predict import METHODS, FAModels, method_scores

    models = FAModels("one", ("a",), (resolve_model(None),), 30.0)
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['mean'\]"):
        method_scores(models, [], [(0,)], None, methods=("fa", "mean"))
    assert method_scores(models, [], [(0,)], None, methods=METHODS) == {
        (m, (0,), 0.4): [] for m in METHODS}


def test_model_sets_of_a_selection(generalist_zoo, tmp_path):
    from structfree_dask.backbones import ModelSpec, resolve_model
    from structfree_dask.zoo.scoring.predict import (
        FAModels,
        fusion_models,
        selected_models,
        subset_models,
        threshold_pair,
        vanilla_models,
    )

    zoo = generalist_zoo
    mc = zoo.set_selection("CL1", "cyto", {"strategy": "mc", "model_ids": "mc03",
                                           "eval_channels": [3], "val_f1": 0.5})
    chosen = selected_models(zoo, mc, ["mito", "cyto-reporter"])
    assert (chosen.label, chosen.channels, chosen.diameter) == ("selected MC mito", ("mito",), 30.0)
    assert [m.path for m in chosen.models] == [str(zoo.weights_path("mc03"))]
    # the fusion comparison runs the CW models of the selection's split when there are two
    fusion = fusion_models(zoo, mc)
    assert (fusion.label, fusion.channels) == ("CW models", ("cyto-reporter", "mito"))
    assert [m.path for m in fusion.models] == [str(zoo.weights_path(m)) for m in ("cw0", "cw3")]
    assert fusion.models[0].name != fusion.models[1].name and fusion.diameter == 30.0
    part = subset_models(fusion, [1])
    assert (part.channels, part.models, part.label) == (("mito",), fusion.models[1:], "CW models")
    # Vanilla: the base recorded with the selection, else the fallback, else the generalist
    generalist = resolve_model(None)
    assert vanilla_models(mc, ["a", "b"], 25.0).models == (generalist, generalist)
    recorded = {**mc.to_dict(), "baseline": {"model": "generalist",
                                             "path": str(zoo.weights_path("mc03"))}}
    base = vanilla_models(recorded, ["a"], 25.0)
    assert (base.label, base.channels, base.diameter) == ("Vanilla", ("a",), 25.0)
    assert base.models[0].path == str(zoo.weights_path("mc03"))
    gone = {**mc.to_dict(), "baseline": {"model": "no-such-model", "path": str(tmp_path / "x")}}
    with pytest.raises(FileNotFoundError, match="'no-such-model' is not a file"):
        vanilla_models(gone, ["a"], 25.0)
    with pytest.raises(ValueError, match="need one model per channel"):
        FAModels("x", ("a", "b"), (generalist,), 30.0)
    other = ModelSpec(name="other", path=generalist.path, diam_mean=17.0, sha256="0")
    with pytest.raises(ValueError, match="must share diam_mean"):
        FAModels("x", ("a", "b"), (generalist, other), 30.0)
    assert threshold_pair(0.6) == (0.6, 0.0) and threshold_pair((0.8, -1)) == (0.8, -1.0)


def test_on_one_channel_every_method_is_that_channel_alone(generalist_zoo, tiny_plate):
    from structfree_dask.zoo import load_planes
    from structfree_dask.zoo.scoring.predict import (
        METHODS,
        PlaneFlows,
        channel_labels,
        fa_labels,
        fusion_models,
        load_eval_planes,
        method_scores,
        subset_models,
    )

    zoo = generalist_zoo
    sel = zoo.set_selection("CL1", "cyto", {"strategy": "cw", "model_ids": {0: "cw0"},
                                            "eval_channels": [0], "val_f1": 0.5})
    models = fusion_models(zoo, sel)
    # the test field of the cards' split, channels by name, the ground truth of the card
    planes = load_eval_planes(zoo, sel, tiny_plate, models.channels, None, None)
    [expected] = load_planes(tiny_plate, ["A/3/1"], [0, 3], "gt_cyto")
    assert [(p.field, p.t, p.z) for p in planes] == [("A/3/1", 0, 0)]
    assert np.array_equal(planes[0].image, expected.image)
    assert np.array_equal(planes[0].labels, expected.labels)
    thresholds = [0.4, (0.8, -2.0)]
    rows = method_scores(models, planes, [(0,), (0, 1)], None, thresholds)
    assert set(rows) == {(m, s, t) for m in METHODS for s in [(0,), (0, 1)] for t in thresholds}
    assert all(len(r) == 1 for r in rows.values())
    flows = PlaneFlows(planes[0], models.channels, None)
    own = channel_labels(models, flows)[0]
    assert np.array_equal(fa_labels(subset_models(models, [0]), flows), own)
    truth = planes[0].labels.astype(np.int64)
    for threshold in thresholds:
        first = rows[("fa", (0,), threshold)][0]
        assert all(rows[(m, (0,), threshold)][0] == first for m in METHODS)
    first = rows[("fa", (0,), 0.4)][0]
    assert first["tp"] > 0 and first["n_true"] == len(np.unique(truth)) - 1
    assert first == pytest.approx(evaluate(truth, own.astype(np.int64)), nan_ok=True)

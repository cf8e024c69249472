"""FA against the mask fusions on the test fields (zoo.report)."""

from __future__ import annotations

import numpy as np
import pytest

from structfree_dask.backbones import resolve_model
from structfree_dask.simulate import simulate_plate
from structfree_dask.zoo import ModelCard, Split, Zoo, load_planes

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("thresholds", [(0.4,), (0.4, 0.8)])
def test_fusion_table_each_method_chooses_its_own_subset(tmp_path, thresholds):
    """All channels for every method, then each method on its best validation subset.

    With several flow thresholds, each method also picks its threshold on validation.
    """
    from itertools import combinations

    from structfree_dask.config import SegmentationConfig
    from structfree_dask.evaluation.metrics import evaluate
    from structfree_dask.pipeline.fusion import fuse_masks
    from structfree_dask.pipeline.segment import channel_flows, flows_to_labels
    from structfree_dask.zoo.report import FUSION_LABELS, fusion_table

    plate = simulate_plate(tmp_path / "p.zarr", cell_line="CL5", rows=1, cols=3, fields=1,
                           size=128, seed=3)
    names = ("mito", "ER", "membrane")
    split = Split(("A/1/0",), ("A/2/0",), ("A/3/0",), seed=0)
    generalist = resolve_model(None)
    zoo = Zoo(tmp_path / "zoo")
    for k, name in enumerate(names):  # three "CW models": the generalist on each channel
        zoo.add(ModelCard.example(model_id=f"cw{k}", cell_line="CL5", channels=(k,),
                                  channel_names=(name,), split=split, diameter=30.0),
                generalist.path)
    selection = zoo.set_selection("CL5", "cyto", {
        "model_ids": {0: "cw0", 1: "cw1"}, "eval_channels": [0, 1], "strategy": "cw",
        "val_f1": 0.5, "gt": "gt_cyto"})
    rows = fusion_table(zoo, selection, plate, flow_thresholds=thresholds, per_field=True)
    labels = list(FUSION_LABELS.values())
    assert [(r["method"], r["subset"]) for r in rows] == (
        [(m, "all") for m in labels] + [(m, "validation") for m in labels])

    def scores(field):  # by hand: every method on every subset of >= 2 channels
        planes = load_planes(plate, [field], [0, 1, 2], "gt_cyto")
        img, truth = planes[0].image, planes[0].labels.astype(np.int64)
        flows = channel_flows(img[:3], generalist, diameter=30.0)
        out = {}
        for t in thresholds:
            cfg = SegmentationConfig(flow_threshold=t)
            masks = [flows_to_labels(f, cfg) for f in flows]
            for sub in (c for n in (2, 3) for c in combinations(range(3), n)):
                preds = {"FA": flows_to_labels(flows[list(sub)], cfg)}
                for method in ("simple", "staple", "voting", "majority"):
                    preds[FUSION_LABELS[method]] = fuse_masks([masks[k] for k in sub],
                                                              method=method)
                for m, p in preds.items():
                    key = (m, "+".join(names[k] for k in sub), t)
                    out[key] = evaluate(truth, p.astype(np.int64))
        return out

    val, test = scores("A/2/0"), scores("A/3/0")
    assert any(v["f1"] > 0 for v in val.values())  # the generalist finds cells here
    for r in rows:
        assert r["models"] == "CW models" and r["flow_threshold"] in thresholds
        mine = {(ch, t): s["f1"] for (m, ch, t), s in val.items() if m == r["method"]
                and (r["subset"] == "validation" or ch == "mito+ER+membrane")}
        if r["subset"] == "all":
            assert r["channels"] == "mito+ER+membrane"
        assert r["val_f1"] == pytest.approx(max(mine.values()))
        assert mine[(r["channels"], r["flow_threshold"])] == pytest.approx(max(mine.values()))
        key = (r["method"], r["channels"], r["flow_threshold"])
        assert r["f1"] == pytest.approx(test[key]["f1"])
        assert r["per_field"] == [[test[key]["tp"], test[key]["fp"], test[key]["fn"]]]
    with pytest.raises(ValueError, match="flow_thresholds"):
        fusion_table(zoo, selection, plate, flow_thresholds=())

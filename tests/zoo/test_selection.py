"""The typed zoo Selection (its JSON layout) and resolve(): one way from a selection to models."""

from __future__ import annotations

import json
import pickle
from dataclasses import FrozenInstanceError, replace

import numpy as np
import pytest

from structfree_dask.io import create_plate
from structfree_dask.zoo import ModelCard, Selection, Split, Zoo, resolve, resolve_selection
from structfree_dask.zoo.card import check_compatible, json_safe
from structfree_dask.zoo.scoring.predict import selected_models
from structfree_dask.zoo.use import config_from_zoo

pytest.importorskip("torch")

NAMES = ("mito", "ER", "membrane")


# ----------------------------------------------------------------------------- JSON layout

#: A CW selection file as `zoo build` writes it today (JSON: channel keys are text).
CW_FILE = {
    "gt": "gt_cyto", "plate": "/data/cl5.zarr", "seed": 0, "flow_threshold": 0.6,
    "baseline": {"model": "generalist", "path": "/m/g.pth", "sha256": "ab"},
    "model_ids": {"0": "cw0", "1": "cw1"}, "strategy": "cw", "train_channels": [0, 1],
    "train_channel_names": ["mito", "ER"], "eval_channels": [0, 1],
    "eval_channel_names": ["mito", "ER"], "val_f1": 0.8, "val_f1_std": None, "test_f1": 0.7,
    "test_f1_std": None, "fold": None, "n_folds": 1, "rule": "highest validation F1",
    "created": "2025-01-01T00:00:00+00:00",
    "candidates": [
        {"strategy": "cw", "train_channels": [0, 1], "eval_channels": [0, 1],
         "model_ids": {"0": "cw0", "1": "cw1"}, "val_f1": 0.8, "test_f1": 0.7, "fold": None},
        {"strategy": "vanilla", "train_channels": [], "eval_channels": [0, 1],
         "eval_channel_names": ["mito", "ER"], "model_ids": "generalist", "val_f1": 0.5,
         "test_f1": 0.4, "fold": None},
    ],
    "cell_line": "CL5", "organelle": "cyto",
    "flow_threshold_val_f1": {"0.4": 0.7, "0.6": 0.8}, "cellprob_threshold": -1.0,
    "cellprob_threshold_val_f1": {"0": 0.75, "-1": 0.8, "-2": 0.78},
}

#: An MC selection as `select_models` writes it: one model id, no flow threshold.
MC_FILE = {
    "model_ids": "mc012", "eval_channels": [0, 2], "eval_channel_names": ["mito", "membrane"],
    "strategy": "mc", "train_channels": [0, 1, 2], "val_f1": 0.9, "fold": None,
    "candidates": [], "cell_line": "CL5", "organelle": "cyto",
}


def _written(sel: Selection) -> dict:
    """What a zoo writes for a selection, read back as JSON."""
    return json.loads(json.dumps(json_safe(sel.to_dict()), allow_nan=False))


def test_cw_file_round_trips_to_the_same_json():
    sel = Selection.from_dict(CW_FILE)
    assert sel.strategy == "cw" and sel.eval_channels == (0, 1)
    assert sel.models == ((0, "cw0"), (1, "cw1")) and sel.model_ids == ("cw0", "cw1")
    assert sel.channel_models == {0: "cw0", 1: "cw1"} and sel.model_for(1) == "cw1"
    assert sel.flow_threshold == 0.6 and sel.cellprob_threshold == -1.0 and sel.diameter is None
    assert sel.val_f1 == 0.8 and sel.test_f1 == 0.7 and sel.val_f1_std is None
    assert sel.train_channels == (0, 1) and sel.eval_channel_names == ("mito", "ER")
    assert sel.fold is None and sel.n_folds == 1 and sel.baseline["model"] == "generalist"
    assert sel.pair_key == ("cw", (0, 1), (0, 1))
    assert sel.vanilla["val_f1"] == 0.5 and sel.vanilla["n_folds"] == 1
    assert sel.to_dict()["model_ids"] == {0: "cw0", 1: "cw1"}  # ints, as Zoo.selection gave
    assert _written(sel) == CW_FILE  # the same file: older code reads what is written now
    assert Selection.from_dict(sel.to_dict()) == sel


def test_mc_file_in_the_old_form_round_trips():
    sel = Selection.from_dict(MC_FILE)
    assert sel.strategy == "mc" and sel.models == ((0, "mc012"), (2, "mc012"))
    assert sel.model_ids == ("mc012",) and sel.flow_threshold == 0.4  # missing: the default
    assert sel.cellprob_threshold == 0.0
    assert sel.vanilla is None and sel.pair_key == ("mc", (0, 1, 2), (0, 2))
    # the same layout; the thresholds now written (0.4 and 0: what older code assumed)
    assert _written(sel) == {**MC_FILE, "flow_threshold": 0.4, "cellprob_threshold": 0.0}
    assert Selection.from_dict(_written(sel)) == sel


def test_new_forms_round_trip():
    # MC as a {channel: id} mapping (one model), written back as one id
    mapped = Selection.from_dict({**MC_FILE, "model_ids": {"0": "mc012", "2": "mc012"}})
    assert mapped == Selection.from_dict(MC_FILE)
    assert mapped.to_dict()["model_ids"] == "mc012"
    # built in Python: a mapping, pairs, or one id for every channel
    cw = Selection("CL5", "cyto", "cw", [1, 0], {0: "cw0", 1: "cw1"}, val_f1=0.8,
                   diameter=22.0, flow_threshold=0.8)
    assert cw.models == ((1, "cw1"), (0, "cw0"))  # in eval_channels order
    assert cw == Selection("CL5", "cyto", "cw", (1, 0), ((0, "cw0"), (1, "cw1")), 0.8,
                           diameter=22.0, flow_threshold=0.8)
    mc = Selection("CL5", "nuclei", "mc", (0, 1), "mc01", val_f1=0.7)
    for sel in (cw, mc):
        assert Selection.from_dict(sel.to_dict()) == sel
        assert Selection.from_dict(_written(sel)) == sel
        assert pickle.loads(pickle.dumps(sel)) == sel  # goes through Dask
        assert {sel: 1}[sel] == 1  # hashable
    assert _written(cw)["diameter"] == 22.0 and "diameter" not in _written(mc)
    with pytest.raises(FrozenInstanceError):
        cw.strategy = "mc"


@pytest.mark.parametrize(("change", "error", "match"), [
    ({"val_f1": ...}, KeyError, r"lacks \['val_f1'\]"),
    ({"strategy": "xx"}, ValueError, "strategy must be one of"),
    ({"strategy": "cw"}, ValueError, "model_ids must be {channel: model_id}"),
    ({"model_ids": {"0": "a", "2": "b"}}, ValueError, "names one model"),
    ({"model_ids": {"0": "mc012"}}, ValueError, r"channels \[0\] differ from eval_channels"),
    ({"eval_channels": []}, ValueError, "distinct and non-empty"),
    ({"eval_channels": [0, 0]}, ValueError, "distinct and non-empty"),
    ({"organelle": "golgi"}, ValueError, "organelle must be one of"),
    ({"val_f1": None}, ValueError, "val_f1 a number"),
    ({"cellprob_threshold": 500}, ValueError, "cellprob_threshold must be from -100 to 100"),
    ({"cellprob_threshold": float("nan")}, ValueError, "cellprob_threshold must be from"),
])
def test_bad_selections_are_refused(change, error, match):
    data = {**MC_FILE, **change}
    data = {k: v for k, v in data.items() if v is not ...}
    with pytest.raises(error, match=match):
        Selection.from_dict(data)


# ----------------------------------------------------------------------------- resolve


def _card(model_id, strategy, channels, diameter):
    return ModelCard.example(model_id=model_id, cell_line="CL5", strategy=strategy,
                             channels=channels, channel_names=tuple(NAMES[c] for c in channels),
                             diameter=diameter,
                             split=Split(("A/1/0",), ("A/2/0",), ("A/3/0",), seed=0))


@pytest.fixture(scope="module")
def small_zoo(small_cpnet_path, tmp_path_factory):
    """Three CW models (diameters 20, 20, 30 px) and one MC model on all three channels."""
    zoo = Zoo(tmp_path_factory.mktemp("zoo") / "zoo")
    for k, d in enumerate((20.0, 20.0, 30.0)):
        zoo.add(_card(f"cw{k}", "cw", (k,), d), small_cpnet_path)
    zoo.add(_card("mc012", "mc", (0, 1, 2), 25.0), small_cpnet_path)
    return zoo


def _plate(path, names):
    with create_plate(path, rows=["A"], columns=["1"]) as writer:
        writer.write_field("A", "1", 0, np.ones((1, len(names), 32, 32), "uint16"),
                           channel_names=list(names))
    return str(path)


@pytest.fixture(scope="module")
def plates(tmp_path_factory):
    root = tmp_path_factory.mktemp("plates")
    return {"same": _plate(root / "same.zarr", NAMES),
            "shuffled": _plate(root / "shuffled.zarr", ("DAPI", "membrane", "ER", "mito")),
            "other": _plate(root / "other.zarr", ("DAPI", "ER", "membrane"))}


def _config_before(zoo, cell_line, organelle, plate, **options):
    """config_from_zoo as it was before Selection/resolve, on the raw selection JSON."""
    from structfree_dask.config import SegmentationConfig
    from structfree_dask.io import open_plate

    path = zoo.path / "selections" / cell_line / f"{organelle}.json"
    sel = json.loads(path.read_text())
    if isinstance(sel.get("model_ids"), dict):
        sel["model_ids"] = {int(k): v for k, v in sel["model_ids"].items()}
    info = next(iter(open_plate(plate).fields()))
    eval_channels = [int(c) for c in sel["eval_channels"]]
    if sel["strategy"] == "cw":
        cards = {c: zoo.get(str(sel["model_ids"][c])) for c in eval_channels}
    else:
        card = zoo.get(str(sel["model_ids"]))
        cards = {c: card for c in eval_channels}
    names = []
    for c in eval_channels:
        check_compatible(cards[c], info.channel_names)
        names.append(cards[c].channel_names[cards[c].channels.index(c)])
    diameters = sorted({cards[c].diameter for c in eval_channels})
    options.setdefault("diameter", float(sum(diameters) / len(diameters)))
    options.setdefault("flow_threshold", float(sel.get("flow_threshold", 0.4)))
    options.setdefault("cellprob_threshold", float(sel.get("cellprob_threshold", 0.0)))
    return SegmentationConfig(organelle=organelle, channels=tuple(names),
                              channel_models=tuple(str(zoo.weights_path(cards[c].model_id))
                                                   for c in eval_channels), **options)


@pytest.mark.parametrize("selection", [
    {"strategy": "cw", "model_ids": {0: "cw0", 1: "cw1"}, "eval_channels": [0, 1]},
    {"strategy": "cw", "model_ids": {1: "cw1", 2: "cw2"}, "eval_channels": [1, 2],
     "flow_threshold": 0.8, "cellprob_threshold": -2.0},
    {"strategy": "mc", "model_ids": "mc012", "eval_channels": [0, 2]},
    {"strategy": "mc", "model_ids": "mc012", "eval_channels": [1]},
])
def test_resolve_gives_the_config_of_before(small_zoo, plates, selection):
    stored = small_zoo.set_selection("CL5", "cyto", {**selection, "val_f1": 0.5})
    assert stored == small_zoo.selection("CL5", "cyto")
    chosen = resolve(small_zoo, "CL5", "cyto", NAMES)
    assert chosen.selection == stored and chosen == resolve_selection(small_zoo, stored, NAMES)
    assert chosen.channels == tuple(NAMES[c] for c in stored.eval_channels)
    assert chosen.plate_channels == stored.eval_channels
    assert chosen.weights == tuple(str(small_zoo.weights_path(m)) for m in chosen.model_ids)
    assert chosen.flow_threshold == selection.get("flow_threshold", 0.4)
    assert chosen.cellprob_threshold == selection.get("cellprob_threshold", 0.0)
    config = config_from_zoo(small_zoo, "CL5", "cyto", plates["same"], name="zoo_labels")
    assert config == _config_before(small_zoo, "CL5", "cyto", plates["same"], name="zoo_labels")
    assert (config.channels, config.channel_models) == (chosen.channels, chosen.weights)
    assert (config.diameter, config.flow_threshold, config.cellprob_threshold) == (
        chosen.diameter, chosen.flow_threshold, chosen.cellprob_threshold)
    # the report's model set is the same resolution
    models = selected_models(small_zoo, stored)
    assert models.channels == chosen.channels and models.diameter == chosen.diameter
    assert [m.path for m in models.models] == [str(w) for w in chosen.weights]
    assert models.label == f"selected {stored.strategy.upper()} {'+'.join(chosen.channels)}"
    # given options win
    given = config_from_zoo(small_zoo, "CL5", "cyto", plates["same"], diameter=17.0,
                            flow_threshold=0.55, cellprob_threshold=0.5)
    assert (given.diameter, given.flow_threshold, given.cellprob_threshold) == (17.0, 0.55, 0.5)


def test_one_diameter_formula_the_one_the_pair_was_scored_at(small_zoo, plates):
    """Mean over the evaluation channels (20, 20, 30 -> 23.3), not over distinct values (25)."""
    small_zoo.set_selection("CL5", "cyto", {"strategy": "cw", "val_f1": 0.5,
                                            "model_ids": {0: "cw0", 1: "cw1", 2: "cw2"},
                                            "eval_channels": [0, 1, 2]})
    chosen = resolve(small_zoo, "CL5", "cyto", NAMES)
    assert chosen.diameter == pytest.approx(70.0 / 3)
    assert config_from_zoo(small_zoo, "CL5", "cyto", plates["same"]).diameter == chosen.diameter
    assert _config_before(small_zoo, "CL5", "cyto", plates["same"]).diameter == 25.0
    assert selected_models(small_zoo, small_zoo.selection("CL5", "cyto")).diameter == (
        chosen.diameter)  # the report and the flow-threshold choice use it too
    # MC: its one model's diameter, whatever the subset
    small_zoo.set_selection("CL5", "cyto", {"strategy": "mc", "val_f1": 0.5,
                                            "model_ids": "mc012", "eval_channels": [0, 1]})
    assert resolve(small_zoo, "CL5", "cyto", NAMES).diameter == 25.0
    # a diameter stored with the selection wins
    sel = replace(small_zoo.selection("CL5", "cyto"), diameter=40.0)
    small_zoo.set_selection("CL5", "cyto", sel)
    assert resolve(small_zoo, "CL5", "cyto", NAMES).diameter == 40.0
    assert config_from_zoo(small_zoo, "CL5", "cyto", plates["same"]).diameter == 40.0


def test_channels_are_matched_by_name_in_plate_order(small_zoo, plates):
    small_zoo.set_selection("CL5", "cyto", {"strategy": "cw", "val_f1": 0.5,
                                            "model_ids": {0: "cw0", 2: "cw2"},
                                            "eval_channels": [0, 2]})
    chosen = resolve(small_zoo, "CL5", "cyto", ("DAPI", "membrane", "ER", "mito"))
    assert chosen.channels == ("membrane", "mito") and chosen.plate_channels == (1, 3)
    assert chosen.model_ids == ("cw2", "cw0")
    config = config_from_zoo(small_zoo, "CL5", "cyto", plates["shuffled"])
    assert config.channels == ("membrane", "mito")
    assert config.channel_models == tuple(str(small_zoo.weights_path(m))
                                          for m in ("cw2", "cw0"))
    with pytest.raises(ValueError, match="uses channels"):
        config_from_zoo(small_zoo, "CL5", "cyto", plates["shuffled"], channels=("ER",))
    assert config_from_zoo(small_zoo, "CL5", "cyto", plates["shuffled"],
                           channels=("mito", 1)).channels == config.channels


def test_a_plate_without_a_trained_channel_is_refused_by_name(small_zoo, plates):
    small_zoo.set_selection("CL5", "cyto", {"strategy": "cw", "val_f1": 0.5,
                                            "model_ids": {0: "cw0", 1: "cw1"},
                                            "eval_channels": [0, 1]})
    with pytest.raises(ValueError, match=r"'cw0' was trained on .*missing: \['mito'\]"):
        resolve(small_zoo, "CL5", "cyto", ("DAPI", "ER", "membrane"))
    with pytest.raises(ValueError, match=r"missing: \['mito'\]"):
        config_from_zoo(small_zoo, "CL5", "cyto", plates["other"])
    # MC (as before): the model needs every channel it was trained on, even those
    # outside the evaluation subset
    small_zoo.set_selection("CL5", "cyto", {"strategy": "mc", "val_f1": 0.5,
                                            "model_ids": "mc012", "eval_channels": [1, 2]})
    with pytest.raises(ValueError, match=r"'mc012' was trained on .*missing: \['mito'\]"):
        config_from_zoo(small_zoo, "CL5", "cyto", plates["other"])
    with pytest.raises(KeyError, match="no selection for CL5/nuclei"):
        resolve(small_zoo, "CL5", "nuclei", NAMES)


def test_selection_files_of_older_zoos_are_read(small_zoo):
    """A file as written before Selection (JSON text keys, no flow threshold) reads back."""
    path = small_zoo.path / "selections" / "CL5" / "cyto.json"
    path.write_text(json.dumps({**MC_FILE, "model_ids": "mc012"}, indent=2))
    sel = small_zoo.selection("CL5", "cyto")
    assert sel == Selection.from_dict(MC_FILE)
    assert resolve(small_zoo, "CL5", "cyto", NAMES).channels == ("mito", "membrane")
    path.write_text(json.dumps({**MC_FILE, "strategy": "cw"}))
    with pytest.raises(ValueError, match=f"selection file {path}: a 'cw' selection"):
        small_zoo.selection("CL5", "cyto")
    path.write_text(json.dumps({k: v for k, v in MC_FILE.items() if k != "val_f1"}))
    with pytest.raises(KeyError, match=r"lacks \['val_f1'\]"):
        small_zoo.selection("CL5", "cyto")
    with pytest.raises(ValueError, match="is for CL5/cyto, not CL9/cyto"):
        small_zoo.set_selection("CL9", "cyto", Selection.from_dict(MC_FILE))

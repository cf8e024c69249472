"""From a zoo's selection to channels, weights, diameter and thresholds (zoo.resolve)."""

from __future__ import annotations

from pathlib import Path

import pytest

from structfree_dask.zoo import ResolvedSelection, Selection, Zoo, resolve, resolve_selection

NAMES = ("cyto-reporter", "translocation-reporter", "ER", "mito")


@pytest.fixture
def zoo(tmp_path, make_card, small_base):
    """CW models of channels 0 and 2 (20 and 26 px), an MC model of 0, 2 and 3 (24 px)."""
    zoo = Zoo(tmp_path / "zoo")
    zoo.add(make_card("cw0", (0,), diameter=20.0), small_base.path)
    zoo.add(make_card("cw2", (2,), diameter=26.0), small_base.path)
    zoo.add(make_card("mc023", (0, 2, 3), diameter=24.0), small_base.path)
    return zoo


def test_a_cw_selection_without_a_plate_uses_the_cards_channels(zoo):
    stored = zoo.set_selection("CL1", "cyto", {
        "strategy": "cw", "model_ids": {2: "cw2", 0: "cw0"}, "eval_channels": [2, 0],
        "val_f1": 0.7, "flow_threshold": 0.6, "cellprob_threshold": -1})
    chosen = resolve(str(zoo.path), "CL1", "cyto", None)  # a folder; no plate to check
    assert isinstance(chosen, ResolvedSelection) and chosen.selection == stored
    # in channel order, whatever the selection's order
    assert chosen.channels == ("cyto-reporter", "ER") and chosen.plate_channels == (0, 2)
    assert chosen.model_ids == ("cw0", "cw2")
    assert chosen.weights == (str(zoo.weights_path("cw0")), str(zoo.weights_path("cw2")))
    assert all(isinstance(w, str) and Path(w).is_file() for w in chosen.weights)
    assert chosen.diameter == 23.0  # the mean of the models' training diameters
    assert (chosen.flow_threshold, chosen.cellprob_threshold) == (0.6, -1.0)
    assert chosen.label == "selected CW cyto-reporter+ER"


def test_an_mc_selection_on_a_plate_of_another_channel_order(zoo):
    plate = ("mito", "DAPI", "cyto-reporter", "ER")
    sel = Selection("CL1", "cyto", "mc", (3, 0), "mc023", val_f1=0.8)
    chosen = resolve_selection(zoo, sel, plate)
    assert chosen.channels == ("mito", "cyto-reporter") and chosen.plate_channels == (0, 2)
    assert chosen.model_ids == ("mc023", "mc023")
    assert chosen.weights == (str(zoo.weights_path("mc023")),) * 2
    assert chosen.diameter == 24.0 and chosen.label == "selected MC mito+cyto-reporter"
    assert (chosen.flow_threshold, chosen.cellprob_threshold) == (0.4, 0.0)  # Cellpose's
    # the selection's own diameter wins
    assert resolve_selection(zoo, Selection("CL1", "cyto", "mc", (3, 0), "mc023", val_f1=0.8,
                                            diameter=40), plate).diameter == 40.0
    # once stored, the selection resolves the same by cell line and organelle
    zoo.set_selection("CL1", "cyto", sel)
    assert resolve(zoo, "CL1", "cyto", plate) == chosen


def test_what_the_models_cannot_do_is_refused(zoo):
    with pytest.raises(ValueError, match=r"model 'mc023' was trained on channel\(s\) \[0, 2, 3\]; "
                                         "the selection of CL1/cyto runs it on channel 1"):
        resolve_selection(zoo, Selection("CL1", "cyto", "mc", (0, 1), "mc023", val_f1=0.5),
                          None)
    with pytest.raises(ValueError, match=r"'cw2' was trained on channel\(s\) \[2\]; .*on "
                                         "channel 3"):
        resolve_selection(zoo, Selection("CL1", "cyto", "cw", (3,), {3: "cw2"}, val_f1=0.5),
                          NAMES)
    with pytest.raises(KeyError, match="model 'ghost' is not in the zoo .*cw0, cw2, mc023"):
        resolve_selection(zoo, Selection("CL1", "cyto", "cw", (0,), {0: "ghost"}, val_f1=0.5),
                          NAMES)
    zoo.set_selection("CL1", "cyto", {"strategy": "cw", "model_ids": {0: "cw0"},
                                      "eval_channels": [0], "val_f1": 0.5})
    with pytest.raises(KeyError, match="no selection for CL1/nuclei in .*selections: CL1/cyto"):
        resolve(zoo, "CL1", "nuclei", NAMES)

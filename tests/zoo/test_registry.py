"""The zoo folder: models, cards, tables and selections (zoo.registry)."""

from __future__ import annotations

import pytest

from structfree_dask.backbones import resolve_model
from structfree_dask.zoo import CardError, ModelCard, Zoo


def test_zoo_add_get_table_selection(small_base, tmp_path):
    zoo = Zoo(tmp_path / "zoo")
    cw0 = ModelCard.example(model_id="cw0")
    cw1 = ModelCard.example(model_id="cw1", channels=(1,), channel_names=("ER",))
    mc = ModelCard.example(model_id="mc01", strategy="mc", channels=(0, 1),
                           channel_names=("cyto-reporter", "ER"))
    nuc = ModelCard.example(model_id="nuc0", organelle="nuclei")
    for card in (cw0, cw1, mc, nuc):
        stored = zoo.add(card, small_base.path)
        assert stored.weights_sha256 and stored.model_id == card.model_id
    assert (tmp_path / "zoo" / "models" / "cw0" / "weights.pth").is_file()
    assert (tmp_path / "zoo" / "models" / "cw0" / "card.json").is_file()
    reopened = Zoo(tmp_path / "zoo")
    assert reopened.get("mc01") == zoo.get("mc01")
    assert reopened.get("cw0").to_dict() == {**cw0.to_dict(),
                                             "weights_sha256": small_base.sha256}
    assert [c.model_id for c in zoo.cards("CL1", "cyto")] == ["cw0", "cw1", "mc01"]
    assert [c.model_id for c in zoo.cards(organelle="nuclei")] == ["nuc0"]
    assert zoo.cards("CL9") == []
    rows = zoo.table()
    assert [r["model_id"] for r in rows] == ["cw0", "cw1", "mc01", "nuc0"]
    assert rows[2]["channels"] == "cyto-reporter+ER" and rows[0]["val_f1"] == 0.9
    resolve_model(zoo.weights_path("cw1"))
    with pytest.raises(FileExistsError, match="already exists"):
        zoo.add(cw0, small_base.path)
    zoo.add(cw0, small_base.path, overwrite=True)
    with pytest.raises(KeyError, match="'nope' is not in the zoo.*cw0, cw1"):
        zoo.get("nope")
    with pytest.raises(ValueError, match="diam_mean"):
        zoo.add(ModelCard.example(model_id="d", diam_mean=17.0), small_base.path)

    table = [{"strategy": "cw", "train_channels": [0, 1], "eval_channels": [0, 1],
              "model_ids": {0: "cw0", 1: "cw1"}, "val_f1": 0.8}]
    stored = zoo.set_selection("CL1", "cyto", {"model_ids": {0: "cw0", 1: "cw1"},
                                               "eval_channels": [0, 1], "strategy": "cw",
                                               "val_f1": 0.8, "candidates": table})
    assert stored.channel_models == {0: "cw0", 1: "cw1"} and len(stored.candidates) == 1
    assert Zoo(tmp_path / "zoo").selection("CL1", "cyto") == stored
    zoo.set_selection("CL1", "cyto", {"model_ids": "mc01", "eval_channels": [1],
                                      "strategy": "mc", "val_f1": 0.85})
    assert zoo.selection("CL1", "cyto").model_ids == ("mc01",)
    with pytest.raises(KeyError, match="no selection for CL1/nuclei.*CL1/cyto"):
        zoo.selection("CL1", "nuclei")
    with pytest.raises(KeyError, match="'ghost' is not in the zoo"):
        zoo.set_selection("CL1", "cyto", {"model_ids": "ghost", "eval_channels": [0],
                                          "strategy": "mc", "val_f1": 1.0})
    with pytest.raises(ValueError, match="trained on channels \\[0, 1\\]"):
        zoo.set_selection("CL1", "cyto", {"model_ids": "mc01", "eval_channels": [2],
                                          "strategy": "mc", "val_f1": 1.0})
    with pytest.raises(ValueError, match="not channel 0"):
        zoo.set_selection("CL1", "cyto", {"model_ids": {0: "cw1"}, "eval_channels": [0],
                                          "strategy": "cw", "val_f1": 1.0})

    (tmp_path / "zoo" / "models" / "cw1" / "card.json").write_text('{"model_id": "cw1"}')
    with pytest.raises(CardError, match="card.json: missing keys"):
        zoo.get("cw1")
    with pytest.raises(CardError):
        zoo.cards()


def test_only_complete_models_are_in_the_zoo(small_base, tmp_path):
    root = tmp_path / "zoo"
    zoo = Zoo(root)
    assert not root.exists() and zoo.ids() == [] and zoo.selections() == []  # nothing written
    zoo.add(ModelCard.example(model_id="m1"), small_base.path)
    # a training's work folder, a folder without a card, a stray file: not models
    (root / "models" / ".train-m2-1234").mkdir()
    (root / "models" / "m3").mkdir()
    (root / "models" / "m3" / "weights.pth").write_bytes(b"")
    (root / "models" / "notes.txt").write_text("x")
    assert zoo.ids() == ["m1"] and "m1" in zoo and "m3" not in zoo and 1 not in zoo
    with pytest.raises(KeyError, match="'m3' is not in the zoo .* it has 1 model\\(s\\): m1"):
        zoo.weights_path("m3")
    assert zoo.model_dir("m3") == root / "models" / "m3"  # a folder, whether or not a model
    with pytest.raises(ValueError, match="model_id must be one path component"):
        zoo.model_dir("../m1")
    with pytest.raises(FileNotFoundError, match="weights file .*missing.pth of model 'm4'"):
        zoo.add(ModelCard.example(model_id="m4"), tmp_path / "missing.pth")
    assert zoo.ids() == ["m1"] and not (root / "models" / "m4").exists()
    # a card moved to another folder is refused by name
    (root / "models" / "m5").mkdir()
    (root / "models" / "m5" / "card.json").write_text(zoo.get("m1").to_json())
    with pytest.raises(CardError, match="card says model_id 'm1' but its folder is 'm5'"):
        zoo.get("m5")
    # weights removed by hand: the card still lists the model, its weights are refused
    (root / "models" / "m1" / "weights.pth").unlink()
    assert zoo.ids() == ["m1", "m5"]
    with pytest.raises(FileNotFoundError, match="model 'm1' in the zoo .* has a card but no "
                                                "weights file .*weights.pth"):
        zoo.weights_path("m1")
    with pytest.raises(FileNotFoundError, match="has a card but no weights file"):
        zoo.check_weights("m1")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="exists and is not a folder"):
        Zoo(tmp_path / "file")


def test_selections_and_filtered_cards(small_base, tmp_path):
    zoo = Zoo(tmp_path / "zoo")
    cw = ModelCard.example(model_id="cw0")
    mc = ModelCard.example(model_id="mc01", strategy="mc", channels=(0, 1),
                           channel_names=("cyto-reporter", "ER"))
    other = ModelCard.example(model_id="cl2-cw0", cell_line="CL2")
    for card in (cw, mc, other):
        zoo.add(card, small_base.path)
    assert [c.model_id for c in zoo.cards(strategy="mc")] == ["mc01"]
    assert [c.model_id for c in zoo.cards("CL1", strategy="cw")] == ["cw0"]
    assert [r["model_id"] for r in zoo.table("CL2")] == ["cl2-cw0"]
    zoo.set_selection("CL2", "cyto", {"model_ids": {0: "cl2-cw0"}, "eval_channels": [0],
                                      "strategy": "cw", "val_f1": 0.7})
    zoo.set_selection("CL1", "cyto",
                      {"model_ids": "mc01", "eval_channels": [1], "strategy": "mc",
                       "val_f1": 0.6})
    assert zoo.selections() == [("CL1", "cyto"), ("CL2", "cyto")]
    assert not list((tmp_path / "zoo" / "selections").rglob(".*"))  # no temporary files
    with pytest.raises(ValueError, match="model 'cl2-cw0' is for CL2/cyto, not CL1/cyto"):
        zoo.set_selection("CL1", "cyto", {"model_ids": {0: "cl2-cw0"}, "eval_channels": [0],
                                          "strategy": "cw", "val_f1": 1.0})
    with pytest.raises(ValueError, match="'mc01' is a 'mc' model; the selection's strategy "
                                         "is 'cw'"):
        zoo.set_selection("CL1", "cyto", {"model_ids": {0: "mc01"}, "eval_channels": [0],
                                          "strategy": "cw", "val_f1": 1.0})
    with pytest.raises(ValueError, match="organelle must be one of"):
        zoo.selection("CL1", "golgi")
    assert zoo.selection("CL1", "cyto").model_ids == ("mc01",)  # refused ones left it

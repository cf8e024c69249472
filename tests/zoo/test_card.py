"""Model cards: JSON round trip, validation, channel compatibility (zoo.card)."""

from __future__ import annotations

import json
import math

import pytest

from structfree_dask.zoo import CardError, ModelCard, check_compatible


def test_card_round_trip_and_validation(tmp_path):
    card = ModelCard.example(val_scores={"f1": 0.9, "ap_50_95": math.nan})
    text = card.to_json()
    data = json.loads(text)
    assert data["val_scores"]["ap_50_95"] is None  # strict JSON
    for key in ("cell_line", "organelle", "strategy", "channels", "channel_names",
                "base_model", "base_sha256", "diameter", "normalization", "split",
                "epochs_run", "best_epoch", "val_scores", "test_scores", "software",
                "created"):
        assert key in data
    assert {"structfree_dask", "cellpose", "torch"} <= set(data["software"])
    back = ModelCard.from_json(text)
    assert back.split == card.split and back.channels == (0,) and back.val_f1 == 0.9
    with pytest.raises(CardError, match="not valid JSON"):
        ModelCard.from_json("{oops")
    del data["organelle"]
    with pytest.raises(CardError, match="missing keys \\['organelle'\\]"):
        ModelCard.from_dict(data)
    with pytest.raises(CardError, match="exactly one channel"):
        ModelCard.example(channels=(0, 1), channel_names=("a", "b"))
    with pytest.raises(CardError, match="organelle"):
        ModelCard.example(organelle="mito")
    with pytest.raises(CardError, match="best_epoch"):
        ModelCard.example(best_epoch=11)


def test_check_compatible():
    card = ModelCard.example(model_id="m", strategy="mc", channels=(0, 2),
                             channel_names=("GFP", "RFP"))
    assert check_compatible(card, ["GFP", "x", "RFP"]) == (0, 2)
    assert check_compatible(card, ["RFP", "GFP"]) == (1, 0)
    msg = r"\['GFP', 'RFP'\].*\['GFP', 'mito'\].*missing: \['RFP'\]"
    with pytest.raises(ValueError, match=msg):
        check_compatible(card, ["GFP", "mito"])

"""The settings schema: one definition, every problem at once, the same checks everywhere."""

from __future__ import annotations

import numpy as np
import pytest

from structfree_dask.config import (
    DEFAULT_MIN_SIZE,
    FUSIONS,
    SegmentationConfig,
    SettingsError,
    TrainSettings,
)


def test_values_are_converted_once_checked():
    cfg = SegmentationConfig(channels=[np.int64(0), "mito"], tile_size=512.0, diameter=20,
                             min_size=np.int32(30))
    assert cfg.channels == (0, "mito") and isinstance(cfg.channels[0], int)
    assert isinstance(cfg.tile_size, int) and isinstance(cfg.diameter, float)
    assert cfg.min_size == 30 and type(cfg.min_size) is int
    assert hash(cfg) == hash(SegmentationConfig(channels=(0, "mito"), tile_size=512,
                                                diameter=20.0, min_size=30))


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as raised:
        SegmentationConfig.from_mapping({"organelle": "cell", "channels": [], "halo": -1,
                                         "min_sise": 3, "fusion": "mean"}, where="seg")
    fields = [f for f, _ in raised.value.problems]
    assert fields == ["seg.organelle", "seg.channels", "seg.halo", "seg.min_sise",
                      "seg.fusion"]
    text = str(raised.value)
    assert text.startswith("5 problems: seg.organelle: expected one of cyto, nuclei")
    assert "seg.min_sise: unknown setting (did you mean 'min_size'?" in text
    assert f"expected one of {', '.join(FUSIONS)}; got 'mean'" in text


def test_relations_are_checked_after_the_fields():
    with pytest.raises(SettingsError, match="channel_models: names 1 model"):
        SegmentationConfig(channels=(0, 1), channel_models=("a.pth",))
    with pytest.raises(SettingsError, match="give either model or channel_models"):
        SegmentationConfig(channels=(0,), model="m", channel_models=("a.pth",))


def test_replace_checks_again_and_defaults_are_written_once():
    cfg = SegmentationConfig(channels=(1,))
    assert cfg.replace(min_size=5).min_size == 5
    with pytest.raises(SettingsError, match="min_size: expected a whole number"):
        cfg.replace(min_size=-5)
    assert cfg.min_size == DEFAULT_MIN_SIZE
    assert cfg.given() == {"channels": (1,)}


def test_check_mapping_checks_each_key_alone():
    values, problems = SegmentationConfig.check_mapping(
        {"organelle": "nuclei", "diameter": "20", "overwrite": True})
    assert values == {"organelle": "nuclei", "overwrite": True}
    assert problems == [("diameter", "expected a finite number between 0.001 and 100000 px; "
                                     "got '20'")]


def test_train_settings():
    st = TrainSettings.from_mapping({"max_epochs": 3, "lr": 1e-3})
    assert (st.max_epochs, st.lr, st.patience, st.tile_size) == (3, 1e-3, 50, 224)
    with pytest.raises(SettingsError, match="tile_size: expected a multiple of 16; got 100"):
        TrainSettings(tile_size=100)
    with pytest.raises(SettingsError, match="2 problems: max_epochs: .*; lr: "):
        TrainSettings(max_epochs=0, lr=float("nan"))

"""A segmentation configuration from a zoo's selection (zoo.use)."""

from __future__ import annotations

import numpy as np
import pytest

from structfree_dask.config import SegmentationConfig
from structfree_dask.evaluation.metrics import evaluate
from structfree_dask.io import StoreError
from structfree_dask.pipeline.segment import segment_array
from structfree_dask.zoo import load_planes
from structfree_dask.zoo.use import config_from_zoo

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_configuration_names_the_selected_models_and_settings(generalist_zoo, tiny_plate):
    zoo = generalist_zoo
    zoo.set_selection("CL1", "cyto", {
        "strategy": "cw", "model_ids": {3: "cw3", 0: "cw0"}, "eval_channels": [3, 0],
        "val_f1": 0.8, "flow_threshold": 0.8, "cellprob_threshold": -2.0})
    config = config_from_zoo(str(zoo.path), "CL1", "cyto", str(tiny_plate), name="zoo_cyto",
                             min_size=10)
    assert isinstance(config, SegmentationConfig)
    assert (config.organelle, config.label_name, config.min_size) == ("cyto", "zoo_cyto", 10)
    assert config.channels == ("cyto-reporter", "mito") and config.model is None
    assert config.channel_models == (str(zoo.weights_path("cw0")), str(zoo.weights_path("cw3")))
    assert (config.diameter, config.flow_threshold, config.cellprob_threshold) == (
        30.0, 0.8, -2.0)
    # the selection's channels may be given (by name or index); other channels may not
    assert config_from_zoo(zoo, "CL1", "cyto", tiny_plate, channels=(3, "cyto-reporter"),
                           name="zoo_cyto", min_size=10) == config
    with pytest.raises(ValueError, match=r"uses channels \['cyto-reporter', 'mito'\]; got "
                                         r"\['cyto-reporter'\]"):
        config_from_zoo(zoo, "CL1", "cyto", tiny_plate, channels=(0,))


def test_the_configuration_segments_the_plate(generalist_zoo, tiny_plate):
    generalist_zoo.set_selection("CL1", "cyto", {
        "strategy": "cw", "model_ids": {0: "cw0"}, "eval_channels": [0], "val_f1": 0.8})
    config = config_from_zoo(generalist_zoo, "CL1", "cyto", tiny_plate)
    [plane] = load_planes(tiny_plate, ["A/3/0"], [0], "gt_cyto")
    labels = segment_array(plane.image, config.replace(channels=(0,)))
    assert labels.shape == plane.labels.shape and labels.max() > 5
    # the model of the zoo (the generalist's weights) finds the simulated cells
    assert evaluate(plane.labels.astype(np.int64), labels.astype(np.int64))["f1"] > 0.7


def test_a_zoo_without_that_selection_or_store_is_refused(generalist_zoo, tiny_plate):
    with pytest.raises(KeyError, match="no selection for CL1/cyto in .*selections: none"):
        config_from_zoo(generalist_zoo, "CL1", "cyto", tiny_plate)
    with pytest.raises(StoreError, match="cannot open nosuchproto://bucket/zoo: Protocol not "
                                         "known"):
        config_from_zoo("nosuchproto://bucket/zoo", "CL1", "cyto", tiny_plate)

"""Annotated planes of a plate as samples and planes (zoo.scoring.data)."""

from __future__ import annotations

import numpy as np
import pytest

from structfree_dask.simulate import simulate_plate
from structfree_dask.zoo import load_planes, load_samples


def test_load_samples_every_channel_and_timepoint(tmp_path):
    from structfree_dask.io import open_labels, open_plate

    path = simulate_plate(tmp_path / "t.zarr", rows=1, cols=3, timepoints=2, size=64, seed=1)
    fields = ["A/1/0", "A/3/0"]
    got = load_samples(path, fields, [0, "ER"], "gt_nuclei")
    assert len(got) == 2 * 2 * 2  # fields x timepoints x channels
    info = open_plate(str(path)).field("A/3/0")
    data, gt = info.open_array(0)[...], open_labels(info, "gt_nuclei").read()
    image, labels = got[4 + 1 * 2 + 1]  # field A/3/0, t=1, channel ER (index 2)
    assert np.array_equal(image, data[1, 2]) and np.array_equal(labels, gt[1, 0])
    planes = load_planes(path, fields, [0, 2], "gt_nuclei")
    assert [(p.field, p.t, p.image.shape) for p in planes] == [
        (f, t, (2, 64, 64)) for f in fields for t in (0, 1)]
    with pytest.raises(KeyError, match="no label image 'manual'"):
        load_samples(path, fields, [0], "manual")

"""segment_field_block (engine._debug): one region through the engine's task functions, in
this process, against what the engine writes on a real cluster."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from structfree_dask.config import SegmentationConfig
from structfree_dask.engine import _tasks, segment, segment_field_block
from structfree_dask.io import open_plate
from structfree_dask.pipeline.integrate import owned_cells

#: a 192 px field in 2 x 2 regions of 96 px, both channels averaged
CFG = SegmentationConfig(channels=(0, 1), tile_size=96)


@pytest.fixture(scope="module")
def written(tmp_path_factory, make_mosaic, write_plate, read_labels, cluster_client):
    """A plate of one 192 px field and the labels the engine wrote for it."""
    path = write_plate(tmp_path_factory.mktemp("debug") / "p.zarr", [make_mosaic(192, seed=4)])
    result = segment(str(path), CFG, client=cluster_client)
    assert result.ok and result.done == [("A/1/0", 0)]
    return path, read_labels(path)["A/1/0"][0, 0]


@pytest.mark.parametrize("region", [(0, 0), (1, 1)])
def test_a_region_holds_the_cells_the_engine_writes_for_it(written, region, permutation_equal,
                                                          tmp_path, monkeypatch):
    path, labels = written
    scratch = tmp_path / "scratch"  # where the flow sums wait, in this process
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = segment_field_block(str(path), "A/1/0", region=region, config=CFG)
    assert list(scratch.iterdir()) == []  # the sums are gone once integrated
    geometry = out["geometry"]
    assert geometry.n_regions == (2, 2)
    assert out["window"] == geometry.window(region)
    y0, y1, x0, x1 = out["window"]
    assert out["flows"].shape == (3, y1 - y0, x1 - x0)
    assert out["labels"].shape == out["owned"].shape == (y1 - y0, x1 - x0)
    info = open_plate(path).field("A/1/0")
    assert np.array_equal(out["stats"], _tasks.stats_task(info, 0, (0, 1)))
    owned = out["owned"].astype(np.int64)
    assert owned.max() > 3 and (out["labels"][owned > 0] > 0).all()
    # the cells the engine wrote whose centroid lies in the region: whole in the window,
    # and the same pixels as the region's own (numbered 1..n in both)
    engine, n = owned_cells(labels, (0, 0), geometry.region_bounds(region))
    assert n == owned.max()
    inside = engine[y0:y1, x0:x1]
    assert np.count_nonzero(inside) == np.count_nonzero(engine)
    assert permutation_equal(inside.astype(np.int64), owned)


def test_a_region_outside_the_grid_and_an_unknown_field_are_refused(written):
    path, _ = written
    with pytest.raises(KeyError, match=r"region \(2, 0\) not in the field's grid \(2, 2\)"):
        segment_field_block(str(path), "A/1/0", region=(2, 0), config=CFG)
    with pytest.raises(KeyError, match="A/9/0"):
        segment_field_block(str(path), "A/9/0", config=CFG)

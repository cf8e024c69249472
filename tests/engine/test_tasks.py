"""The engine's task functions on their own (no cluster)."""

from __future__ import annotations

import numpy as np
import pytest

from structfree_dask.engine import _tasks
from structfree_dask.io import create_image
from structfree_dask.pipeline.normalize import sample_stride


@pytest.mark.parametrize("size", [96, 2100])  # sampled at stride 1 and 2
def test_planes_read_once_give_the_stats_of_the_store(tmp_path, size):
    """The fused task reads each plane once and takes its bounds from it: they equal
    those the graph's stats task samples from the store, and the planes are the pixels."""
    rng = np.random.default_rng(size)
    img = rng.integers(0, 4000, size=(2, 3, 2, size, size), dtype=np.uint16)  # t, c, z, y, x
    info = create_image(tmp_path / "f.zarr", img, axes="tczyx")
    assert sample_stride((size, size)) == (1 if size < 2048 else 2)
    channels = (2, 0)
    planes, stats = _tasks.planes_and_stats(info, 1, channels)
    assert np.array_equal(stats, _tasks.stats_task(info, 1, channels))
    assert len(planes) == 2
    for z, plane in enumerate(planes):
        assert np.array_equal(plane, img[1, list(channels), z])


def test_stats_name_the_channel_of_a_bad_plane(tmp_path):
    img = np.zeros((1, 2, 64, 64), np.float32)
    img[0, 1] = np.nan
    info = create_image(tmp_path / "f.zarr", img, axes="tcyx")
    for task in (_tasks.stats_task, _tasks.planes_and_stats):
        with pytest.raises(ValueError, match=r"t=0 z=0 channel 1"):
            task(info, 0, (0, 1))


def test_a_worker_loads_no_library_its_tasks_do_not_use(loaded_modules):
    """Unpickling a task imports this module in each new worker.

    The libraries of plate metadata, tables and image files are imported where they are
    used, not here: they took 0.7 s of each worker's first task.
    """
    assert loaded_modules("import structfree_dask.engine._tasks", (
        "ome_zarr", "pandas", "xarray", "tifffile", "imageio", "dask.array", "pyarrow")) == []

"""Shared fixtures of the OME-Zarr I/O tests (structfree_dask.io).

Helpers are fixtures (this folder is not a package; pytest runs with
``--import-mode=importlib``, so test modules cannot import a sibling helper module).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr

from structfree_dask.io import ImageInfo, create_plate, open_plate


def _make_plate(path: Path, version: str, *, t: int = 2, c: int = 3, size: int = 128) -> Path:
    """Wells A/1, A/2 and B/2 of a 2x2 plate, two fields each, with a ``gt_cyto`` label."""
    rng = np.random.default_rng(0)
    with create_plate(path, rows=["A", "B"], columns=["1", "2"], ngff_version=version,
                      name="test") as plate:
        for row, col in [("A", "1"), ("A", "2"), ("B", "2")]:
            for f in range(2):
                img = rng.integers(0, 4000, (t, c, size, size)).astype("uint16")
                lab = np.zeros((t, size, size), "uint32")
                lab[:, 10:40, 20:50] = 3
                plate.write_field(row, col, f, img, channel_names=["mito", "ER", "memb"][:c],
                                  pixel_size_um=(0.5, 0.5), time_interval_h=3.0,
                                  labels={"gt_cyto": lab})
    return path


def _validate(path: Path, *, same_size_fields: bool = True) -> None:
    """Check a plate or image with ome-zarr-models and ome-zarr-py's reader."""
    import ome_zarr_models
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    group = zarr.open_group(str(path), mode="r")
    ome_zarr_models.open_ome_zarr(group)  # raises when invalid
    # ome_zarr's plate reader builds a mosaic and needs fields of one size
    targets = [path] if same_size_fields else [path / f for f in open_plate(path).field_paths]
    for target in targets:
        nodes = list(Reader(parse_url(str(target)))())
        assert nodes and nodes[0].data


@pytest.fixture(scope="session")
def make_plate() -> Callable[..., Path]:
    """``make_plate(path, version, *, t=2, c=3, size=128) -> path``: a small real plate.

    Wells A/1, A/2 and B/2 of rows A, B and columns 1, 2; two fields per well with
    channels ``mito, ER, memb`` (the first ``c``), 0.5 um pixels, 3 h time step and a
    ``gt_cyto`` label image whose object 3 covers ``y 10:40, x 20:50``.
    """
    return _make_plate


@pytest.fixture(scope="session")
def validate() -> Callable[..., None]:
    """``validate(path, *, same_size_fields=True)``: the store passes NGFF validators."""
    return _validate


@pytest.fixture
def simulated(tmp_path: Path) -> Callable[[str], Path]:
    """``simulated(version) -> path``: a 64 px simulated plate at ``tmp_path/p.zarr``."""
    from structfree_dask.simulate import simulate_plate

    def make(version: str) -> Path:
        return Path(simulate_plate(tmp_path / "p.zarr", size=64, ngff_version=version))

    return make


@pytest.fixture
def small_field(tmp_path: Path) -> Callable[..., ImageInfo]:
    """``small_field(version="0.4", *, t=2) -> ImageInfo``: field A/1/0 of a one-well plate.

    One channel, 64 x 64 px (one level), pixel values ``arange`` per timepoint; no label.
    """

    def make(version: str = "0.4", *, t: int = 2) -> ImageInfo:
        path = tmp_path / f"small-{version}.zarr"
        data = np.arange(t * 64 * 64, dtype="uint16").reshape(t, 1, 64, 64)
        with create_plate(path, rows=["A"], columns=["1"], ngff_version=version) as plate:
            plate.write_field("A", "1", 0, data, channel_names=["memb"])
        return open_plate(path).field("A/1/0")

    return make

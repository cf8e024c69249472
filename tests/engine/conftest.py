"""Fixtures of the engine's tests: real OME-Zarr plates written to disk, their labels read."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from structfree_dask.io import create_plate, open_labels, open_plate


def _write(path: Path, fields: list[np.ndarray], *, t: int = 1, version: str = "0.4",
           names: tuple[str, ...] = ("cyto-stain", "nuc-stain")) -> Path:
    """fields: list of (c, y, x) arrays (or (t, c, y, x)); one well (A/1, A/2, ...) each."""
    with create_plate(path, rows=["A"], columns=[str(i + 1) for i in range(len(fields))],
                      ngff_version=version) as plate:
        for i, img in enumerate(fields):
            data = img if img.ndim == 4 else np.stack([img] * t)
            plate.write_field("A", str(i + 1), 0, data, channel_names=list(names))
    return path


def _labels(path: Path | str, name: str = "cyto") -> dict[str, np.ndarray]:
    plate = open_plate(path)
    return {f: open_labels(plate.field(f), name).read() for f in plate.field_paths}


def _copy(src: Path, folder: Path) -> Path:
    dst = folder / "p.zarr"
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session")
def write_plate():
    """``write_plate(path, fields, *, t=1, version="0.4", names=(...))``: a plate on disk.

    One well per field (``A/1``, ``A/2``, ...), field 0 of each; a (c, y, x) field is
    repeated over ``t`` timepoints, a (t, c, y, x) field written as it is.
    """
    return _write


@pytest.fixture(scope="session")
def read_labels():
    """``read_labels(plate, name="cyto")``: ``{field path: level 0 of labels/<name>}``."""
    return _labels


@pytest.fixture(scope="session")
def copy_plate():
    """``copy_plate(src, folder)``: a copy of a plate at ``folder/p.zarr``."""
    return _copy


@pytest.fixture(scope="session")
def worker_profiling():
    """``worker_profiling(client)``: whether each worker's statistical profiler is on."""
    import dask

    def profiling(client) -> list[bool]:
        got = client.run(dask.config.get, "distributed.worker.profile.enabled")
        return [bool(v) for v in got.values()]

    return profiling


@pytest.fixture(scope="session")
def specs():
    """The shipped generalist model resolved for two channels (checked once per session)."""
    from structfree_dask.config import SegmentationConfig
    from structfree_dask.pipeline.segment import resolve_models

    return resolve_models(SegmentationConfig(channels=(0, 1)))

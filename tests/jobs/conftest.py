"""Fixtures of the job tests: a small segment entry, plates on disk, job files.

``segment_entry`` is the one segmentation entry most jobs here run (cyto from channels
0 and 1 at 20 px on 128 px tiles); ``make_plates`` simulates small time-lapse plates
and ``write_job`` writes a job file over ``<folder>/plates/*.zarr``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from structfree_dask.simulate import simulate_plate

#: the segment entry of the jobs here (a copy is handed out by ``segment_entry``)
SEGMENT = {"organelle": "cyto", "channels": [0, 1], "diameter": 20, "tile_size": 128}


@pytest.fixture
def segment_entry() -> dict:
    """A job file's ``segment`` entry: cyto from channels 0 and 1 (a fresh copy)."""
    return {**SEGMENT, "channels": list(SEGMENT["channels"])}


@pytest.fixture(scope="session")
def make_plates():
    """``make_plates(folder, n=1, *, fields=1, timepoints=2, size=160) -> [paths]``.

    ``n`` simulated CL1 plates of one well, ``folder/plate<i>.zarr`` (seed 10 + i).
    """
    def make(folder: Path, n: int = 1, *, fields: int = 1, timepoints: int = 2,
             size: int = 160) -> list[Path]:
        return [simulate_plate(folder / f"plate{i}.zarr", cell_line="CL1", rows=1, cols=1,
                               fields=fields, timepoints=timepoints, size=size, seed=10 + i)
                for i in range(n)]

    return make


@pytest.fixture(scope="session")
def write_job():
    """``write_job(folder, cluster, **extra) -> folder/job.yaml``.

    A version 1 job over ``plates/*.zarr`` (relative to the job file) with the
    ``segment_entry`` and run records in ``runs``; ``extra`` adds or replaces keys.
    """
    def write(folder: Path, cluster: dict, **extra) -> Path:
        doc = {"version": 1, "plates": ["plates/*.zarr"], "segment": [dict(SEGMENT)],
               "cluster": cluster, "records": "runs", **extra}
        path = folder / "job.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    return write

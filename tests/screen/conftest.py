"""A measured plate for the screen tests, and plate map CSVs written on demand."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from structfree_dask import simulate_plate

#: A plate map of the 2 x 3 plate: controls in A, a compound at two doses in B.
PLATE_MAP = """well,condition,compound,dose,dose_unit,role
A1,DMSO,,,,negative
A02,DMSO,,,,negative
A/3,stim,stim,1,uM,positive
B1,stim,stim,1,uM,positive
B2,X 0.1 uM,X,0.1,uM,sample
B3,X 10 uM,X,10,uM,
"""


@pytest.fixture(scope="session")
def measured_store(tmp_path_factory, cluster_client) -> Path:
    """A 2 x 3 plate (64 px, 2 timepoints) measured on its gt labels: gt_cyto_features."""
    from structfree_dask.cells.plate_measure import measure_plate

    store = simulate_plate(tmp_path_factory.mktemp("screen") / "p.zarr", cell_line="CL1",
                           rows=2, cols=3, timepoints=2, size=64, seed=3)
    result = measure_plate(str(store), labels="gt_cyto", nuclei="gt_nuclei",
                           client=cluster_client)
    assert result.ok
    return Path(store)


@pytest.fixture()
def plate(measured_store, tmp_path) -> Path:
    """A fresh copy of the measured plate (tests write into it)."""
    path = tmp_path / "p.zarr"
    shutil.copytree(measured_store, path, symlinks=True)
    return path


@pytest.fixture()
def write_map(tmp_path):
    """``write_map(text=PLATE_MAP, name="map.csv") -> path`` of a CSV file."""
    def write(text: str = PLATE_MAP, name: str = "map.csv") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write

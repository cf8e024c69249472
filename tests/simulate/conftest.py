"""Shared fixtures of the simulator tests (structfree_dask.simulate).

Helpers are fixtures (this folder is not a package; pytest runs with
``--import-mode=importlib``, so test modules cannot import a sibling helper module).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from structfree_dask.simulate import SimulatedField, simulate_field


def _cell_ids(lab: np.ndarray) -> set[int]:
    return {int(i) for i in np.unique(lab) if i}


def _background(img: np.ndarray, cyto: np.ndarray) -> float:
    return float(np.median(img[cyto == 0]))


@pytest.fixture(scope="session")
def cl1_series() -> SimulatedField:
    """A small CL1 field over the full 72 h (25 timepoints)."""
    return simulate_field("CL1", size=128, timepoints=25, seed=0)


@pytest.fixture(scope="session")
def cell_ids() -> Callable[[np.ndarray], set[int]]:
    """``cell_ids(lab)``: the set of non-zero labels of a label image."""
    return _cell_ids


@pytest.fixture(scope="session")
def background() -> Callable[[np.ndarray, np.ndarray], float]:
    """``background(img, cyto)``: median intensity of ``img`` outside all cells."""
    return _background

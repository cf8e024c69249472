"""Fixtures of the zoo's tests: a small network, one torch thread, tiny plates, small zoos.

The top-level ``tests/conftest.py`` gives ``small_cpnet_path`` (a small random CPnet);
here it is resolved once (``small_base``). ``generalist_zoo`` builds a zoo with one
channel-wise model holding the shipped generalist's weights (it finds the simulated
cells, so its scores are not all zero); its other models are the small network.
"""

from __future__ import annotations

import pytest

from structfree_dask.backbones import resolve_model
from structfree_dask.simulate import simulate_plate

#: the fields of ``tiny_plate`` and the split the zoos of ``generalist_zoo`` record
FIELDS = ("A/1/0", "A/1/1", "A/2/0", "A/2/1", "A/3/0", "A/3/1")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: on a shared 2-core machine, 2 threads mostly wait on each other."""
    import torch

    from structfree_dask.engine import worker_device

    before = torch.get_num_threads()
    worker_device()  # the engine sets torch's threads once per process: let it do so first
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def small_base(small_cpnet_path):
    """A small, randomly initialised CPnet saved as a weights file (a ModelSpec)."""
    return resolve_model(small_cpnet_path)


@pytest.fixture(scope="session")
def tiny_plate(tmp_path_factory):
    """Six 96 px fields of CL1 (3 wells x 2 fields) with gt_cyto and gt_nuclei.

    Channels: cyto-reporter, translocation-reporter, ER, mito.
    """
    path = tmp_path_factory.mktemp("plate") / "p.zarr"
    return simulate_plate(path, cell_line="CL1", rows=1, cols=3, fields=2, size=96, seed=0)


@pytest.fixture(scope="session")
def tiny_split():
    """Train on wells A/1 and A/2, validate on A/3/0, test on A/3/1 (of ``tiny_plate``)."""
    from structfree_dask.zoo import Split

    return Split(FIELDS[:4], (FIELDS[4],), (FIELDS[5],), seed=0)


@pytest.fixture
def make_card(tiny_split):
    """``make_card(model_id, channels, **changes)``: a CL1 cyto card of ``tiny_plate``."""
    from structfree_dask.zoo import ModelCard

    names = ("cyto-reporter", "translocation-reporter", "ER", "mito")

    def card(model_id, channels, **changes):
        values = dict(model_id=model_id, cell_line="CL1", organelle="cyto",
                      strategy="cw" if len(channels) == 1 else "mc", channels=tuple(channels),
                      channel_names=tuple(names[c] for c in channels), diameter=30.0,
                      split=tiny_split, source={"plate": "p.zarr", "gt": "gt_cyto"})
        values.update(changes)
        return ModelCard.example(**values)

    return card


@pytest.fixture
def generalist_zoo(tmp_path, make_card, small_base):
    """A zoo of CL1 cyto models of ``tiny_plate``, none trained here.

    ``cw0`` (cyto-reporter) holds the generalist's weights, at its own diameter (30 px):
    it finds the simulated cells. ``cw3`` (mito) and ``mc03`` (cyto-reporter + mito) hold
    the small random network (fast; it finds none).
    """
    from structfree_dask.zoo import Zoo

    zoo = Zoo(tmp_path / "zoo")
    zoo.add(make_card("cw0", (0,)), resolve_model(None).path)
    zoo.add(make_card("cw3", (3,)), small_base.path)
    zoo.add(make_card("mc03", (0, 3)), small_base.path)
    return zoo

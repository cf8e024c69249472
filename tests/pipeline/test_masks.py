"""pipeline.masks: cellpose's CPU mask recovery without cellpose's dynamics module, bitwise."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from cellpose import dynamics, utils
from skimage.segmentation import relabel_sequential

from structfree_dask.pipeline.integrate import (
    MAX_SIZE_FRACTION,
    SETTLE_CHECK_STEPS,
    SETTLED_STEP,
)
from structfree_dask.pipeline.masks import (
    fill_holes_and_remove_small_masks,
    follow,
    masks_from_sinks,
)


@pytest.fixture(scope="module")
def real_masks(real_dev) -> np.ndarray:
    """A whole real Kc167 annotation, IDs 1..n."""
    import imageio.v3 as iio

    masks = iio.imread(real_dev / "Kc167" / "095_masks.png")
    return relabel_sequential(masks.astype(np.int64))[0].astype(np.uint16)


@pytest.fixture(scope="module")
def noisy_flows(real_masks) -> np.ndarray:
    """Cellpose's flows of the annotation, scaled as the network's, with noise."""
    flows = 5 * dynamics.masks_to_flows(real_masks).astype(np.float32)
    return flows + np.random.default_rng(1).normal(0, 0.5, flows.shape).astype(np.float32)


def _follow_by_steps(flows, start, niter, every, settled):
    """The settling flow following as numpy steps around cellpose's ``map_coordinates``."""
    shape = flows.shape[1:]
    final = start.copy()
    active = np.arange(final.shape[1])
    pos = final.copy()
    step = np.zeros_like(pos)
    for t in range(niter):
        dynamics.map_coordinates(flows, pos[0], pos[1], step)
        for k in range(2):
            pos[k] = np.minimum(shape[k] - 1, np.maximum(0, pos[k] + step[k]))
        if (t + 1) % every == 0 and t + 1 < niter:
            moving = np.abs(step).max(axis=0) >= settled
            final[:, active] = pos
            active = active[moving]
            pos = pos[:, moving].copy()
            step = np.zeros_like(pos)
    final[:, active] = pos
    return final


@pytest.mark.parametrize("niter", [200, 57])
def test_following_is_cellposes_steps_and_stops_settled_pixels_bitwise(real_masks, noisy_flows,
                                                                       niter):
    inside = real_masks > 0
    inds = np.nonzero(inside)
    flows = (noisy_flows * inside / 5.0).astype(np.float32)
    start = np.stack(inds).astype(np.float32)
    # never stopping: cellpose's own steps
    ours = follow(flows, start, niter, niter + 1, np.float32(SETTLED_STEP))
    ref = dynamics.steps_interp(flows, inds, niter, device=torch.device("cpu"))
    np.testing.assert_array_equal(ours, ref)
    # stopping the settled pixels: the same steps made with numpy
    settled = follow(flows, start, niter, SETTLE_CHECK_STEPS, np.float32(SETTLED_STEP))
    np.testing.assert_array_equal(settled, _follow_by_steps(
        flows, start, niter, SETTLE_CHECK_STEPS, np.float32(SETTLED_STEP)))
    assert not np.array_equal(settled, start)  # the pixels moved
    assert (start >= 0).all() and settled.max() <= max(real_masks.shape) - 1


@pytest.mark.parametrize("max_size_fraction", [0.4, 0.004])
def test_masks_from_final_positions_are_cellposes_bitwise(real_masks, noisy_flows,
                                                          max_size_fraction):
    shape = real_masks.shape
    inds = np.nonzero(real_masks > 0)
    flows = (noisy_flows * (real_masks > 0) / 5.0).astype(np.float32)
    final = dynamics.steps_interp(flows, inds, 200, device=torch.device("cpu"))
    positions = torch.from_numpy(final).to(dtype=torch.int)
    ours = masks_from_sinks(positions.clone(), inds, shape, max_size_fraction)
    ref = dynamics.get_masks_torch(positions.clone(), inds, shape,
                                   max_size_fraction=max_size_fraction)
    np.testing.assert_array_equal(ours, ref)
    assert ours.dtype == ref.dtype == np.uint16
    n = int(ours.max())
    assert n > 20 if max_size_fraction == 0.4 else 0 < n < real_masks.max() // 2


def test_seeds_whose_grown_masks_overlap_are_cellposes_bitwise(monkeypatch):
    """Sinks 5 px apart: their grown seed masks overlap and the later seed's label stays,
    as cellpose writes them one after the other (the first seed's label kept would differ)."""
    rng = np.random.default_rng(5)
    sinks = np.array([[20, 20], [20, 25], [25, 22], [45, 45], [45, 50]])
    ends = np.concatenate([s + rng.integers(-3, 4, (120, 2)) for s in sinks])
    ends = np.concatenate([ends, np.repeat(sinks, 30, axis=0)])  # peaks at the sinks
    inds = np.unravel_index(np.arange(len(ends)), (72, 72))
    final = torch.from_numpy(ends.T.copy()).to(torch.int)
    ours = masks_from_sinks(final.clone(), inds, (72, 72), MAX_SIZE_FRACTION)
    ref = dynamics.get_masks_torch(final.clone(), inds, (72, 72),
                                   max_size_fraction=MAX_SIZE_FRACTION)
    np.testing.assert_array_equal(ours, ref)
    assert ours.max() == len(sinks)
    scatter = torch.Tensor.scatter_reduce_

    def first_seed_kept(self, dim, index, src, reduce, **kwargs):
        lowest = torch.full_like(self, 2**30)
        scatter(lowest, dim, index, src, "amin")
        return self.copy_(torch.where(lowest == 2**30, self, lowest))

    monkeypatch.setattr(torch.Tensor, "scatter_reduce_", first_seed_kept)
    assert not np.array_equal(
        masks_from_sinks(final.clone(), inds, (72, 72), MAX_SIZE_FRACTION), ref)


def test_no_pixels_ending_together_gives_no_masks():
    inds = (np.array([3, 9]), np.array([4, 30]))
    final = torch.tensor([[3, 9], [4, 30]], dtype=torch.int)
    out = masks_from_sinks(final, inds, (40, 40), MAX_SIZE_FRACTION)
    assert out.shape == (40, 40) and out.max() == 0


@pytest.mark.parametrize("min_size", [0, 15, 400])
def test_filled_holes_and_small_masks_are_cellposes_bitwise(real_masks, min_size):
    masks = real_masks.copy()
    rng = np.random.default_rng(3)
    for cell in rng.choice(np.arange(1, masks.max() + 1), 10, replace=False):
        ys, xs = np.nonzero(masks == cell)
        masks[int(ys.mean()), int(xs.mean())] = 0  # a hole (the centre may fall outside)
    masks[masks == 5] = 0  # a missing ID
    masks[0:2, 0:3] = masks.max() + 1  # a 6 px mask
    ours = fill_holes_and_remove_small_masks(masks.copy(), min_size=min_size)
    ref = utils.fill_holes_and_remove_small_masks(masks.copy(), min_size=min_size)
    np.testing.assert_array_equal(ours, ref)
    assert ours.max() > 5


def test_fill_holes_refuses_other_than_2d():
    with pytest.raises(ValueError, match=r"expected \(y, x\) masks; got shape \(2, 3, 4\)"):
        fill_holes_and_remove_small_masks(np.zeros((2, 3, 4), np.uint16))


@pytest.mark.parametrize("cache", ["writable", "nowhere"])
def test_the_cpu_integration_does_not_compile_cellposes_dynamics(cache):
    """A fresh worker's first CPU integration imports neither cellpose.dynamics nor utils,
    and works where numba finds no place to cache its kernels (read-only install)."""
    import os

    env = dict(os.environ)
    if cache == "nowhere":  # only numba's locator for zip files: none for our modules
        env["NUMBA_CACHE_LOCATOR_CLASSES"] = "ZipCacheLocator"
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from structfree_dask.pipeline.integrate import integrate_flows
        yy, xx = np.mgrid[:64, :64]
        disc = ((yy - 32) ** 2 + (xx - 30) ** 2 <= 100).astype(np.float32)
        dp = np.stack([(32 - yy) * disc, (30 - xx) * disc]).astype(np.float32) / 3
        labels = integrate_flows(dp, np.where(disc > 0, 4.0, -4.0).astype(np.float32))
        print(int(labels.max()), sorted(m for m in sys.modules
                                        if m in ("cellpose.dynamics", "cellpose.utils")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True, env=env).stdout.split()
    assert out == ["1", "[]"]

"""pipeline.flowcheck: cellpose's flow-error check with a faster kernel, bitwise."""

from __future__ import annotations

import numpy as np
import pytest
from cellpose import dynamics
from skimage.segmentation import relabel_sequential

from structfree_dask.pipeline.flowcheck import masks_to_flows, remove_bad_flow_masks


@pytest.fixture(scope="module")
def real_masks(real_dev) -> np.ndarray:
    """A whole real Kc167 annotation, IDs 1..n."""
    import imageio.v3 as iio

    masks = iio.imread(real_dev / "Kc167" / "095_masks.png")
    return relabel_sequential(masks.astype(np.int64))[0].astype(np.uint16)


def test_flows_of_masks_are_cellposes_bitwise(real_masks):
    ours = masks_to_flows(real_masks)
    ref = dynamics.masks_to_flows(real_masks, device=__import__("torch").device("cpu"))
    assert real_masks.max() > 20
    np.testing.assert_array_equal(ours, ref)


def test_a_missing_id_and_a_one_pixel_mask_are_cellposes():
    masks = np.zeros((20, 24), np.uint16)
    masks[2:8, 3:12] = 1
    masks[15, 20] = 3  # id 2 missing, id 3 one pixel
    np.testing.assert_array_equal(masks_to_flows(masks), dynamics.masks_to_flows(masks))


def test_bad_flow_masks_removed_as_cellpose_removes_them(real_masks):
    import torch

    rng = np.random.default_rng(4)
    flows = 5 * dynamics.masks_to_flows(real_masks).astype(np.float32)
    # the network disagrees on a third of the cells
    wrong = rng.choice(np.arange(1, real_masks.max() + 1), real_masks.max() // 3, replace=False)
    noisy = np.isin(real_masks, wrong)
    flows[:, noisy] = rng.normal(0, 5, (2, int(noisy.sum()))).astype(np.float32)
    for threshold in (0.4, 0.8):
        ours = remove_bad_flow_masks(real_masks.copy(), flows, threshold)
        ref = dynamics.remove_bad_flow_masks(real_masks.copy(), flows, threshold=threshold,
                                             device=torch.device("cpu"))
        np.testing.assert_array_equal(ours, ref)
        removed = set(np.unique(real_masks)) - set(np.unique(ours))
        assert removed and removed <= set(wrong.tolist())


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"\(y, x\)"):
        masks_to_flows(np.zeros((2, 3, 4), np.uint16))
    with pytest.raises(ValueError, match="do not match"):
        remove_bad_flow_masks(np.ones((4, 4), np.uint16), np.zeros((2, 4, 5), np.float32), 0.4)

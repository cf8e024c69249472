"""The layers of a reduced-precision network that read the image run at fp32."""

from __future__ import annotations

import numpy as np

from structfree_dask.backbones import resolve_model


def test_reduced_precision_reads_the_image_at_fp32(own_small_cpnet_path):
    import copy
    import dataclasses

    import torch

    from structfree_dask.backbones import load_model, predict_tiles

    path = own_small_cpnet_path  # a net of its own: the test changes a copy's weights
    fp32 = dataclasses.replace(resolve_model(str(path)), precision="fp32")
    net = load_model(dataclasses.replace(fp32, precision="bf16"), torch.device("cpu"))
    first = net.downsample.down[0]
    seen: dict[str, tuple[torch.dtype, torch.dtype]] = {}

    def watch(name):
        def hook(module, args, out) -> None:
            seen.setdefault(name, (args[0].dtype, out.dtype))
        return hook

    hooks = [first.conv[0][-1].register_forward_hook(watch("image conv")),
             first.proj[-1].register_forward_hook(watch("projection")),
             first.conv[1][-1].register_forward_hook(watch("next conv"))]
    tiles = np.random.default_rng(1).random((2, 64, 64), dtype=np.float32)
    out = predict_tiles(net, tiles, precision="bf16")
    for h in hooks:
        h.remove()
    assert seen["image conv"] == seen["projection"] == (torch.float32, torch.float32)
    assert seen["next conv"][1] == torch.bfloat16  # the rest runs at bf16
    # same parameters under the same names as cellpose's net
    net32 = load_model(fp32, torch.device("cpu"))
    assert list(net.state_dict()) == list(net32.state_dict())
    # a deep copy (as training makes) runs on its own weights, and keeps the fp32 layers
    twin = copy.deepcopy(net)
    np.testing.assert_array_equal(predict_tiles(twin, tiles, precision="bf16"), out)
    with torch.no_grad():
        twin.downsample.down[0].conv[0][-1].weight.mul_(2.0)
    assert not np.array_equal(predict_tiles(twin, tiles, precision="bf16"), out)
    np.testing.assert_array_equal(predict_tiles(net, tiles, precision="bf16"), out)
    assert type(twin.downsample.down[0].proj) is type(first.proj)


def test_only_a_plain_sequential_is_changed():
    import pytest
    import torch
    from torch import nn

    from structfree_dask.backbones.full_precision import FullPrecisionSequential, at_fp32

    layer = nn.Sequential(nn.Conv2d(2, 4, 1))
    at_fp32(layer)
    at_fp32(layer)  # twice is once
    assert type(layer) is FullPrecisionSequential
    x = torch.rand(1, 2, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.float32
    np.testing.assert_array_equal(layer(x).detach().numpy(),
                                  nn.functional.conv2d(x, layer[0].weight,
                                                       layer[0].bias).detach().numpy())

    class Own(nn.Sequential):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="expected a plain nn.Sequential, got Own"):
        at_fp32(Own(nn.Conv2d(2, 4, 1)))
    with pytest.raises(TypeError, match="got Conv2d"):
        at_fp32(nn.Conv2d(2, 4, 1))

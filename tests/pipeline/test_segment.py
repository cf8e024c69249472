"""In-process Flow Averaging and the model rules (structfree_dask.pipeline.segment)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from cellpose import core, transforms

from structfree_dask import limits
from structfree_dask.backbones import ModelSpec, load_model, predict_tiles, resolve_model
from structfree_dask.config import SegmentationConfig
from structfree_dask.evaluation.metrics import matched_f1
from structfree_dask.pipeline.flows import average_flows
from structfree_dask.pipeline.integrate import dynamics_for
from structfree_dask.pipeline.segment import (
    channel_flows,
    check_rescale,
    field_geometry,
    flows_to_labels,
    predictor,
    resolve_models,
    segment_array,
)
from structfree_dask.pipeline.tiling import NET_TILE, halo_depth

#: channel_flows keeps its tile sums in float16 (about three significant digits)
F16 = {"rtol": 2e-3, "atol": 2e-3}


def _cpnet(path: Path, seed: int, diam_mean: float = 30.0) -> Path:
    """A small random CPnet whose style vector has cellpose's 256 entries (run_net needs it)."""
    import torch
    from cellpose.resnet_torch import CPnet

    torch.manual_seed(seed)
    net = CPnet([2, 4, 8, 16, 32, 256], 3, sz=3, diam_mean=diam_mean)
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def nets(tmp_path_factory) -> dict[str, ModelSpec]:
    """Resolved small networks: "a" and "b" (diam_mean 30), "c" (diam_mean 17)."""
    folder = tmp_path_factory.mktemp("nets")
    return {"a": resolve_model(_cpnet(folder / "a.pth", 0)),
            "b": resolve_model(_cpnet(folder / "b.pth", 1)),
            "c": resolve_model(_cpnet(folder / "c.pth", 2, diam_mean=17.0))}


@pytest.fixture(scope="module")
def kc(real_dev) -> tuple[np.ndarray, np.ndarray]:
    """A 208 px crop of a real Kc167 image (cyto, nuclear) and its annotation."""
    import imageio.v3 as iio

    rgb = iio.imread(real_dev / "Kc167" / "095_img.png")[:208, :208]
    masks = iio.imread(real_dev / "Kc167" / "095_masks.png")[:208, :208]
    return np.stack([rgb[..., 1], rgb[..., 0]]).astype(np.uint16), masks.astype(np.int64)


def _run_net(spec: ModelSpec, channel: np.ndarray, rsz: float | None = None) -> np.ndarray:
    """cellpose's own tiled network run on one normalized channel, at the original pixels."""
    import torch

    net = load_model(spec, torch.device("cpu"))
    x = np.zeros((1, *channel.shape, 2), np.float32)
    x[0, ..., 0] = transforms.normalize99(channel)
    y, _ = core.run_net(net, x, rsz=rsz)
    y = y[0]
    if rsz is not None:
        y = transforms.resize_image(y, *channel.shape)
    return y.transpose(2, 0, 1)


# ---------------------------------------------------------------------------- model rules


def test_resolve_models_gives_one_spec_per_channel(nets):
    import dataclasses

    from structfree_dask.backbones import pick_device, resolve_precision

    here = resolve_precision("auto", pick_device())  # resolved on this machine
    a, b = (dataclasses.replace(nets[k], precision=here) for k in "ab")
    generalist = resolve_models(SegmentationConfig(channels=(0, 2, 3)))
    assert len(generalist) == 3 and all(
        s == dataclasses.replace(resolve_model(None), precision=here) for s in generalist)
    assert resolve_models(SegmentationConfig(channels=(1, 0), model=a.path)) == (a, a)
    both = resolve_models(SegmentationConfig(channels=(0, 1), channel_models=(a.path, b.path)))
    assert both == (a, b)
    named = resolve_models(SegmentationConfig(channels=(0,), model=a.path, precision="fp32"))
    assert named[0].precision == "fp32"
    # auto as the workers resolved it (or not yet: "auto"); a named precision stays
    cfg = SegmentationConfig(channels=(0,), model=a.path)
    assert resolve_models(cfg, auto="fp16")[0].precision == "fp16"
    assert resolve_models(cfg, auto="auto")[0].precision == "auto"
    assert resolve_models(cfg.replace(precision="fp32"), auto="bf16")[0].precision == "fp32"
    with pytest.raises(ValueError, match="auto: expected one of auto, fp32, bf16, fp16; got 'x'"):
        resolve_models(cfg, auto="x")


def test_resolve_models_refuses_two_scales_and_unknown_models(nets, tmp_path):
    mixed = SegmentationConfig(channels=(0, 1), channel_models=(nets["a"].path, nets["c"].path))
    with pytest.raises(ValueError, match=r"different diam_mean \[17\.0, 30\.0\]; Flow Averaging "
                                         "needs one scale"):
        resolve_models(mixed)
    with pytest.raises(FileNotFoundError, match="is not a file and not a cellpose built-in"):
        resolve_models(SegmentationConfig(model=str(tmp_path / "missing.pth")))


def test_field_geometry_tiled_and_whole_field():
    spec = ModelSpec(name="x", path="x.pth", diam_mean=30.0, sha256="")
    cfg = SegmentationConfig(diameter=20.0, tile_size=128)
    g = field_geometry((300, 200), cfg, spec)
    assert (g.shape, g.tile_size, g.halo, g.rescale) == ((300, 200), 128, halo_depth(20.0), 1.5)
    assert g.n_regions == (3, 2)
    one = field_geometry((300, 200), cfg, spec, tiled=False)
    assert one.regions() == [(0, 0)] and one.region_bounds((0, 0)) == (0, 300, 0, 200)
    default = field_geometry((64, 64), SegmentationConfig(), spec)
    assert (default.rescale, default.halo) == (1.0, halo_depth(30.0))
    assert field_geometry((64, 64), SegmentationConfig(halo=5), spec).halo == 5


def test_check_rescale_bounds_the_diameter_by_the_models():
    spec = ModelSpec(name="x", path="x.pth", diam_mean=30.0, sha256="")
    lo, hi = limits.RESCALE
    check_rescale(SegmentationConfig(), spec)  # no diameter: no rescaling
    for diameter in (30.0 / hi, 30.0 / lo, 30.0, 12.5):
        check_rescale(SegmentationConfig(diameter=diameter), spec)
    message = ("diameter 2 px: the model was trained on cells of 30 px, so fields would be "
               "rescaled 15x; expected a diameter between 3 and 600 px")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_rescale(SegmentationConfig(diameter=2.0), spec)
    with pytest.raises(ValueError, match="rescaled 0.04x; expected a diameter between 3 and"):
        check_rescale(SegmentationConfig(diameter=750.0), spec)


def test_predictor_runs_each_channel_through_its_own_network(nets):
    import torch

    cpu = torch.device("cpu")
    a, b = nets["a"], nets["b"]
    tiles = np.random.default_rng(0).random((2, NET_TILE, NET_TILE), dtype=np.float32)
    same = predictor([a, a], batch_size=1, device=cpu)(tiles)
    assert same.shape == (2, 3, NET_TILE, NET_TILE) and same.dtype == np.float32
    np.testing.assert_array_equal(same, predict_tiles(load_model(a, cpu), tiles, batch_size=1))
    mixed = predictor([a, b], device=cpu)(tiles)  # tile i * 2 + k is channel k's
    np.testing.assert_array_equal(mixed[0::2], predict_tiles(load_model(a, cpu), tiles[0::2]))
    np.testing.assert_array_equal(mixed[1::2], predict_tiles(load_model(b, cpu), tiles[1::2]))
    assert not np.allclose(mixed[1::2], same[1::2])  # the two networks differ


# ---------------------------------------------------------------------------- channel flows


def test_channel_flows_equal_cellposes_run_net_on_each_channel_alone(nets):
    rng = np.random.default_rng(1)
    shape = (208, 300)  # one network tile down, two across (after cellpose's padding)
    image = rng.gamma(2.0, 100.0, (2, *shape)).astype(np.float32)
    fl = channel_flows(image, nets["a"])
    assert fl.shape == (2, 3, *shape) and fl.dtype == np.float32 and fl.flags.c_contiguous
    for k in range(2):
        np.testing.assert_allclose(fl[k], _run_net(nets["a"], image[k]), **F16)


def test_channel_flows_rescaled_equal_cellposes_resized_run(nets):
    rng = np.random.default_rng(2)
    image = rng.gamma(2.0, 100.0, (1, 160, 200)).astype(np.float32)
    fl = channel_flows(image, nets["a"], diameter=20.0)  # rescaled 1.5x for the network
    assert fl.shape == (1, 3, 160, 200)
    np.testing.assert_allclose(fl[0], _run_net(nets["a"], image[0], rsz=1.5), **F16)


def test_channel_flows_with_one_model_per_channel(nets):
    rng = np.random.default_rng(3)
    image = rng.gamma(2.0, 100.0, (2, 208, 208)).astype(np.float32)  # one network tile
    fl = channel_flows(image, [nets["a"], nets["b"]])
    np.testing.assert_allclose(fl[0], channel_flows(image[0], nets["a"])[0], **F16)
    np.testing.assert_allclose(fl[1], channel_flows(image[1], nets["b"])[0], **F16)
    np.testing.assert_allclose(fl[1], _run_net(nets["b"], image[1]), **F16)


def test_channel_flows_normalize_each_channel_by_its_own_percentiles(nets):
    rng = np.random.default_rng(4)
    channel = rng.gamma(2.0, 100.0, (208, 208)).astype(np.float32)
    fl = channel_flows(np.stack([channel, 40 * channel + 7]), nets["a"])
    np.testing.assert_allclose(fl[0], fl[1], **F16)
    two_d = channel_flows(channel, nets["a"])
    assert two_d.shape == (1, 3, 208, 208)
    np.testing.assert_allclose(two_d[0], fl[0], **F16)


def test_channel_flows_refuse_bad_images_models_and_diameters(nets):
    image = np.zeros((2, 64, 64), np.float32)
    with pytest.raises(ValueError, match=r"got 3 model\(s\) for 2 channel\(s\); give one model"):
        channel_flows(image, [nets["a"]] * 3)
    with pytest.raises(ValueError, match="different diam_mean"):
        channel_flows(image, [nets["a"], nets["c"]])
    with pytest.raises(ValueError, match=r"image must be \(c, y, x\) or \(y, x\); got shape "
                                         r"\(1, 2, 64, 64\)"):
        channel_flows(image[None], nets["a"])
    with pytest.raises(ValueError, match="expected a diameter between 3 and 600 px"):
        channel_flows(image, nets["a"], diameter=1.0)


# ---------------------------------------------------------------------------- labels


@pytest.fixture(scope="module")
def kc_flows(kc) -> np.ndarray:
    """Flows of the real crop's two channels through the shipped generalist."""
    return channel_flows(kc[0])


def test_flows_to_labels_uses_the_one_dynamics_rule(kc_flows):
    cfg = SegmentationConfig(min_size=20)
    shape = kc_flows.shape[-2:]
    for rescale in (1.0, 2.0):
        rule = dynamics_for(shape, rescale, cfg)
        np.testing.assert_array_equal(flows_to_labels(kc_flows, cfg, rescale=rescale),
                                      rule.labels(average_flows(kc_flows)))
        np.testing.assert_array_equal(flows_to_labels(kc_flows[1], cfg, rescale=rescale),
                                      rule.labels(kc_flows[1]))
    labels = flows_to_labels(kc_flows, cfg)
    assert labels.shape == shape and labels.dtype == np.uint32 and labels.max() >= 10
    voting = flows_to_labels(kc_flows, cfg.replace(fusion="voting"))
    assert voting.dtype == np.uint32 and voting.max() >= 10
    assert not np.array_equal(voting, labels)  # a baseline is not Flow Averaging


@pytest.mark.parametrize("shape", [(64, 64), (2, 64, 64), (2, 2, 64, 64), (2, 4, 8, 8)])
def test_flows_to_labels_refuses_other_shapes(shape):
    with pytest.raises(ValueError, match=re.escape(f"flows must be (3, y, x) or (c, 3, y, x); "
                                                   f"got shape {shape}")):
        flows_to_labels(np.zeros(shape, np.float32))


def test_segment_array_finds_the_annotated_cells_of_a_real_image(kc, kc_flows):
    """The shipped generalist, both channels flow-averaged, against the annotation."""
    image, truth = kc
    labels = segment_array(image)
    assert labels.shape == truth.shape and labels.dtype == np.uint32
    ids = np.unique(labels)
    np.testing.assert_array_equal(ids, np.arange(ids.size))  # consecutive IDs
    assert ids.size - 1 >= 0.8 * (np.unique(truth).size - 1)
    assert matched_f1(truth, labels.astype(np.int64)) > 0.8
    # the same as its two steps
    np.testing.assert_array_equal(labels, flows_to_labels(kc_flows))


def test_segment_array_with_channels_diameter_and_thresholds_is_its_two_steps(kc):
    image, _ = kc
    crop = image[:, :120, :120]
    cfg = SegmentationConfig(channels=(1, 0), diameter=25.0, cellprob_threshold=-1.0,
                             min_size=30)
    labels = segment_array(crop, cfg)
    fl = channel_flows(crop[[1, 0]], diameter=25.0)
    np.testing.assert_array_equal(labels, flows_to_labels(fl, cfg, rescale=30.0 / 25.0))
    assert labels.max() >= 5


def test_segment_array_refuses_channels_the_image_lacks():
    image = np.zeros((2, 32, 32), np.uint16)
    message = "channels: an array's channels are indices 0 to 1; got [2]"
    with pytest.raises(ValueError, match=re.escape(message)):
        segment_array(image, SegmentationConfig(channels=(0, 2)))
    with pytest.raises(ValueError, match=re.escape("indices 0 to 1; got ['dna']")):
        segment_array(image, SegmentationConfig(channels=("dna",)))
    with pytest.raises(ValueError, match=re.escape("indices 0 to 0; got [1]")):
        segment_array(image[0], SegmentationConfig(channels=(1,)))
    with pytest.raises(ValueError, match=r"image must be \(c, y, x\) or \(y, x\)"):
        segment_array(np.zeros(5, np.uint16))

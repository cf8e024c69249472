"""Per-channel flows on the network lattice and Flow Averaging (structfree_dask.pipeline.flows)."""

from __future__ import annotations

import numpy as np
import pytest
from cellpose import transforms

from structfree_dask.pipeline import flows
from structfree_dask.pipeline.flows import (
    FLOW_DTYPE,
    FlowContribution,
    assemble_flows,
    average_flows,
    region_contribution,
    render_rescaled,
    resample_to_original,
    taper_mask,
)
from structfree_dask.pipeline.tiling import NET_TILE, FieldGeometry, to_original, to_rescaled

#: float16 sums of taper-weighted outputs: about three significant digits
F16 = {"rtol": 2e-3, "atol": 2e-3}


def passthrough(tiles: np.ndarray) -> np.ndarray:
    """A network whose dY, dX and cell probability are the tile, twice it and minus it."""
    return np.stack([tiles, 2 * tiles, -tiles], axis=1)


def ramps(shape: tuple[int, int]) -> np.ndarray:
    """(2, y, x) float32: the row index and the column index."""
    yy, xx = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return np.stack([yy, xx]).astype(np.float32)


def all_flows(image, geometry, predict, separate=False):
    """The assembled flows of every region's window, as the engine computes them."""
    cons = {r: region_contribution(image, (0, 0), geometry, r, predict, separate=separate)
            for r in geometry.regions()}
    out = {}
    for r in geometry.regions():
        window = geometry.window(r)
        box = geometry.rescaled_window(window)
        out[r] = (window, box, assemble_flows([cons[o] for o in geometry.contributors(r)], box))
    return out


# ---------------------------------------------------------------------------- taper mask


@pytest.mark.parametrize("size", [NET_TILE, 64])
def test_taper_mask_is_cellposes_in_float32(size):
    mask = taper_mask(size)
    assert mask.shape == (size, size) and mask.dtype == FLOW_DTYPE
    np.testing.assert_array_equal(mask, transforms._taper_mask(ly=size, lx=size)
                                  .astype(np.float32))
    assert (mask > 0).all() and mask.max() <= 1.0
    np.testing.assert_array_equal(mask, mask.T)
    np.testing.assert_array_equal(mask, mask[::-1, ::-1])
    assert mask[size // 2, size // 2] == mask.max() and mask[0, 0] == mask.min()


def test_taper_mask_of_a_network_tile_fades_to_the_edges():
    mask = taper_mask()
    assert mask.shape == (NET_TILE, NET_TILE)
    assert mask[112, 112] > 0.99 and mask[0, 0] < 0.01 and mask[0, 112] < 0.1
    assert (np.diff(mask[112, :112]) >= 0).all()  # rising towards the centre


# ---------------------------------------------------------------------------- rendering


def test_render_rescaled_identity_copies_the_window_and_zeros_outside_the_field():
    rng = np.random.default_rng(0)
    field = rng.random((2, 100, 80), dtype=np.float32)
    g = FieldGeometry((100, 80), tile_size=64, halo=8)
    assert g.is_identity
    out = render_rescaled(field[:, 30:, 20:], (30, 20), (40, 120, 25, 70), g)
    assert out.shape == (2, 80, 45) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :60], field[:, 40:100, 25:70])
    assert not out[:, 60:].any()  # rows 100..119 are beyond the field
    # a box that misses the field altogether
    assert not render_rescaled(field, (0, 0), (-30, -5, 0, 10), g).any()
    assert render_rescaled(field, (0, 0), (-30, -5, 0, 10), g).shape == (2, 25, 10)


def test_render_rescaled_interpolates_bilinearly_at_the_rescaled_pixel_centres():
    shape = (150, 130)
    g = FieldGeometry(shape, tile_size=512, halo=40, rescale=1.5)
    assert not g.is_identity and g.rescaled_shape == (225, 195)
    image = ramps(shape)
    box = g.tiles_box((0, 0))
    out = render_rescaled(image, (0, 0), box, g)
    y0, y1, x0, x1 = box
    assert out.shape == (2, y1 - y0, x1 - x0)
    ry, rx = g.rescaled_shape
    rows = np.clip(to_original(np.arange(ry), 1.5), 0, shape[0] - 1)
    cols = np.clip(to_original(np.arange(rx), 1.5), 0, shape[1] - 1)
    inside = out[:, -y0 : ry - y0, -x0 : rx - x0]
    # a linear ramp is reproduced exactly by bilinear interpolation
    np.testing.assert_allclose(inside[0], np.broadcast_to(rows[:, None], (ry, rx)), atol=1e-4)
    np.testing.assert_allclose(inside[1], np.broadcast_to(cols[None, :], (ry, rx)), atol=1e-4)
    assert not out[:, : -y0].any() and not out[:, ry - y0 :].any()
    assert not out[:, :, : -x0].any() and not out[:, :, rx - x0 :].any()


def test_render_rescaled_from_the_source_window_alone_equals_from_the_whole_field():
    rng = np.random.default_rng(2)
    shape = (200, 170)
    field = rng.random((2, *shape), dtype=np.float32)
    for rescale in (1.0, 0.7, 1.9):
        g = FieldGeometry(shape, tile_size=64, halo=16, rescale=rescale)
        ry, rx = g.rescaled_shape
        box = (ry // 3, ry // 3 + 50, rx // 4, rx // 4 + 60)
        sy0, sy1, sx0, sx1 = g.source_window(box)
        part = render_rescaled(field[:, sy0:sy1, sx0:sx1], (sy0, sx0), box, g)
        np.testing.assert_array_equal(part, render_rescaled(field, (0, 0), box, g))


# ---------------------------------------------------------------------------- contributions


def test_region_contribution_sums_taper_weighted_outputs_of_its_own_tiles():
    rng = np.random.default_rng(4)
    image = rng.random((2, 300, 260), dtype=np.float32)
    g = FieldGeometry((300, 260), tile_size=512, halo=40)
    con = region_contribution(image, (0, 0), g, (0, 0), passthrough)
    assert isinstance(con, FlowContribution) and not con.separate
    assert con.box == g.tiles_box((0, 0)) and con.tiles == tuple(g.owned_tiles((0, 0)))
    assert con.n_channels == 2 and con.acc.dtype == np.float16
    y0, y1, x0, x1 = con.box
    assert con.acc.shape == (3, y1 - y0, x1 - x0)
    # by hand: every lattice tile of the rendered field, each channel, times the taper
    rendered = render_rescaled(image, (0, 0), con.box, g)
    expected = np.zeros(con.acc.shape, np.float32)
    for ty, tx in con.tiles:
        sl = (slice(ty - y0, ty - y0 + NET_TILE), slice(tx - x0, tx - x0 + NET_TILE))
        for k in range(2):
            expected[(slice(None), *sl)] += passthrough(rendered[k][sl][None])[0] * taper_mask()
    np.testing.assert_allclose(con.acc.astype(np.float32), expected, **F16)
    per_channel = region_contribution(image, (0, 0), g, (0, 0), passthrough, separate=True)
    assert per_channel.separate and per_channel.acc.shape == (2, *con.acc.shape)
    np.testing.assert_allclose(per_channel.acc.astype(np.float32).sum(0), expected, **F16)


def test_region_contribution_is_none_for_a_region_that_owns_no_tile():
    g = FieldGeometry((600, 500), tile_size=256, halo=40)
    empty = [r for r in g.regions() if g.tiles_box(r) is None]
    assert empty  # the last row of regions: the lattice's last tile starts above it
    image = np.ones((1, 600, 500), np.float32)
    for r in empty:
        assert region_contribution(image, (0, 0), g, r, passthrough) is None


def test_region_contribution_same_in_any_number_of_network_calls(monkeypatch):
    """Tiles go to the network a few at a time; the sums do not depend on how many."""
    rng = np.random.default_rng(0)
    image = rng.random((2, 700, 640), dtype=np.float32)
    geometry = FieldGeometry((700, 640), tile_size=512, halo=40)
    calls = []

    def predict(tiles):  # a deterministic stand-in for the network
        calls.append(len(tiles))
        return np.stack([tiles * 0.5, tiles - 0.25, np.sin(tiles)], axis=1)

    def run(chunk, separate):
        monkeypatch.setattr(flows, "PREDICT_CHUNK", chunk)
        calls.clear()
        out = flows.region_contribution(image, (0, 0), geometry, (0, 0), predict,
                                        separate=separate)
        return out, list(calls)

    n_tiles = len(geometry.owned_tiles((0, 0)))
    assert n_tiles > 3
    for separate in (False, True):
        whole, one_call = run(10_000, separate)
        parts, many_calls = run(3, separate)
        assert one_call == [2 * n_tiles] and len(many_calls) == -(-n_tiles // 3)
        assert max(many_calls) == 6 and sum(many_calls) == 2 * n_tiles
        assert parts.box == whole.box and parts.tiles == whole.tiles
        assert np.array_equal(parts.acc, whole.acc)  # bitwise


# ---------------------------------------------------------------------------- assembling


def test_assembled_flows_equal_cellpose_average_tiles_on_the_same_tile_outputs():
    """One channel: tiles, taper and averaging as cellpose's make_tiles + average_tiles."""
    rng = np.random.default_rng(5)
    shape = (300, 420)
    image = rng.random((1, *shape), dtype=np.float32)

    def net(tiles):  # the output depends on the whole tile, not on each pixel alone
        m = tiles.mean(axis=(1, 2))[:, None, None]
        return np.stack([np.sin(3 * tiles) + m, tiles * m, np.cos(tiles) - m], axis=1)

    g = FieldGeometry(shape, tile_size=1024, halo=0)
    ours = assemble_flows([region_contribution(image, (0, 0), g, (0, 0), net)],
                          (0, shape[0], 0, shape[1]))
    py1, py2, px1, px2 = transforms.get_pad_yx(*shape)
    padded = np.pad(image, ((0, 0), (py1, py2), (px1, px2)))
    tiles, ysub, xsub, ly, lx = transforms.make_tiles(padded, bsize=NET_TILE, tile_overlap=0.1)
    y = net(tiles.reshape(-1, NET_TILE, NET_TILE).astype(np.float32))
    theirs = transforms.average_tiles(y, ysub, xsub, ly, lx)[:, py1 : py1 + shape[0],
                                                             px1 : px1 + shape[1]]
    assert ours.shape == theirs.shape == (3, *shape) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, **F16)


@pytest.mark.parametrize(("shape", "tile"), [((300, 260), 512), ((600, 500), 256),
                                             ((700, 640), 200)])
def test_flow_averaging_of_a_passthrough_network_gives_the_channel_mean(shape, tile):
    """Averaged over tiles and channels, the pass-through outputs are the mean image."""
    rng = np.random.default_rng(6)
    image = rng.random((3, *shape), dtype=np.float32)
    g = FieldGeometry(shape, tile_size=tile, halo=40)
    for window, box, fl in all_flows(image, g, passthrough).values():
        assert box == window and fl.shape == (3, box[1] - box[0], box[3] - box[2])
        assert fl.dtype == np.float32
        mean = image[:, box[0] : box[1], box[2] : box[3]].mean(0)
        np.testing.assert_allclose(fl, [mean, 2 * mean, -mean], **F16)


def test_separate_contributions_assemble_to_per_channel_flows_and_their_average_is_fa():
    rng = np.random.default_rng(7)
    image = rng.random((2, 600, 500), dtype=np.float32)
    g = FieldGeometry((600, 500), tile_size=256, halo=40)
    fa = all_flows(image, g, passthrough)
    per_channel = all_flows(image, g, passthrough, separate=True)
    for r, (_, box, fl) in per_channel.items():
        assert fl.shape == (2, 3, box[1] - box[0], box[3] - box[2])
        part = image[:, box[0] : box[1], box[2] : box[3]]
        np.testing.assert_allclose(fl[:, 0], part, **F16)
        np.testing.assert_allclose(fl[:, 2], -part, **F16)
        np.testing.assert_allclose(average_flows(fl), fa[r][2], **F16)


def test_assemble_flows_refuses_a_box_the_tiles_do_not_cover():
    image = np.ones((1, 300, 260), np.float32)
    g = FieldGeometry((300, 260), tile_size=512, halo=40)
    con = region_contribution(image, (0, 0), g, (0, 0), passthrough)
    with pytest.raises(RuntimeError, match=r"flows of box \(0, 10, 0, 10\) are not covered"):
        assemble_flows([None], (0, 10, 0, 10))
    with pytest.raises(RuntimeError, match=r"flows of box \(0, 10, 0, 10\) are not covered"):
        assemble_flows([], (0, 10, 0, 10))
    y0, y1, x0, x1 = con.box
    with pytest.raises(RuntimeError, match="not covered by the network tiles"):
        assemble_flows([con], (0, 10, x1, x1 + 10))  # beside the tiles
    ok = assemble_flows([None, con, None], (0, 10, 0, 10))  # None entries are skipped
    np.testing.assert_allclose(ok, np.broadcast_to([[[1.0]], [[2.0]], [[-1.0]]], (3, 10, 10)),
                               **F16)


def test_flow_sums_kept_on_disk_assemble_bitwise_the_same(tmp_path):
    """The engine keeps waiting flow sums in DiskArray files: same flows, files removed."""
    import gc
    import pickle
    from dataclasses import replace

    from structfree_dask.runtime.scratch import DiskArray

    rng = np.random.default_rng(1)
    image = rng.random((2, 600, 500), dtype=np.float32)
    geometry = FieldGeometry((600, 500), tile_size=256, halo=40)

    def predict(tiles):
        return np.stack([tiles * 0.5, tiles - 0.25, np.cos(tiles)], axis=1)

    cons = {r: region_contribution(image, (0, 0), geometry, r, predict)
            for r in geometry.regions()}
    on_disk = {r: c if c is None else replace(c, acc=DiskArray(c.acc, str(tmp_path)))
               for r, c in cons.items()}
    assert sum(c is None for c in cons.values()) < len(cons)
    n_files = sum(c is not None for c in cons.values())
    assert len(list(tmp_path.glob("structfree-*.npy"))) == n_files
    for r in geometry.regions():
        box = geometry.rescaled_window(geometry.window(r))
        ref = assemble_flows([cons[o] for o in geometry.contributors(r)], box)
        got = assemble_flows([on_disk[o] for o in geometry.contributors(r)], box)
        assert np.array_equal(ref, got)  # bitwise
    # sent to another process it is the plain array
    moved = pickle.loads(pickle.dumps(on_disk[(0, 0)].acc))
    assert isinstance(moved, np.ndarray) and np.array_equal(moved, cons[(0, 0)].acc)
    assert moved.dtype == np.float16
    # released (as Dask releases a result no task needs any more): the file goes
    del on_disk, moved
    gc.collect()
    assert list(tmp_path.glob("structfree-*.npy")) == []


# ---------------------------------------------------------------------------- resampling


def test_resample_to_original_identity_is_the_window_of_the_box():
    rng = np.random.default_rng(8)
    fl = rng.random((3, 50, 60), dtype=np.float32)
    g = FieldGeometry((200, 200), tile_size=64, halo=8)
    rbox = (100, 150, 40, 100)
    out = resample_to_original(fl, rbox, (110, 130, 50, 95), g)
    np.testing.assert_array_equal(out, fl[:, 10:30, 10:55])
    stacked = np.stack([fl, 2 * fl])
    np.testing.assert_array_equal(resample_to_original(stacked, rbox, (110, 130, 50, 95), g),
                                  stacked[..., 10:30, 10:55])


@pytest.mark.parametrize("rescale", [1.5, 0.6])
def test_resample_to_original_interpolates_at_the_original_pixel_centres(rescale):
    shape = (120, 90)
    g = FieldGeometry(shape, tile_size=64, halo=10, rescale=rescale)
    window = g.window((1, 0))
    rbox = g.rescaled_window(window)
    ry, rx = g.rescaled_shape
    sy, sx = g.scale
    yy, xx = np.meshgrid(np.arange(rbox[0], rbox[1]), np.arange(rbox[2], rbox[3]),
                         indexing="ij")
    fl = np.stack([yy, xx, yy + xx]).astype(np.float32)  # rescaled coordinates as flows
    out = resample_to_original(fl, rbox, window, g)
    h, w = window[1] - window[0], window[3] - window[2]
    assert out.shape == (3, h, w) and out.dtype == np.float32
    rows = np.clip(to_rescaled(np.arange(window[0], window[1]), sy), 0, ry - 1)
    cols = np.clip(to_rescaled(np.arange(window[2], window[3]), sx), 0, rx - 1)
    np.testing.assert_allclose(out[0], np.broadcast_to(rows[:, None], (h, w)), atol=1e-4)
    np.testing.assert_allclose(out[1], np.broadcast_to(cols[None, :], (h, w)), atol=1e-4)
    np.testing.assert_allclose(out[2], out[0] + out[1], atol=1e-4)
    per_channel = resample_to_original(np.stack([fl, -fl]), rbox, window, g)
    assert per_channel.shape == (2, 3, h, w)
    np.testing.assert_array_equal(per_channel[1], -out)


def test_render_then_resample_reproduces_a_smooth_field():
    """Up to the network and back: a linear field comes back in the interior."""
    shape = (150, 130)
    image = ramps(shape)[:1] * 0.01
    g = FieldGeometry(shape, tile_size=512, halo=0, rescale=1.5)
    con = region_contribution(image, (0, 0), g, (0, 0), passthrough)
    window = g.window((0, 0))
    rbox = g.rescaled_window(window)
    back = resample_to_original(assemble_flows([con], rbox), rbox, window, g)
    np.testing.assert_allclose(back[0, 2:-2, 2:-2], image[0, 2:-2, 2:-2], atol=2e-3)
    np.testing.assert_allclose(back[2, 2:-2, 2:-2], -image[0, 2:-2, 2:-2], atol=2e-3)


# ---------------------------------------------------------------------------- averaging


def test_average_flows_is_the_float32_mean_over_the_channel_axis():
    rng = np.random.default_rng(9)
    f = rng.normal(size=(4, 3, 16, 12))
    out = average_flows(f)
    assert out.shape == (3, 16, 12) and out.dtype == np.float32
    np.testing.assert_allclose(out, f.mean(axis=0), rtol=1e-5, atol=1e-6)
    moved = average_flows(np.moveaxis(f, 0, 1), axis=1)
    np.testing.assert_array_equal(moved, out)
    assert average_flows([[1, 2], [3, 6]]).tolist() == [2.0, 4.0]
    one = f[:1]
    np.testing.assert_array_equal(average_flows(one), one[0].astype(np.float32))

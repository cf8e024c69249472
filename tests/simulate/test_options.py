"""Tests of structfree_dask.simulate.options: imaging modes, time step, argument checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from structfree_dask.simulate import (
    IMAGING_MODES,
    PRESETS,
    TIME_INTERVAL_H,
    CellLinePreset,
    ChannelSpec,
    SimulatedField,
    simulate_field,
)
from structfree_dask.simulate.options import (
    MAX_MOTION_SCALE,
    MODES,
    ImagingMode,
    check_int,
    child_rng,
    resolve_defocus_p,
    resolve_mode,
    resolve_motion_scale,
    resolve_preset,
    resolve_seed,
    resolve_size,
    resolve_stage_jitter,
)

# ------------------------------------------------------------------ imaging modes


def test_imaging_modes_and_time_step() -> None:
    assert IMAGING_MODES == ("confocal", "widefield") == tuple(MODES)
    assert TIME_INTERVAL_H == 3.0
    assert all(isinstance(m, ImagingMode) for m in MODES.values())
    conf, wide = MODES["confocal"], MODES["widefield"]
    assert conf.pixel_size_um == 1.24 and wide.pixel_size_um == 0.32
    # widefield: fewer photons per pixel, more haze, stronger vignetting
    assert wide.photon_scale < conf.photon_scale
    assert wide.haze_weight > conf.haze_weight and wide.vignetting > conf.vignetting
    with pytest.raises(dataclasses.FrozenInstanceError):
        conf.pixel_size_um = 1.0  # type: ignore[misc]


def _snr(f: SimulatedField) -> float:
    values = []
    for c in range(f.image.shape[1]):
        img = f.image[0, c].astype(np.float64)
        bg = img[f.cyto[0] == 0]
        values.append((np.median(img[f.cyto[0] > 0]) - np.median(bg)) / bg.std())
    return float(np.median(values))


def test_widefield_has_larger_cells_and_lower_snr() -> None:
    conf = simulate_field("CL1", size=256, timepoints=1, seed=4)
    wide = simulate_field("CL1", size=384, timepoints=1, seed=4, mode="widefield")
    assert wide.pixel_size_um == pytest.approx(0.32)

    def median_area(f: SimulatedField) -> float:
        areas = np.bincount(f.cyto[0].ravel())[1:]
        return float(np.median(areas[areas > 0]))

    ratio = np.sqrt(median_area(wide) / median_area(conf))
    assert 2.5 < ratio < 6.0
    assert _snr(wide) < 0.7 * _snr(conf)


def test_resolve_mode() -> None:
    assert resolve_mode("confocal") is MODES["confocal"]
    assert resolve_mode("widefield") is MODES["widefield"]
    with pytest.raises(ValueError, match=r"unknown mode 'Confocal'; expected one of "
                                         r"'confocal', 'widefield'"):
        resolve_mode("Confocal")
    with pytest.raises(TypeError, match=r"mode must be a string.*got NoneType None"):
        resolve_mode(None)  # type: ignore[arg-type]


# ------------------------------------------------------------------ argument checks


def test_resolve_preset() -> None:
    assert resolve_preset("CL3") is PRESETS["CL3"]
    own = CellLinePreset(name="own", description="", channels=(ChannelSpec("a", "er"),))
    assert resolve_preset(own) is own
    with pytest.raises(ValueError, match=r"unknown cell line 'cl1'; expected one of 'CL1', "):
        resolve_preset("cl1")
    with pytest.raises(TypeError, match=r"preset must be a CellLinePreset or one of "
                                        r"\['CL1', .*\], got NoneType"):
        resolve_preset(None)  # type: ignore[arg-type]


def test_check_int() -> None:
    assert check_int("n", 5, 1) == 5
    assert check_int("n", np.int64(7), 0) == 7 and type(check_int("n", np.int64(7), 0)) is int
    assert check_int("n", 0, 0) == 0
    with pytest.raises(ValueError, match=r"n must be >= 1, got 0"):
        check_int("n", 0, 1)
    with pytest.raises(TypeError, match=r"n must be an int >= 1, got bool True"):
        check_int("n", True, 1)
    with pytest.raises(TypeError, match=r"n must be an int >= 1, got float 2\.0"):
        check_int("n", 2.0, 1)


def test_resolve_size() -> None:
    assert resolve_size(64) == (64, 64)
    assert resolve_size((64, 100)) == (64, 100)
    assert resolve_size([80, 96]) == (80, 96)
    with pytest.raises(ValueError, match=r"size\[0\] must be >= 64, got 63"):
        resolve_size((63, 100))
    with pytest.raises(ValueError, match=r"size must be an int or a \(y, x\) pair, got 1 values"):
        resolve_size((64,))


def test_resolve_seed() -> None:
    ss = np.random.SeedSequence(9)
    assert resolve_seed(ss) is ss
    got = resolve_seed(np.uint8(4))
    assert isinstance(got, np.random.SeedSequence) and got.entropy == 4
    assert resolve_seed(0).entropy == 0
    with pytest.raises(ValueError, match=r"seed must be a non-negative int, got -3"):
        resolve_seed(-3)
    with pytest.raises(TypeError, match=r"seed must be a non-negative int or "
                                        r"numpy\.random\.SeedSequence, got bool"):
        resolve_seed(False)  # type: ignore[arg-type]


def test_child_rng_is_a_deterministic_independent_stream() -> None:
    ss = np.random.SeedSequence(11)
    a = child_rng(ss, 2, 5).random(4)
    b = child_rng(ss, 2, 5).random(4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, child_rng(ss, 2, 6).random(4))
    assert not np.array_equal(child_rng(ss).random(4), a)
    assert ss.n_children_spawned == 0  # ss is not mutated
    # a child of a child appends to the spawn key
    nested = np.random.SeedSequence(entropy=11, spawn_key=(2,))
    assert np.array_equal(child_rng(nested, 5).random(4), a)
    expected = np.random.default_rng(np.random.SeedSequence(entropy=11, spawn_key=(2, 5)))
    assert np.array_equal(expected.random(4), a)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"preset": "CL9"}, ValueError, r"unknown cell line 'CL9'.*'CL1'.*'CL5'"),
        ({"preset": 3}, TypeError, r"CellLinePreset"),
        ({"size": 32}, ValueError, r"size must be >= 64, got 32"),
        ({"size": (64, 10)}, ValueError, r"size\[1\] must be >= 64, got 10"),
        ({"size": (64, 64, 64)}, ValueError, r"\(y, x\) pair, got 3"),
        ({"size": 64.0}, TypeError, r"size must be an int"),
        ({"timepoints": 0}, ValueError, r"timepoints must be >= 1, got 0"),
        ({"seed": -1}, ValueError, r"non-negative"),
        ({"seed": "x"}, TypeError, r"seed must be"),
        ({"mode": "spinning"}, ValueError, r"unknown mode 'spinning'.*'confocal'.*'widefield'"),
    ],
)
def test_bad_arguments_raise_helpful_errors(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    args: dict[str, object] = {"preset": "CL1", "size": 64, "timepoints": 1, "seed": 0}
    args.update(kwargs)
    preset = args.pop("preset")
    with pytest.raises(error, match=match):
        simulate_field(preset, **args)  # type: ignore[arg-type]


def test_resolve_stage_jitter() -> None:
    assert resolve_stage_jitter(0, (64, 64)) == 0
    assert resolve_stage_jitter(np.int64(15), (64, 64)) == 15  # at least 15 px on 64 px fields
    assert type(resolve_stage_jitter(np.int64(15), (64, 64))) is int
    assert resolve_stage_jitter(32, (64, 100)) == 32  # half the smaller side
    with pytest.raises(ValueError, match=r"stage_jitter_px must be <= 32 \(half the field's "
                                         r"smaller side\), got 33"):
        resolve_stage_jitter(33, (100, 64))
    with pytest.raises(ValueError, match=r"stage_jitter_px must be >= 0, got -2"):
        resolve_stage_jitter(-2, (64, 64))
    for bad in (1.0, "4", None, False):
        with pytest.raises(TypeError, match=r"stage_jitter_px must be an int >= 0"):
            resolve_stage_jitter(bad, (64, 64))


def test_resolve_defocus_p() -> None:
    assert resolve_defocus_p(0) == 0.0 and type(resolve_defocus_p(0)) is float
    assert resolve_defocus_p(np.float32(0.5)) == 0.5
    assert resolve_defocus_p(1) == 1.0
    for bad in (-0.01, 1.01, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"defocus_p must be in \[0, 1\], got "):
            resolve_defocus_p(bad)
    for bad in (True, "0.1", None, [0.1]):
        with pytest.raises(TypeError, match=r"defocus_p must be a number in \[0, 1\], got "):
            resolve_defocus_p(bad)


def test_resolve_motion_scale() -> None:
    assert MAX_MOTION_SCALE == 100.0
    assert resolve_motion_scale(1) == 1.0 and type(resolve_motion_scale(1)) is float
    assert resolve_motion_scale(0) == 0.0
    assert resolve_motion_scale(np.int64(100)) == 100.0
    for bad in (-1e-9, 100.5, float("nan"), float("-inf")):
        with pytest.raises(ValueError, match=r"motion_scale must be in \[0, 100\], got "):
            resolve_motion_scale(bad)
    for bad in (False, "2", None):
        with pytest.raises(TypeError, match=r"motion_scale must be a number in \[0, 100\]"):
            resolve_motion_scale(bad)

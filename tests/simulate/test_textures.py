"""Tests of structfree_dask.simulate.textures: spectral helpers and texture fields."""

from __future__ import annotations

import math

import numpy as np
import pytest

from structfree_dask.simulate.textures import (
    FFT_WORKERS,
    Textures,
    freq2,
    gauss_tf,
    random_field,
)

_NAMES = ("smooth", "fine", "blob", "reticular", "filament", "puncta")


def _neighbour_correlation(a: np.ndarray) -> float:
    return float(np.corrcoef(a[:, :-1].ravel(), a[:, 1:].ravel())[0, 1])


# ------------------------------------------------------------------ spectral helpers


def test_fft_workers_is_between_one_and_four() -> None:
    assert isinstance(FFT_WORKERS, int) and 1 <= FFT_WORKERS <= 4


def test_freq2_matches_the_rfft2_layout() -> None:
    f2 = freq2(4, 6)
    assert f2.shape == (4, 4) and f2.dtype == np.float32
    assert f2[0, 0] == 0.0
    assert f2[0, 1] == pytest.approx((1 / 6) ** 2)
    assert f2[1, 0] == pytest.approx(0.25**2) and f2[3, 0] == f2[1, 0]  # negative frequency
    assert f2[2, 3] == pytest.approx(0.5**2 + 0.5**2)  # both Nyquist frequencies
    assert f2[1, 1] == pytest.approx(0.25**2 + (1 / 6) ** 2)
    assert freq2(64, 81).shape == np.fft.rfft2(np.zeros((64, 81))).shape


def test_gauss_tf_is_the_gaussian_blur_transfer_function() -> None:
    f2 = freq2(32, 32)
    tf = gauss_tf(f2, 2.0)
    assert tf.dtype == np.float32 and tf.shape == f2.shape
    assert tf[0, 0] == 1.0
    np.testing.assert_allclose(tf, np.exp(-2 * math.pi**2 * 4.0 * f2), rtol=1e-5)
    assert np.all(gauss_tf(f2, 0.0) == 1.0)
    assert np.all(gauss_tf(f2, 3.0) <= tf)  # wider blur: lower transfer everywhere
    # blurring a random image through the transfer function matches a Gaussian filter's sd drop
    img = np.random.default_rng(0).standard_normal((32, 32))
    blurred = np.fft.irfft2(np.fft.rfft2(img) * gauss_tf(freq2(32, 32), 1.0), s=(32, 32))
    assert blurred.std() < 0.5 * img.std()


def test_random_field_has_zero_mean_and_unit_variance() -> None:
    f2 = freq2(64, 96)
    field = random_field(np.random.default_rng(0), f2, gauss_tf(f2, 2.0), (64, 96))
    assert field.shape == (64, 96) and field.dtype == np.float32
    assert abs(float(field.mean())) < 1e-5  # the zero frequency is removed
    assert float(field[::4, ::4].std()) == pytest.approx(1.0, rel=1e-5)


def test_random_field_is_seeded() -> None:
    f2 = freq2(32, 32)
    tf = gauss_tf(f2, 1.5)
    a = random_field(np.random.default_rng(1), f2, tf, (32, 32))
    b = random_field(np.random.default_rng(1), f2, tf, (32, 32))
    c = random_field(np.random.default_rng(2), f2, tf, (32, 32))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_random_field_smoothness_follows_the_transfer_function() -> None:
    f2 = freq2(128, 128)
    rough = random_field(np.random.default_rng(0), f2, gauss_tf(f2, 0.5), (128, 128))
    smooth = random_field(np.random.default_rng(0), f2, gauss_tf(f2, 4.0), (128, 128))
    assert _neighbour_correlation(smooth) > 0.95
    assert _neighbour_correlation(rough) < _neighbour_correlation(smooth) - 0.2


def test_random_field_of_a_zero_transfer_function_is_zero_not_nan() -> None:
    f2 = freq2(16, 16)
    out = random_field(np.random.default_rng(0), f2, np.zeros_like(f2), (16, 16))
    assert np.all(out == 0.0)


# ------------------------------------------------------------------ Textures


def _textures(seed: int = 0, shape: tuple[int, int] = (64, 80), px_um: float = 1.24) -> Textures:
    return Textures(np.random.default_rng(seed), freq2(*shape), px_um, shape)


def test_textures_have_the_field_shape_and_dtype() -> None:
    tex = _textures()
    for name in _NAMES:
        out = tex.get(name)
        assert out.shape == (64, 80) and out.dtype == np.float32, name
        assert np.all(np.isfinite(out)), name


def test_texture_value_ranges() -> None:
    tex = _textures()
    # smooth and fine are zero-mean Gaussian fields of unit variance
    for name in ("smooth", "fine"):
        out = tex.get(name)
        assert abs(float(out.mean())) < 1e-4 and out.min() < 0 < out.max(), name
        assert float(out[::4, ::4].std()) == pytest.approx(1.0, rel=1e-4), name
    blob = tex.get("blob")
    assert blob.min() == 0.0 and blob.max() <= 1.0 and 0 < (blob > 0).mean() < 0.5
    for name in ("reticular", "filament"):
        out = tex.get(name)
        assert out.min() >= 0.0 and out.max() <= 1.0, name
    puncta = tex.get("puncta")
    assert puncta.min() == 0.0 and (puncta == 0).mean() > 0.5  # sparse bright spots


def test_textures_are_cached_and_seeded() -> None:
    a, b, c = _textures(3), _textures(3), _textures(4)
    first = a.get("fine")
    assert a.get("fine") is first  # generated once
    assert np.array_equal(first, b.get("fine"))
    assert not np.array_equal(first, c.get("fine"))
    # each texture draws from the shared generator on first use: different names differ
    assert not np.array_equal(a.get("smooth"), first)
    assert np.array_equal(a.get("smooth"), b.get("smooth"))


def test_smooth_texture_is_smoother_than_fine() -> None:
    tex = _textures(shape=(128, 128))
    assert _neighbour_correlation(tex.get("smooth")) > _neighbour_correlation(tex.get("fine"))


def test_texture_scale_follows_the_pixel_size() -> None:
    # at a smaller pixel size the same structures span more pixels: smoother per pixel
    coarse = _textures(shape=(128, 128), px_um=1.24).get("fine")
    fine_px = _textures(shape=(128, 128), px_um=0.32).get("fine")
    assert _neighbour_correlation(fine_px) > _neighbour_correlation(coarse) + 0.1


def test_unknown_texture_raises_key_error() -> None:
    with pytest.raises(KeyError, match="wood"):
        _textures().get("wood")

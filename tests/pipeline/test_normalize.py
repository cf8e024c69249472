"""Per-field percentile normalization (structfree_dask.pipeline.normalize)."""

from __future__ import annotations

import numpy as np
import pytest
from cellpose.transforms import normalize99

from structfree_dask.pipeline.normalize import normalize, percentile_bounds, sample_stride


def test_normalization_matches_cellpose_normalize99():
    rng = np.random.default_rng(0)
    img = rng.gamma(2.0, 100.0, (300, 300)).astype(np.float32)
    ours = normalize(img, *percentile_bounds(img))
    np.testing.assert_allclose(ours, normalize99(img), rtol=1e-5, atol=1e-5)
    # tiles of one field share the field's statistics
    lo, hi = percentile_bounds(img)
    np.testing.assert_array_equal(normalize(img[:100, :100], lo, hi), ours[:100, :100])
    assert not normalize(np.zeros((4, 4)), 0.0, 0.0).any()


@pytest.mark.parametrize(("lower", "upper"), [(1.0, 99.0), (0.0, 100.0), (5.0, 95.5)])
def test_uint16_channel_matches_cellpose_normalize99_at_any_percentiles(lower, upper):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 4096, (120, 90)).astype(np.uint16)
    ours = normalize(img, *percentile_bounds(img, lower=lower, upper=upper))
    assert ours.dtype == np.float32 and ours.shape == img.shape
    np.testing.assert_allclose(ours, normalize99(img, lower=lower, upper=upper),
                               rtol=1e-5, atol=1e-6)


def test_percentile_bounds_are_numpy_percentiles_as_python_floats():
    rng = np.random.default_rng(1)
    sample = rng.normal(50.0, 10.0, (64, 64))
    lo, hi = percentile_bounds(sample, lower=2.0, upper=97.0)
    assert type(lo) is float and type(hi) is float
    assert (lo, hi) == tuple(np.percentile(sample.ravel(), [2.0, 97.0]))
    assert percentile_bounds(np.arange(101)) == (1.0, 99.0)
    # any shape: the pixels are taken as one sample
    assert percentile_bounds(sample) == percentile_bounds(sample.ravel()[::-1])


@pytest.mark.parametrize(("bad", "count"), [(np.nan, 1), (np.inf, 1), (-np.inf, 1)])
def test_percentile_bounds_refuse_non_finite_pixels(bad, count):
    sample = np.ones((5, 5))
    sample[2, 3] = bad
    with pytest.raises(ValueError, match=rf"^{count} NaN or infinite pixel value\(s\)$"):
        percentile_bounds(sample)
    sample[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"^2 NaN or infinite"):
        percentile_bounds(sample)


def test_normalize_maps_bounds_to_0_and_1_without_clipping_or_touching_input():
    x = np.array([[0.0, 10.0, 20.0], [30.0, 40.0, 50.0]], dtype=np.float32)
    before = x.copy()
    out = normalize(x, 10.0, 40.0)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, (before - 10.0) / 30.0, rtol=1e-6)
    assert out[0, 1] == 0.0 and out[1, 1] == 1.0
    assert out.min() < 0 and out.max() > 1  # outside the bounds: not clipped
    np.testing.assert_array_equal(x, before)  # the input is not changed in place
    assert out is not x


@pytest.mark.parametrize(("lo", "hi"), [(7.0, 7.0), (9.0, 3.0)])
def test_normalize_flat_or_inverted_span_gives_zeros(lo, hi):
    out = normalize(np.array([1, 5, 9], dtype=np.uint16), lo, hi)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.zeros(3, np.float32))


@pytest.mark.parametrize(("shape", "max_pixels", "expected"), [
    ((1024, 1024), 1 << 22, 1),
    ((2048, 2048), 1 << 22, 1),
    ((2049, 2048), 1 << 22, 2),
    ((8192, 8192), 1 << 22, 4),
    ((100, 100), 100, 10),
    ((100, 101), 100, 11),
    ((1, 1), 1, 1),
])
def test_sample_stride_values(shape, max_pixels, expected):
    assert sample_stride(shape, max_pixels) == expected


@pytest.mark.parametrize("shape", [(300, 500), (1000, 17), (4097, 4095), (12345, 6789)])
@pytest.mark.parametrize("max_pixels", [1000, 65536, 1 << 22])
def test_sample_stride_is_the_smallest_that_samples_at_most_max_pixels(shape, max_pixels):
    s = sample_stride(shape, max_pixels)
    assert isinstance(s, int) and s >= 1
    n = shape[0] * shape[1]
    assert n / s**2 <= max_pixels
    assert s == 1 or n / (s - 1) ** 2 > max_pixels  # the smallest such stride


@pytest.mark.parametrize("shape", [(2048, 2048), (2160, 2560), (5000, 5000), (8192, 8192)])
def test_sample_stride_subsample_of_a_large_field_fits_the_default_budget(shape):
    s = sample_stride(shape)
    sample = np.broadcast_to(np.float32(0), shape)[::s, ::s]
    assert sample.size <= 1 << 22
    if s > 1:  # one stride less would take too many pixels
        assert np.broadcast_to(np.float32(0), shape)[:: s - 1, :: s - 1].size > 1 << 22

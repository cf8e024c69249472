"""Training augmentations of (image, labels) pairs (zoo.training.augment)."""

from __future__ import annotations

import numpy as np
import pytest

from structfree_dask.zoo import AUGMENTATIONS, augment, augment_with_record


def _pair(size=48, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), np.int32)
    for k in range(1, 6):
        y, x = rng.integers(4, size - 12, 2)
        labels[y : y + 8, x : x + 8] = k
    return labels.astype(np.float32), labels


def test_augment_shapes_dtypes_determinism():
    image, labels = _pair()
    for seed in range(10):
        img, lab = augment(image, labels, np.random.default_rng(seed))
        assert img.shape == image.shape and lab.shape == labels.shape
        assert img.dtype == np.float32 and lab.dtype == np.int32
        img2, lab2 = augment(image, labels, np.random.default_rng(seed))
        assert np.array_equal(img, img2) and np.array_equal(lab, lab2)
    assert image.max() == 5  # inputs untouched


@pytest.mark.parametrize("name", ["scale", "rotate", "hflip", "vflip"])
def test_geometric_augmentations_move_labels_with_image(name):
    image, labels = _pair()
    img, lab = AUGMENTATIONS[name](image, labels, np.random.default_rng(1))
    assert set(np.unique(lab)) <= set(np.unique(labels))
    if name in ("hflip", "vflip"):
        assert np.array_equal(img, lab.astype(np.float32))  # exact
        axis = 1 if name == "hflip" else 0
        assert np.array_equal(lab, np.flip(labels, axis))
    else:  # image resampled bilinearly, labels nearest: they agree except at edges
        assert np.mean(np.rint(img) == lab) > 0.95
        assert not np.array_equal(lab, labels)


@pytest.mark.parametrize("name", ["gaussian_noise", "poisson_noise", "salt_and_pepper",
                                  "brightness"])
def test_intensity_augmentations_leave_labels(name):
    image, labels = _pair()
    img, lab = AUGMENTATIONS[name](image / 5, labels, np.random.default_rng(2))
    assert np.array_equal(lab, labels) and not np.array_equal(img, image / 5)


def test_each_augmentation_fires_half_the_time():
    image = np.zeros((8, 8), np.float32)
    labels = np.zeros((8, 8), np.int32)
    rng = np.random.default_rng(0)
    n = 2000
    counts = dict.fromkeys(AUGMENTATIONS, 0)
    for _ in range(n):
        for name in augment_with_record(image, labels, rng)[2]:
            counts[name] += 1
    for name, c in counts.items():
        assert abs(c / n - 0.5) < 0.05, (name, c)


def test_noise_statistics():
    aug = type("A", (), {k: staticmethod(v) for k, v in AUGMENTATIONS.items()})
    rng = np.random.default_rng(0)
    flat = np.full((256, 256), 0.5, np.float32)
    lab = np.zeros(flat.shape, np.int32)
    out, _ = aug.gaussian_noise(flat, lab, rng, sigma=0.08)
    assert abs(out.std() - 0.08) < 0.005 and abs(out.mean() - 0.5) < 0.005
    sigmas = [aug.gaussian_noise(flat[:64, :64], lab[:64, :64], rng)[0].std()
              for _ in range(300)]
    assert 0 <= min(sigmas) and max(sigmas) <= 0.11 and abs(np.mean(sigmas) - 0.05) < 0.01
    out, _ = aug.poisson_noise(flat, lab, rng, peak=40.0)
    assert abs(out.mean() - 0.5) < 0.01 and abs(out.var() - 0.5 / 40) < 0.0015
    out, _ = aug.salt_and_pepper(flat, lab, rng)
    changed = out != 0.5
    assert abs(changed.mean() - 0.05) < 0.005
    assert abs((out == 1).mean() - (out == 0).mean()) < 0.005
    shifts = [float(aug.brightness(flat[:2, :2], lab[:2, :2], rng)[0][0, 0] - 0.5)
              for _ in range(1000)]
    assert -0.1 <= min(shifts) and max(shifts) <= 0.1 and abs(np.mean(shifts)) < 0.01


def test_augment_errors():
    with pytest.raises(ValueError, match="same shape"):
        augment(np.zeros((4, 4), np.float32), np.zeros((4, 5), np.int32),
                np.random.default_rng())
    with pytest.raises(TypeError, match="float"):
        augment(np.zeros((4, 4), np.uint16), np.zeros((4, 4), np.int32),
                np.random.default_rng())

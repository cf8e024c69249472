"""Spectral helpers and the per-timepoint texture fields of the simulator.

:func:`freq2` (squared spatial frequencies of an ``rfft2`` spectrum), :func:`gauss_tf`
(Gaussian transfer function), :func:`random_field` (Gaussian random field) and
:class:`Textures` (lazily generated texture fields of one timepoint).
"""

from __future__ import annotations

import math
import os

import numpy as np
import numpy.typing as npt
import scipy.fft

__all__ = ["FFT_WORKERS", "Textures", "freq2", "gauss_tf", "random_field"]


FFT_WORKERS = max(1, min(4, os.cpu_count() or 1))


def freq2(h: int, w: int) -> npt.NDArray[np.float32]:
    """Squared spatial frequency (cycles/px) of every bin of an ``(h, w)`` rfft2."""
    fy = scipy.fft.fftfreq(h).astype(np.float32)
    fx = scipy.fft.rfftfreq(w).astype(np.float32)
    return fy[:, None] ** 2 + fx[None, :] ** 2


def gauss_tf(f2: npt.NDArray[np.float32], sigma_px: float) -> npt.NDArray[np.float32]:
    """Transfer function of a Gaussian blur of ``sigma_px`` at squared frequencies ``f2``."""
    return np.exp(np.float32(-2.0 * math.pi**2 * sigma_px**2) * f2)


def random_field(
    rng: np.random.Generator, f2: npt.NDArray[np.float32], tf: npt.NDArray[np.float32],
    shape: tuple[int, int],
) -> npt.NDArray[np.float32]:
    """Gaussian random field with transfer function ``tf``, zero mean, unit variance."""
    spec = np.empty(f2.shape, dtype=np.complex64)
    noise = rng.standard_normal((2, *f2.shape), dtype=np.float32)
    spec.real = noise[0] * tf
    spec.imag = noise[1] * tf
    spec[0, 0] = 0.0
    out = scipy.fft.irfft2(spec, s=shape, workers=FFT_WORKERS).astype(np.float32, copy=False)
    sd = float(out[::4, ::4].std())
    out *= np.float32(1.0 / sd if sd > 0 else 1.0)
    return out


class Textures:
    """Lazily generated per-timepoint texture fields (float32).

    ``smooth`` and ``fine`` are zero-mean, unit-variance fields (negative values included;
    the renderer uses them as ``1 + a * texture``); ``blob``, ``reticular``, ``filament``
    and ``puncta`` are in [0, inf).
    """

    def __init__(
        self, rng: np.random.Generator, f2: npt.NDArray[np.float32], px_um: float,
        shape: tuple[int, int],
    ) -> None:
        self._rng = rng
        self._f2 = f2
        self._px = px_um
        self._shape = shape
        self._cache: dict[str, npt.NDArray[np.float32]] = {}

    def _band(self, sigma_um: float) -> npt.NDArray[np.float32]:
        s = max(sigma_um / self._px, 0.25)
        tf = gauss_tf(self._f2, s) - gauss_tf(self._f2, 2.0 * s)
        return random_field(self._rng, self._f2, tf, self._shape)

    def get(self, name: str) -> npt.NDArray[np.float32]:
        """Return the texture ``name``, generated on first use."""
        if name in self._cache:
            return self._cache[name]
        if name == "smooth":
            out = random_field(
                self._rng, self._f2, gauss_tf(self._f2, max(2.5 / self._px, 0.5)), self._shape
            )
        elif name == "fine":
            out = self._band(0.6)
        elif name == "blob":
            out = np.clip(self._band(1.0) - 1.0, 0.0, 1.0)
        elif name == "reticular":
            b = self._band(0.8)
            out = np.exp(-((b / np.float32(0.6)) ** 2))
        elif name == "filament":
            b = self._band(0.5)
            out = np.exp(-((b / np.float32(0.45)) ** 2))
        elif name == "puncta":
            out = np.clip(self._band(0.4) - 0.8, 0.0, None) * np.float32(1.5)
        else:  # pragma: no cover - internal misuse
            raise KeyError(name)
        out = out.astype(np.float32, copy=False)
        self._cache[name] = out
        return out

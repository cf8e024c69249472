"""Imaging modes, the time step, and the checks of the simulator's arguments.

:data:`MODES` holds the optics and camera model of each imaging mode (:data:`IMAGING_MODES`
its names); :func:`resolve_preset`, :func:`resolve_size`, :func:`resolve_seed`,
:func:`resolve_mode`, :func:`resolve_stage_jitter`, :func:`resolve_defocus_p`,
:func:`resolve_motion_scale` and :func:`check_int` turn the arguments of
:func:`~structfree_dask.simulate.simulate_field` and
:func:`~structfree_dask.simulate.simulate_plate` into values or raise; :func:`child_rng`
gives the generator of one seeded child stream.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .presets import PRESETS, CellLinePreset

__all__ = [
    "IMAGING_MODES",
    "MODES",
    "TIME_INTERVAL_H",
    "ImagingMode",
    "MAX_MOTION_SCALE",
    "check_int",
    "child_rng",
    "resolve_defocus_p",
    "resolve_mode",
    "resolve_motion_scale",
    "resolve_preset",
    "resolve_seed",
    "resolve_size",
    "resolve_stage_jitter",
]


#: Hours between consecutive timepoints (timepoint ``k`` is acquired at ``3 * k`` hours).
TIME_INTERVAL_H: float = 3.0

_MIN_SIZE = 64

#: Largest ``motion_scale`` of the simulator (cells 100 times as fast as their cell line).
MAX_MOTION_SCALE: float = 100.0


@dataclass(frozen=True)
class ImagingMode:
    """Optics and camera model of one imaging mode."""

    pixel_size_um: float
    psf_sigma_um: float
    haze_weight: float
    haze_sigma_um: float
    photon_scale: float
    background_e: float
    read_noise_e: float
    gain_adu_per_e: float
    offset_adu: float
    vignetting: float


MODES: dict[str, ImagingMode] = {
    # Binned confocal spinning-disk at 20x: 1.24 um/px, bright, little out-of-focus light.
    "confocal": ImagingMode(
        pixel_size_um=1.24, psf_sigma_um=0.45, haze_weight=0.03, haze_sigma_um=4.0,
        photon_scale=1.0, background_e=12.0, read_noise_e=2.0, gain_adu_per_e=1.5,
        offset_adu=100.0, vignetting=0.08,
    ),
    # Unbinned widefield at 20x: 0.32 um/px, fewer photons per pixel, out-of-focus haze.
    "widefield": ImagingMode(
        pixel_size_um=0.32, psf_sigma_um=0.35, haze_weight=0.25, haze_sigma_um=6.0,
        photon_scale=0.2, background_e=20.0, read_noise_e=3.0, gain_adu_per_e=1.0,
        offset_adu=100.0, vignetting=0.25,
    ),
}

#: Valid values of the ``mode`` argument.
IMAGING_MODES: tuple[str, ...] = tuple(MODES)


def resolve_preset(preset: CellLinePreset | str) -> CellLinePreset:
    """Return the preset, given or named in :data:`PRESETS`; raise if unknown."""
    if isinstance(preset, CellLinePreset):
        return preset
    if isinstance(preset, str):
        if preset in PRESETS:
            return PRESETS[preset]
        valid = ", ".join(repr(k) for k in PRESETS)
        raise ValueError(f"unknown cell line {preset!r}; expected one of {valid}")
    raise TypeError(
        f"preset must be a CellLinePreset or one of {list(PRESETS)}, got {type(preset).__name__}"
    )


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an int; raise unless it is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {int(value)}")
    return int(value)


def resolve_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """Return the field size ``(y, x)`` of ``n`` or ``(y, x)``, each at least 64."""
    if isinstance(size, tuple | list):
        if len(size) != 2:
            raise ValueError(f"size must be an int or a (y, x) pair, got {len(size)} values")
        return (
            check_int("size[0]", size[0], _MIN_SIZE),
            check_int("size[1]", size[1], _MIN_SIZE),
        )
    s = check_int("size", size, _MIN_SIZE)
    return s, s


def resolve_seed(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    """Return the seed sequence of a non-negative int (a SeedSequence as is)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"seed must be a non-negative int or numpy.random.SeedSequence, "
            f"got {type(seed).__name__}"
        )
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative int, got {int(seed)}")
    return np.random.SeedSequence(int(seed))


def resolve_mode(mode: str) -> ImagingMode:
    """Return the imaging mode named ``mode`` (one of :data:`IMAGING_MODES`).

    Raises
    ------
    TypeError
        ``mode`` is not a string (as for the simulator's other arguments).
    ValueError
        An unknown mode.
    """
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a string, one of {', '.join(map(repr, MODES))}; got "
                        f"{type(mode).__name__} {mode!r}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(map(repr, MODES))}")
    return MODES[mode]


def resolve_stage_jitter(jitter: object, shape: tuple[int, int]) -> int:
    """Return the largest stage shift in pixels (0: none) for a field of ``shape`` ``(y, x)``.

    At most half the field's smaller side, so that every timepoint shares at least half of
    each axis with timepoint 0.

    Raises
    ------
    TypeError
        Not an int.
    ValueError
        Negative, or more than half the field's smaller side.

    Examples
    --------
    >>> resolve_stage_jitter(15, (64, 80))
    15
    >>> resolve_stage_jitter(40, (64, 80))
    Traceback (most recent call last):
    ...
    ValueError: stage_jitter_px must be <= 32 (half the field's smaller side), got 40
    """
    j = check_int("stage_jitter_px", jitter, 0)
    most = min(shape) // 2
    if j > most:
        raise ValueError(
            f"stage_jitter_px must be <= {most} (half the field's smaller side), got {j}"
        )
    return j


def _check_real(name: str, value: object, low: float, high: float) -> float:
    """Return ``value`` as a float; raise unless it is a real number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [{low:g}, {high:g}], got "
                        f"{type(value).__name__} {value!r}")
    v = float(value)
    if not low <= v <= high:  # also refuses NaN
        raise ValueError(f"{name} must be in [{low:g}, {high:g}], got {v!r}")
    return v


def resolve_defocus_p(p: object) -> float:
    """Return the probability that a timepoint after the first is out of focus.

    Raises
    ------
    TypeError
        Not a real number (a bool is refused).
    ValueError
        Outside ``[0, 1]`` (or NaN).

    Examples
    --------
    >>> resolve_defocus_p(0.25), resolve_defocus_p(1)
    (0.25, 1.0)
    >>> resolve_defocus_p(1.5)
    Traceback (most recent call last):
    ...
    ValueError: defocus_p must be in [0, 1], got 1.5
    """
    return _check_real("defocus_p", p, 0.0, 1.0)


def resolve_motion_scale(scale: object) -> float:
    """Return the factor on the cells' own motion (1: the cell line's; 0: no motion).

    Raises
    ------
    TypeError
        Not a real number (a bool is refused).
    ValueError
        Outside ``[0, MAX_MOTION_SCALE]`` (or NaN).

    Examples
    --------
    >>> resolve_motion_scale(12)
    12.0
    >>> resolve_motion_scale(-1.0)
    Traceback (most recent call last):
    ...
    ValueError: motion_scale must be in [0, 100], got -1.0
    """
    return _check_real("motion_scale", scale, 0.0, MAX_MOTION_SCALE)


def child_rng(ss: np.random.SeedSequence, *key: int) -> np.random.Generator:
    """Return a generator for the child stream ``key`` of ``ss`` (``ss`` is not mutated)."""
    child = np.random.SeedSequence(entropy=ss.entropy, spawn_key=(*ss.spawn_key, *key))
    return np.random.default_rng(child)
